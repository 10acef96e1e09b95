"""LlamaIndex sparse embeddings (``BaseSparseEmbedding``) for hybrid search: fields, docs, calls.

:class:`HuggingFaceInferenceSparseEmbedding` gives ``{index: weight}`` dicts from a TEI endpoint's
``/embed_sparse`` (:class:`hfrag.tasks.sparse.SparseEmbeddingsClient`), and hands LlamaIndex's
Qdrant store its ``sparse_doc_fn`` / ``sparse_query_fn`` (``encode_documents`` /
``encode_queries``), so the store never downloads a FastEmbed model. A batch call goes to the
client whole; the client cuts it into requests of ``batch_size`` (alias ``embed_batch_size``).
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base_sparse import (
    BaseSparseEmbedding,
    SparseEmbedding,
    dispatcher,
)
from llama_index.core.instrumentation.events.embedding import (
    SparseEmbeddingEndEvent,
    SparseEmbeddingStartEvent,
)
from pydantic import ConfigDict

from hfrag._fields import ADAPTER_CONFIG, SparseFields
from hfrag.llama_index._batch_size import BatchSizeNames
from hfrag.tasks.inputs import check_texts
from hfrag.tasks.sparse import SparseVector

__all__ = ["HuggingFaceInferenceSparseEmbedding"]


def _dicts(vectors: list[SparseVector]) -> list[SparseEmbedding]:
    return [v.as_dict() for v in vectors]


class HuggingFaceInferenceSparseEmbedding(BatchSizeNames, SparseFields, BaseSparseEmbedding):
    """Sparse embeddings (SPLADE and the like) from a TEI endpoint, as ``{index: weight}``.

    Give ``endpoint_url`` (a TEI server with a sparse model, an Inference Endpoint running one,
    or ``hfrag serve``'s sparse listener). Texts get the document prompt name, queries the
    query one. Sync methods are safe inside a running event loop (Jupyter).

    Example::

        from llama_index.core import Document, StorageContext, VectorStoreIndex
        from llama_index.vector_stores.qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient
        from hfrag.llama_index import (
            HuggingFaceInferenceEmbedding,
            HuggingFaceInferenceSparseEmbedding,
        )

        sparse = HuggingFaceInferenceSparseEmbedding(endpoint_url="http://127.0.0.1:8084")
        store = QdrantVectorStore(
            "docs",
            client=QdrantClient(":memory:"),
            enable_hybrid=True,
            sparse_doc_fn=sparse.encode_documents,
            sparse_query_fn=sparse.encode_queries,
        )
        index = VectorStoreIndex.from_documents(
            [Document(text="Paris is in France.")],
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=HuggingFaceInferenceEmbedding(endpoint_url="http://127.0.0.1:8080"),
        )
        index.as_retriever(vector_store_query_mode="hybrid").retrieve("Where is Paris?")
    """

    model_config = ConfigDict(**ADAPTER_CONFIG, protected_namespaces=("pydantic_model_",))

    @classmethod
    def class_name(cls) -> str:
        return "HuggingFaceInferenceSparseEmbedding"

    def _get_query_embedding(self, query: str) -> SparseEmbedding:
        return self.sparse_client().embed_query(query).as_dict()

    async def _aget_query_embedding(self, query: str) -> SparseEmbedding:
        return (await self.sparse_client().aembed_query(query)).as_dict()

    def _get_text_embedding(self, text: str) -> SparseEmbedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> SparseEmbedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return _dicts(self.sparse_client().embed(texts, kind="document"))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return _dicts(await self.sparse_client().aembed(texts, kind="document"))

    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[SparseEmbedding]:
        """Embed ``texts`` in one client call, with one start and one end event."""
        texts = check_texts(texts)
        if not texts:
            return []
        dispatcher.event(SparseEmbeddingStartEvent(model_dict=self.to_payload()))
        vectors = self.sparse_client().embed(
            texts, kind="document", show_progress=show_progress or None
        )
        result = _dicts(vectors)
        dispatcher.event(SparseEmbeddingEndEvent(chunks=texts, embeddings=result))
        return result

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False
    ) -> list[SparseEmbedding]:
        """Async :meth:`get_text_embedding_batch`."""
        texts = check_texts(texts)
        if not texts:
            return []
        dispatcher.event(SparseEmbeddingStartEvent(model_dict=self.to_payload()))
        vectors = await self.sparse_client().aembed(
            texts, kind="document", show_progress=show_progress or None
        )
        result = _dicts(vectors)
        dispatcher.event(SparseEmbeddingEndEvent(chunks=texts, embeddings=result))
        return result
