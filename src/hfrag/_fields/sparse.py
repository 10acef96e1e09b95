"""The sparse-embedding settings both framework adapters share, and the client built from them.

:class:`SparseFields` adds the ``/embed_sparse`` options to the connection fields and builds the
one :class:`~hfrag.tasks.sparse.SparseEmbeddingsClient` the adapter calls; ``encode_documents``
and ``encode_queries`` are the ``texts -> (indices, values)`` callables LlamaIndex's Qdrant
store takes as ``sparse_doc_fn`` / ``sparse_query_fn``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

from pydantic import Field, model_validator
from typing_extensions import Self

from hfrag._fields.connection import InferenceFields
from hfrag.tasks.lengths import LongInputs
from hfrag.tasks.sparse import SparseEmbeddingsClient, SparseOptions, SparseVector

__all__ = ["SparseFields"]

_OPTIONS = SparseOptions()

#: ``(indices per text, values per text)``: LlamaIndex's ``BatchSparseEncoding``.
BatchSparse = tuple[list[list[int]], list[list[float]]]


class SparseFields(InferenceFields):
    """The sparse options, and the :class:`~hfrag.tasks.sparse.SparseEmbeddingsClient` built
    from all fields (at construction, so bad settings fail there; rebuilt after a change)."""

    accepted_tasks: ClassVar[tuple[str, ...]] = ("feature-extraction",)

    batch_size: int | Literal["auto"] = Field(
        default=_OPTIONS.batch_size,
        description=(
            "Texts per request: 'auto' (the endpoint's max_client_batch_size from /info, else "
            "32) or a number (cut to the endpoint's limit). Batches also keep within /info's "
            "max_batch_tokens, and a batch the server rejects as too large is split."
        ),
    )
    max_concurrency: int | Literal["auto"] = Field(
        default=_OPTIONS.max_concurrency,
        description=(
            "Requests in flight: 'auto' (adaptive, shared by every client of the endpoint in "
            "this process, up to concurrency_ceiling) or a fixed number for each call."
        ),
    )
    concurrency_ceiling: int = Field(
        default=_OPTIONS.concurrency_ceiling,
        description="With max_concurrency='auto': the most requests the endpoint gets at once.",
    )
    truncate: bool | None = Field(
        default=_OPTIONS.truncate,
        description="Ask the server to truncate inputs longer than the model's limit.",
    )
    truncation_direction: Literal["left", "right"] | None = Field(
        default=_OPTIONS.truncation_direction,
        description="Which end to cut when truncating ('left' or 'right'); None: server default.",
    )
    prompt_name: str | None = Field(
        default=_OPTIONS.prompt_name,
        description="Sentence-Transformers prompt name for both queries and documents.",
    )
    query_prompt_name: str | None = Field(
        default=_OPTIONS.query_prompt_name,
        description="Prompt name for queries (wins over prompt_name).",
    )
    document_prompt_name: str | None = Field(
        default=_OPTIONS.document_prompt_name,
        description="Prompt name for documents (wins over prompt_name).",
    )
    long_inputs: Literal["warn", "error", "ignore"] = Field(
        default=_OPTIONS.long_inputs,
        description=(
            "Inputs longer than the endpoint's max_input_length: 'warn' (one warning per call "
            "naming them), 'error' (InputError before sending) or 'ignore'."
        ),
    )
    show_progress: bool = Field(
        default=_OPTIONS.show_progress,
        description="Show a progress bar (tqdm.auto) for a job of more than one batch.",
    )
    progress: Callable[[int, int], None] | None = Field(
        default=_OPTIONS.progress,
        exclude=True,
        description="Called as progress(done, total) after every batch, for other UIs.",
    )

    @model_validator(mode="after")
    def _build_client_now(self) -> Self:
        self.sparse_client()  # raises ConfigurationError (a ValueError) for bad settings
        return self

    def sparse_client(self) -> SparseEmbeddingsClient:
        """The task client these fields describe (built once, rebuilt after a field changes)."""
        return self._cached_client(SparseFields, self._build_client)

    def _build_client(self) -> SparseEmbeddingsClient:
        long_inputs: LongInputs = self.long_inputs
        options = SparseOptions(
            batch_size=self.batch_size,
            max_concurrency=self.max_concurrency,
            concurrency_ceiling=self.concurrency_ceiling,
            truncate=self.truncate,
            truncation_direction=self.truncation_direction,
            prompt_name=self.prompt_name,
            query_prompt_name=self.query_prompt_name,
            document_prompt_name=self.document_prompt_name,
            long_inputs=long_inputs,
            show_progress=self.show_progress,
            progress=self.progress,
        )
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
