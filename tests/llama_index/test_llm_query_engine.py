"""A LlamaIndex query engine on hfrag embeddings and the hfrag LLM, streaming, end to end."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex

from hfrag.llama_index import HuggingFaceInferenceEmbedding, HuggingFaceInferenceLLM
from hfrag.server.testing import ServerHandle
from tests.adapters import EMBED_MODEL
from tests.llama_index.conftest import llm_kwargs

DOCUMENTS = [
    "Paris is the capital of France. It lies on the Seine.",
    "Bananas are yellow when ripe.",
    "Rust has a borrow checker that tracks lifetimes.",
    "The Eiffel tower was finished in 1889.",
]
QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_streaming_query_engine_answers_from_the_right_document(
    gsrv: ServerHandle, layout: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    emb = HuggingFaceInferenceEmbedding(model=EMBED_MODEL, router_url=gsrv.url)
    llm = HuggingFaceInferenceLLM(**llm_kwargs(layout, gsrv.url))
    # Nothing may fall back to LlamaIndex's default (remote) models.
    monkeypatch.setattr(Settings, "_embed_model", emb)
    monkeypatch.setattr(Settings, "_llm", llm)
    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS], embed_model=emb)
    engine = index.as_query_engine(llm=llm, streaming=True, similarity_top_k=2)

    if mode == "sync":
        response = engine.query(QUESTION)
        pieces = list(response.response_gen)  # type: ignore[union-attr]
        nodes = response.source_nodes
    else:

        async def go() -> tuple[list[str], list]:
            response = await engine.aquery(QUESTION)
            gen = response.async_response_gen()  # type: ignore[union-attr]
            return [p async for p in gen], response.source_nodes

        pieces, nodes = asyncio.run(go())

    assert "".join(pieces) == ANSWER
    assert len([p for p in pieces if p]) == len(ANSWER.split())  # token by token
    assert nodes[0].node.get_content() == DOCUMENTS[0]
    generation = gsrv.counters.bodies[-1]
    assert generation["stream"] is True
    # The retrieved context reached the model: in the prompt (TGI) or the user message (chat).
    sent = generation.get("inputs") or generation["messages"][-1]["content"]
    assert DOCUMENTS[0] in sent
    assert QUESTION in sent
    assert ("inputs" in generation) is (layout == "tgi")
