"""LangChain sparse embeddings for Qdrant hybrid search: fields, docstrings, client calls.

:class:`HuggingFaceInferenceSparseEmbeddings` implements langchain-qdrant's ``SparseEmbeddings``
(``embed_documents`` / ``embed_query`` -> ``SparseVector(indices, values)``) over a TEI
endpoint's ``/embed_sparse`` (:class:`hfrag.tasks.sparse.SparseEmbeddingsClient`); the fields
are declared once in :mod:`hfrag._fields`. Needs ``langchain-qdrant`` (``hfrag[qdrant]``).
"""

from __future__ import annotations

from pydantic import ConfigDict

from hfrag._fields import ADAPTER_CONFIG, SparseFields
from hfrag.langchain._serial import HfragSerializable
from hfrag.tasks.sparse import SparseVector as Vector

try:
    from langchain_qdrant import SparseEmbeddings, SparseVector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "HuggingFaceInferenceSparseEmbeddings needs langchain-qdrant: pip install 'hfrag[qdrant]'"
    ) from exc

__all__ = ["HuggingFaceInferenceSparseEmbeddings"]


def _vector(vector: Vector) -> SparseVector:
    # Built without re-validation: indices are unique, ascending ints and values finite floats,
    # both checked by the task client.
    return SparseVector.model_construct(
        indices=vector.indices.tolist(), values=vector.values.tolist()
    )


class HuggingFaceInferenceSparseEmbeddings(SparseFields, HfragSerializable, SparseEmbeddings):
    """Sparse embeddings (SPLADE and the like) from a TEI endpoint, for Qdrant hybrid search.

    Give ``endpoint_url`` (a TEI server with a sparse model, an Inference Endpoint running one,
    or ``hfrag serve``'s sparse listener). Documents get the document prompt name, queries the
    query one. Work is split into ``batch_size`` requests, ``max_concurrency`` at a time; sync
    methods are safe inside a running event loop (Jupyter).

    Example::

        from langchain_qdrant import QdrantVectorStore, RetrievalMode
        from hfrag.langchain import (
            HuggingFaceInferenceEmbeddings,
            HuggingFaceInferenceSparseEmbeddings,
        )

        store = QdrantVectorStore.from_texts(
            ["Paris is in France."],
            embedding=HuggingFaceInferenceEmbeddings(endpoint_url="http://127.0.0.1:8080"),
            sparse_embedding=HuggingFaceInferenceSparseEmbeddings(
                endpoint_url="http://127.0.0.1:8084"
            ),
            retrieval_mode=RetrievalMode.HYBRID,
            location=":memory:",
        )
        store.similarity_search("Where is Paris?", k=1)
    """

    model_config = ConfigDict(**ADAPTER_CONFIG)

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Sparse vectors of documents, one per text, in order."""
        return [_vector(v) for v in self.sparse_client().embed(texts, kind="document")]

    def embed_query(self, text: str) -> SparseVector:
        """The sparse vector of one query."""
        return _vector(self.sparse_client().embed_query(text))

    async def aembed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Async :meth:`embed_documents`."""
        return [_vector(v) for v in await self.sparse_client().aembed(texts, kind="document")]

    async def aembed_query(self, text: str) -> SparseVector:
        """Async :meth:`embed_query`."""
        return _vector(await self.sparse_client().aembed_query(text))
