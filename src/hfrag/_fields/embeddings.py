"""The embedding settings both framework adapters share, and the client built from them.

:class:`EmbeddingFields` adds the embedding options to the connection fields and builds the one
:class:`~hfrag.tasks.EmbeddingsClient` the adapter calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

from pydantic import Field, model_validator
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
    coalesce_window: float = Field(
        default=_OPTIONS.coalesce_window,
        description=(
            "Seconds a query waits to join concurrent queries in one request while one is in "
            "flight (a lone query is sent at once); 0 sends every query alone."
        ),
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
    provider: str | None = Field(
        default=_OPTIONS.provider,
        description=(
            "Inference Provider for a model id: None or 'hf-inference' (the router's pipeline "
            "form), a provider name ('together', 'scaleway', 'deepinfra'), or 'auto' (the first "
            "live provider the Hub lists for feature-extraction)."
        ),
    )
    provider_model: str | None = Field(
        default=_OPTIONS.provider_model,
        description=(
            "The provider's own id of the model (skips the Hub look-up); for an endpoint in "
            "the OpenAI form, the 'model' sent (default: the first of GET /v1/models)."
        ),
    )
    protocol: Literal["auto", "tei", "openai"] = Field(
        default=_OPTIONS.protocol,
        description=(
            "Wire form of an endpoint URL: 'tei' (POST the URL as given), 'openai' "
            "(POST {base}/v1/embeddings), or 'auto' (a URL ending in /v1 or /embeddings is "
            "OpenAI; otherwise GET /info decides, once)."
        ),
    )
    encoding_format: Literal["float", "base64"] = Field(
        default=_OPTIONS.encoding_format,
        description=(
            "How the OpenAI form sends vectors: 'base64' (float32 bytes, decoded by numpy, "
            "several times cheaper) or 'float' (JSON numbers)."
        ),
    )
    hub_url: str | None = Field(
        default=_OPTIONS.hub_url,
        description=(
            "Hub base for the provider look-up (default $HF_ENDPOINT, else https://huggingface.co)."
        ),
    )

    long_inputs: Literal["warn", "error", "ignore"] = Field(
        default=_OPTIONS.long_inputs,
        description=(
            "Inputs longer than the endpoint's max_input_length: 'warn' (one warning per call "
            "naming them), 'error' (InputError before sending) or 'ignore'."
        ),
    )

    @model_validator(mode="after")
    def _build_client_now(self) -> Self:
        self.embeddings_client()  # raises ConfigurationError (a ValueError) for bad settings
        return self

    def embeddings_client(self) -> EmbeddingsClient:
        """The task client these fields describe (built once, rebuilt after a field changes)."""
        return self._cached_client(EmbeddingFields, self._build_client)

    def _build_client(self) -> EmbeddingsClient:
        options = EmbeddingOptions(
            batch_size=self.batch_size,
            max_concurrency=self.max_concurrency,
            concurrency_ceiling=self.concurrency_ceiling,
            coalesce_window=self.coalesce_window,
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
            provider=self.provider,
            provider_model=self.provider_model,
            protocol=self.protocol,
            encoding_format=self.encoding_format,
            hub_url=self.hub_url,
            long_inputs=self.long_inputs,
            progress=self.progress,
        )
        return EmbeddingsClient(**self._connection(), options=options)
