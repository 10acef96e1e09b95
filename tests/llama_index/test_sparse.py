"""LlamaIndex sparse embeddings: a BaseSparseEmbedding of {index: weight}, hybrid retrieval on
Qdrant's local mode (enable_hybrid=True) with hfrag's dense and sparse classes and hfrag's
encoders handed over, so nothing downloads a FastEmbed model."""

from __future__ import annotations

import pickle
import sys

import pytest

pytest.importorskip("llama_index.vector_stores.qdrant")

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base_sparse import BaseSparseEmbedding
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from hfrag.errors import ConfigurationError
from hfrag.llama_index import HuggingFaceInferenceEmbedding, HuggingFaceInferenceSparseEmbedding
from hfrag.server.testing import ServerHandle
from tests.adapters import PLANTED
from tests.hybrid import QUESTIONS, passages, real_server

__all__ = ["real_server"]


def test_it_is_a_base_sparse_embedding(srv: ServerHandle) -> None:
    sparse = HuggingFaceInferenceSparseEmbedding(endpoint_url=srv.url)
    assert isinstance(sparse, BaseSparseEmbedding)
    docs = sparse.get_text_embedding_batch(["rain rain sun", "snow"])
    assert [len(d) for d in docs] == [2, 1]
    assert all(isinstance(k, int) and isinstance(v, float) for d in docs for k, v in d.items())
    assert sparse.get_query_embedding("snow") == pytest.approx(docs[1])
    assert sparse.similarity(docs[1], sparse.get_text_embedding("snow")) == pytest.approx(1.0)
    assert srv.counters.total("/embed_sparse") == 3  # the batch was one request


async def test_async_matches_sync(srv: ServerHandle) -> None:
    sparse = HuggingFaceInferenceSparseEmbedding(endpoint_url=srv.url, embed_batch_size=2)
    assert sparse.batch_size == 2
    texts = [f"text number {i}" for i in range(5)]
    assert await sparse.aget_text_embedding_batch(texts) == sparse.get_text_embedding_batch(texts)
    assert await sparse.aget_query_embedding("text") == sparse.get_query_embedding("text")


def test_the_qdrant_encoders_give_indices_and_values(srv: ServerHandle) -> None:
    sparse = HuggingFaceInferenceSparseEmbedding(endpoint_url=srv.url, query_prompt_name="query")
    indices, values = sparse.encode_documents(["rain sun", "snow"])
    assert [len(i) for i in indices] == [2, 1]
    assert [len(v) for v in values] == [2, 1]
    assert dict(zip(indices[1], values[1], strict=True)) == pytest.approx(
        sparse.get_text_embedding("snow")
    )
    sparse.encode_queries(["snow"])
    assert srv.counters.bodies[-1]["prompt_name"] == "query"


def test_configured_like_every_other_class(srv: ServerHandle) -> None:
    sparse = HuggingFaceInferenceSparseEmbedding(endpoint_url=srv.url, token=PLANTED)
    assert PLANTED not in repr(sparse)
    assert PLANTED not in sparse.model_dump_json()
    assert PLANTED not in str(pickle.dumps(sparse))
    assert sparse.model_name == srv.url
    sparse.get_query_embedding("hello")
    assert srv.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"
    with pytest.raises(ConfigurationError, match="disagree"):
        HuggingFaceInferenceSparseEmbedding(endpoint_url=srv.url, batch_size=2, embed_batch_size=3)
    with pytest.raises(ConfigurationError, match="endpoint_url"):
        HuggingFaceInferenceSparseEmbedding(model="naver/splade-v3")


@pytest.mark.slow
def test_hybrid_retrieval_on_qdrant_finds_every_answer(real_server: ServerHandle) -> None:
    sparse = HuggingFaceInferenceSparseEmbedding(endpoint_url=real_server.url)
    store = QdrantVectorStore(
        "demo",
        client=QdrantClient(":memory:"),
        enable_hybrid=True,
        sparse_doc_fn=sparse.encode_documents,
        sparse_query_fn=sparse.encode_queries,
    )
    corpus = passages()
    index = VectorStoreIndex.from_documents(
        [Document(text=p["text"], metadata={"id": p["id"]}) for p in corpus],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=HuggingFaceInferenceEmbedding(endpoint_url=real_server.url),
    )
    retriever = index.as_retriever(
        vector_store_query_mode="hybrid", similarity_top_k=3, sparse_top_k=3
    )
    for question, answer in QUESTIONS:
        found = [n.node.metadata["id"] for n in retriever.retrieve(question)]
        assert found[0] == answer, (question, found)
    assert real_server.counters.total("/embed_sparse", 200) >= 1 + len(QUESTIONS)
    assert "fastembed" not in sys.modules
