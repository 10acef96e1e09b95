"""The settings of every adapter that sends a list of texts in batches (dense and sparse
embeddings), declared once: how to cut and pace the job, how the server treats long inputs,
prompt names, progress.

Defaults come from :class:`~hfrag.tasks.EmbeddingOptions` (the sparse options share them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from hfrag._fields.connection import InferenceFields
from hfrag.tasks import EmbeddingOptions

__all__ = ["JOB_FIELDS", "TextJobFields"]

_OPTIONS = EmbeddingOptions()
JOB_FIELDS = (
    "batch_size",
    "max_concurrency",
    "concurrency_ceiling",
    "truncate",
    "truncation_direction",
    "prompt_name",
    "query_prompt_name",
    "document_prompt_name",
    "show_progress",
    "progress",
    "long_inputs",
)


class TextJobFields(InferenceFields):
    """Batching, pacing, truncation, prompt names and progress of a list-of-texts task."""

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
            "Requests in flight: 'auto' (adaptive, learned from the endpoint's answers and "
            "shared by every client of the endpoint in this process, up to "
            "concurrency_ceiling) or a fixed number for each call."
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
        description="Prompt name for queries (wins over prompt_name), e.g. 'query'.",
    )
    document_prompt_name: str | None = Field(
        default=_OPTIONS.document_prompt_name,
        description="Prompt name for documents (wins over prompt_name), e.g. 'passage'.",
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
    long_inputs: Literal["warn", "error", "ignore"] = Field(
        default=_OPTIONS.long_inputs,
        description=(
            "Inputs longer than the endpoint's max_input_length: 'warn' (one warning per call "
            "naming them), 'error' (InputError before sending) or 'ignore'."
        ),
    )

    def job_options(self) -> dict[str, Any]:
        """These fields as keyword arguments of the task's options."""
        return {name: getattr(self, name) for name in JOB_FIELDS}
