"""A LlamaIndex ``VectorStoreIndex`` over the adapter: 2,000 documents in, the right one out."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.schema import NodeWithScore

from hfrag.llama_index import HuggingFaceInferenceEmbedding
from hfrag.server.testing import ServerHandle
from tests.adapters import make_corpus, prompt_kwargs, sent, target_kwargs

N_CHUNKS = 2000
CHECKED = range(0, N_CHUNKS, 97)  # a spread of queries; each must find its own document first


@pytest.mark.parametrize("target", ["router", "endpoint", "openai"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_index_retrieves_the_right_document(
    srv: ServerHandle, target: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks, queries = make_corpus(N_CHUNKS)
    emb = HuggingFaceInferenceEmbedding(**target_kwargs(target, srv.url), **prompt_kwargs(target))
    monkeypatch.setattr(Settings, "_embed_model", emb)  # nothing may fall back to a default model
    documents = [Document(text=c) for c in chunks]

    if mode == "sync":
        index = VectorStoreIndex.from_documents(documents, embed_model=emb)
        retriever = index.as_retriever(similarity_top_k=2)
        results = [retriever.retrieve(queries[i]) for i in CHECKED]
    else:

        async def go() -> list[list[NodeWithScore]]:
            # Built from inside a running loop, as in a notebook; embedded by the async methods.
            index = VectorStoreIndex.from_documents(documents, embed_model=emb, use_async=True)
            retriever = index.as_retriever(similarity_top_k=2)
            return list(await asyncio.gather(*(retriever.aretrieve(queries[i]) for i in CHECKED)))

        results = asyncio.run(go())

    assert [hits[0].node.get_content() for hits in results] == [chunks[i] for i in CHECKED]
    assert (
        sum(srv.counters.texts_ok[sent(target, c)] for c in chunks) == N_CHUNKS
    )  # each embedded once
    sizes = srv.counters.batch_sizes
    assert max(sizes) == 32
    assert sum(sizes) == N_CHUNKS + len(CHECKED)
    if mode == "sync":  # queries one after another go one by one
        assert sizes.count(1) == len(CHECKED)
    else:  # queries at once are joined into fewer requests
        assert sizes.count(1) < len(CHECKED)
