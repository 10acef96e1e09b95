"""The embedding settings both framework adapters share, and the client built from them.

:class:`EmbeddingFields` adds the embedding options to the connection fields and builds the one
:class:`~hfrag.tasks.EmbeddingsClient` the adapter calls.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator
from typing_extensions import Self

from hfrag._fields.texts import TextJobFields
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient

__all__ = ["EmbeddingFields"]

_OPTIONS = EmbeddingOptions()


class EmbeddingFields(TextJobFields):
    """The embedding options, and the :class:`~hfrag.tasks.EmbeddingsClient` built from all fields.

    The client is built once at validation (which surfaces configuration errors at construction)
    and rebuilt on next use if a field was reassigned since.
    """

    accepted_tasks: ClassVar[tuple[str, ...]] = ("feature-extraction",)

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
    dimensions: int | None = Field(
        default=_OPTIONS.dimensions,
        description="Output dimension for Matryoshka models that support it; None: full size.",
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

    @model_validator(mode="after")
    def _build_client_now(self) -> Self:
        self.embeddings_client()  # raises ConfigurationError (a ValueError) for bad settings
        return self

    def embeddings_client(self) -> EmbeddingsClient:
        """The task client these fields describe (built once, rebuilt after a field changes)."""
        return self._cached_client(EmbeddingFields, self._build_client)

    def _build_client(self) -> EmbeddingsClient:
        options = EmbeddingOptions(
            **self.job_options(),
            coalesce_window=self.coalesce_window,
            normalize=self.normalize,
            dimensions=self.dimensions,
            query_instruction=self.query_instruction,
            document_instruction=self.document_instruction,
            pooling=self.pooling,
            provider=self.provider,
            provider_model=self.provider_model,
            protocol=self.protocol,
            encoding_format=self.encoding_format,
            hub_url=self.hub_url,
        )
        return EmbeddingsClient(**self._connection(), options=options)
