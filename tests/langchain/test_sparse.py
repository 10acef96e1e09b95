"""LangChain sparse embeddings: langchain-qdrant's interface, hybrid retrieval on Qdrant's local
mode with hfrag's dense and sparse classes, configuration like every other class."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

pytest.importorskip("langchain_qdrant")

from langchain_core.load import dumps
from langchain_qdrant import QdrantVectorStore, RetrievalMode, SparseEmbeddings, SparseVector

from hfrag.errors import ConfigurationError
from hfrag.langchain import HuggingFaceInferenceEmbeddings, HuggingFaceInferenceSparseEmbeddings
from hfrag.server.testing import ServerHandle
from tests.adapters import PLANTED
from tests.hybrid import QUESTIONS, passages, real_server

__all__ = ["real_server"]


def test_it_is_langchain_qdrants_sparse_embeddings(srv: ServerHandle) -> None:
    sparse = HuggingFaceInferenceSparseEmbeddings(endpoint_url=srv.url)
    assert isinstance(sparse, SparseEmbeddings)
    docs = sparse.embed_documents(["rain rain sun", "snow"])
    assert all(isinstance(v, SparseVector) for v in docs)
    assert [len(v.indices) for v in docs] == [2, 1]
    assert all(v.indices == sorted(set(v.indices)) for v in docs)
    query = sparse.embed_query("snow")
    assert query.indices == docs[1].indices
    assert query.values == pytest.approx(docs[1].values)


async def test_async_matches_sync(srv: ServerHandle) -> None:
    sparse = HuggingFaceInferenceSparseEmbeddings(endpoint_url=srv.url, batch_size=2)
    texts = [f"text number {i}" for i in range(5)]
    assert await sparse.aembed_documents(texts) == sparse.embed_documents(texts)
    assert await sparse.aembed_query("text") == sparse.embed_query("text")


def test_configured_like_every_other_class(srv: ServerHandle) -> None:
    sparse = HuggingFaceInferenceSparseEmbeddings(
        endpoint_url=srv.url, api_key=PLANTED, query_prompt_name="query", long_inputs="error"
    )
    assert PLANTED not in repr(sparse)
    assert PLANTED not in dumps(sparse)
    assert PLANTED not in str(pickle.dumps(sparse))
    sparse.embed_query("hello")
    assert srv.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"
    assert srv.counters.bodies[-1]["prompt_name"] == "query"
    with pytest.raises(ConfigurationError):
        HuggingFaceInferenceSparseEmbeddings(endpoint_url=srv.url, batch_size=0)
    with pytest.raises(ConfigurationError, match="endpoint_url"):
        HuggingFaceInferenceSparseEmbeddings(model="naver/splade-v3")
    with pytest.raises(ConfigurationError):
        HuggingFaceInferenceSparseEmbeddings(endpoint_url=srv.url, batch_sise=3)


def _store(server: ServerHandle, mode: Any) -> QdrantVectorStore:
    corpus = passages()
    return QdrantVectorStore.from_texts(
        [p["text"] for p in corpus],
        metadatas=[{"id": p["id"]} for p in corpus],
        embedding=HuggingFaceInferenceEmbeddings(endpoint_url=server.url),
        sparse_embedding=HuggingFaceInferenceSparseEmbeddings(endpoint_url=server.url),
        retrieval_mode=mode,
        location=":memory:",
        collection_name=f"demo-{mode.value}",
    )


@pytest.mark.slow
def test_hybrid_retrieval_on_qdrant_finds_every_answer(real_server: ServerHandle) -> None:
    store = _store(real_server, RetrievalMode.HYBRID)
    for question, answer in QUESTIONS:
        found = [d.metadata["id"] for d in store.similarity_search(question, k=3)]
        assert found[0] == answer, (question, found)
    # Both halves were asked: every passage and question went to /embed_sparse and to POST /.
    n = len(passages())
    assert real_server.counters.texts_ok.total() >= 2 * (n + len(QUESTIONS))
    assert real_server.counters.total("/embed_sparse", 200) >= 1 + len(QUESTIONS)


@pytest.mark.slow
def test_sparse_alone_retrieves_by_splade_terms(real_server: ServerHandle) -> None:
    store = _store(real_server, RetrievalMode.SPARSE)
    found = [d.metadata["id"] for d in store.similarity_search("Eiffel Tower height", k=1)]
    assert found == ["eiffel"]
