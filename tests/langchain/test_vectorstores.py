"""LangChain vector stores over the adapter: 2,000 chunks in, the right chunk out."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

from hfrag.langchain import HuggingFaceInferenceEmbeddings
from hfrag.server.testing import ServerHandle
from tests.adapters import make_corpus, prompt_kwargs, sent, target_kwargs

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # langchain-community is being sunset
    from langchain_community.vectorstores import FAISS

N_CHUNKS = 2000
CHECKED = range(0, N_CHUNKS, 97)  # a spread of queries; each must find its own chunk first

STORES: dict[str, type[VectorStore]] = {"in_memory": InMemoryVectorStore, "faiss": FAISS}


def search_all(
    store_cls: type[VectorStore],
    emb: HuggingFaceInferenceEmbeddings,
    chunks: list[str],
    queries: list[str],
    mode: str,
) -> list[list[Document]]:
    if mode == "sync":
        store = store_cls.from_texts(chunks, emb)
        return [store.similarity_search(queries[i], k=2) for i in CHECKED]

    async def go() -> list[list[Document]]:
        store = await store_cls.afrom_texts(chunks, emb)
        return list(
            await asyncio.gather(*(store.asimilarity_search(queries[i], k=2) for i in CHECKED))
        )

    return asyncio.run(go())


@pytest.mark.parametrize("target", ["router", "endpoint", "openai"])
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("store", sorted(STORES))
def test_store_finds_the_right_chunk(srv: ServerHandle, target: str, store: str, mode: str) -> None:
    chunks, queries = make_corpus(N_CHUNKS)
    emb = HuggingFaceInferenceEmbeddings(**target_kwargs(target, srv.url), **prompt_kwargs(target))
    results = search_all(STORES[store], emb, chunks, queries, mode)

    assert [hits[0].page_content for hits in results] == [chunks[i] for i in CHECKED]
    # each chunk embedded once
    assert sum(srv.counters.texts_ok[sent(target, c)] for c in chunks) == N_CHUNKS
    # Documents went in batches of 32 (the default, also the server's limit); queries one by
    # one when they come one after another, joined into fewer requests when they come at once.
    sizes = srv.counters.batch_sizes
    assert max(sizes) == 32
    queries_sent = sizes[-(-N_CHUNKS // 32) :]
    assert sum(queries_sent) == len(CHECKED)
    if mode == "sync":
        assert queries_sent == [1] * len(CHECKED)
    else:
        assert len(queries_sent) < len(CHECKED)
