"""The embedding settings both framework adapters share, and the client built from them.

:class:`EmbeddingFields` adds the embedding options to the connection fields and builds the one
:class:`~hfrag.tasks.EmbeddingsClient` the adapter calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, model_validator
from typing_extensions import Self

from hfrag._fields.connection import InferenceFields
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient

__all__ = ["EmbeddingFields"]

_OPTIONS = EmbeddingOptions()


class EmbeddingFields(InferenceFields):
    """The embedding options, and the :class:`~hfrag.tasks.EmbeddingsClient` built from all fields.

    The client is built once at validation (which surfaces configuration errors at construction)
    and rebuilt on next use if a field was reassigned since.
    """

    accepted_tasks: ClassVar[tuple[str, ...]] = ("feature-extraction",)

    batch_size: int = Field(
        default=_OPTIONS.batch_size,
        description=(
            "Texts per request; a batch the server rejects as too large is split automatically, "
            "and a TEI endpoint's max_client_batch_size is respected."
        ),
    )
    max_concurrency: int = Field(
        default=_OPTIONS.max_concurrency, description="Requests in flight at once for one call."
    )
    normalize: bool | None = Field(
        default=_OPTIONS.normalize,
        description="Ask the server to L2-normalise vectors (TEI defaults to true); None: omit.",
    )
    truncate: bool | None = Field(
        default=_OPTIONS.truncate,
        description="Ask the server to truncate inputs longer than the model's limit.",
    )
    truncation_direction: Literal["left", "right"] | None = Field(
        default=_OPTIONS.truncation_direction,
        description="Which end to cut when truncating ('left' or 'right'); None: server default.",
    )
    dimensions: int | None = Field(
        default=_OPTIONS.dimensions,
        description="Output dimension for Matryoshka models that support it; None: full size.",
    )
    prompt_name: str | None = Field(
        default=_OPTIONS.prompt_name,
        description="Sentence-Transformers prompt name for both queries and documents.",
    )
    query_prompt_name: str | None = Field(
        default=_OPTIONS.query_prompt_name,
        description="Prompt name for queries (wins over prompt_name), e.g. 'query'.",
    )
    document_prompt_name: str | None = Field(
        default=_OPTIONS.document_prompt_name,
        description="Prompt name for documents (wins over prompt_name), e.g. 'passage'.",
    )
    query_instruction: str | None = Field(
        default=_OPTIONS.query_instruction,
        description="Text prepended to every query client-side, e.g. 'query: '.",
    )
    document_instruction: str | None = Field(
        default=_OPTIONS.document_instruction,
        description="Text prepended to every document client-side, e.g. 'passage: '.",
    )
    pooling: Literal["mean", "cls"] = Field(
        default=_OPTIONS.pooling,
        description="How to pool token-level output of models without a pooling head.",
    )
    show_progress: bool = Field(
        default=_OPTIONS.show_progress,
        description=(
            "Show a progress bar (tqdm.auto) for a job of more than one batch; one bar at a time."
        ),
    )
    progress: Callable[[int, int], None] | None = Field(
        default=_OPTIONS.progress,
        exclude=True,
        description="Called as progress(done, total) after every batch, for other UIs.",
    )

    _client: EmbeddingsClient | None = PrivateAttr(default=None)
    _client_key: tuple[Any, ...] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _build_client_now(self) -> Self:
        self.embeddings_client()  # raises ConfigurationError (a ValueError) for bad settings
        return self

    def _settings_key(self) -> tuple[Any, ...]:
        values = []
        for name in EmbeddingFields.model_fields:
            value = getattr(self, name)
            values.append(tuple(sorted(value.items())) if isinstance(value, dict) else value)
        return tuple(values)

    def embeddings_client(self) -> EmbeddingsClient:
        """The task client these fields describe (built once, rebuilt after a field changes)."""
        key = self._settings_key()
        if self._client is None or key != self._client_key:
            options = EmbeddingOptions(
                batch_size=self.batch_size,
                max_concurrency=self.max_concurrency,
                normalize=self.normalize,
                truncate=self.truncate,
                truncation_direction=self.truncation_direction,
                dimensions=self.dimensions,
                prompt_name=self.prompt_name,
                query_prompt_name=self.query_prompt_name,
                document_prompt_name=self.document_prompt_name,
                query_instruction=self.query_instruction,
                document_instruction=self.document_instruction,
                pooling=self.pooling,
                show_progress=self.show_progress,
                progress=self.progress,
            )
            stale, self._client = (
                self._client,
                EmbeddingsClient(**self._connection(), options=options),
            )
            if stale is not None:
                stale.close()  # its pooled connections would otherwise linger
            self._client_key = key
        return self._client
