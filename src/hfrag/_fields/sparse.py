"""The sparse-embedding settings both framework adapters share, and the client built from them.

:class:`SparseFields` adds the ``/embed_sparse`` options to the connection fields and builds the
one :class:`~hfrag.tasks.sparse.SparseEmbeddingsClient` the adapter calls; ``encode_documents``
and ``encode_queries`` are the ``texts -> (indices, values)`` callables LlamaIndex's Qdrant
store takes as ``sparse_doc_fn`` / ``sparse_query_fn``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import model_validator
from typing_extensions import Self

from hfrag._fields.texts import TextJobFields
from hfrag.tasks.sparse import SparseEmbeddingsClient, SparseOptions, SparseVector

__all__ = ["SparseFields"]

#: ``(indices per text, values per text)``: LlamaIndex's ``BatchSparseEncoding``.
BatchSparse = tuple[list[list[int]], list[list[float]]]


class SparseFields(TextJobFields):
    """The sparse options, and the :class:`~hfrag.tasks.sparse.SparseEmbeddingsClient` built
    from all fields (at construction, so bad settings fail there; rebuilt after a change)."""

    accepted_tasks: ClassVar[tuple[str, ...]] = ("feature-extraction",)

    @model_validator(mode="after")
    def _build_client_now(self) -> Self:
        self.sparse_client()  # raises ConfigurationError (a ValueError) for bad settings
        return self

    def sparse_client(self) -> SparseEmbeddingsClient:
        """The task client these fields describe (built once, rebuilt after a field changes)."""
        return self._cached_client(SparseFields, self._build_client)

    def _build_client(self) -> SparseEmbeddingsClient:
        options = SparseOptions(**self.job_options())
        return SparseEmbeddingsClient(**self._connection(), options=options)

    def encode_documents(self, texts: list[str]) -> BatchSparse:
        """Documents' ``(indices, values)`` lists: LlamaIndex's Qdrant ``sparse_doc_fn``."""
        return _batch(self.sparse_client().embed(texts, kind="document"))

    def encode_queries(self, texts: list[str]) -> BatchSparse:
        """Queries' ``(indices, values)`` lists: LlamaIndex's Qdrant ``sparse_query_fn``."""
        return _batch(self.sparse_client().embed(texts, kind="query"))


def _batch(vectors: list[SparseVector]) -> BatchSparse:
    indices: list[list[int]] = [v.indices.tolist() for v in vectors]
    values: list[list[float]] = [v.values.tolist() for v in vectors]
    return indices, values
