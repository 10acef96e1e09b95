"""The settings both framework adapters share, declared once as pydantic mixins.

:class:`InferenceFields` holds where and how to connect (target, credential, timeouts, retries,
headers); :class:`EmbeddingFields` adds the embedding options and builds the one
:class:`~hfrag.tasks.EmbeddingsClient` the adapter calls. Defaults and range rules are not
repeated here: defaults are read from the task client, and the values are checked by the task
client when it is built, at construction, so a bad combination fails there with hfrag's own
message (wrapped in pydantic's ``ValidationError``, itself a ``ValueError``).

Credentials: ``token`` (alias ``api_key``) is explicit only. The ambient ``HF_TOKEN`` is resolved
per URL by the transport, which sends it to Hugging Face hosts only; it is never read into a
field. ``token`` stays out of ``repr``, ``model_dump`` and every serialised form, and validation
errors do not echo their input. Header values that look like credentials are masked the same way.

This module imports pydantic (both frameworks bring it) and neither framework; ``import hfrag``
does not import it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_serializer,
    model_validator,
)
from typing_extensions import Self

from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from hfrag.transport import Secret
from hfrag.transport.urls import redact_url

__all__ = ["ADAPTER_CONFIG", "EmbeddingFields", "InferenceFields", "sensitive_headers"]

#: The pydantic config both adapters use: typos fail, ``api_key=`` works, errors never echo input
#: (the input may hold the token).
ADAPTER_CONFIG = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True)

_CLIENT = {
    name: p.default
    for name, p in inspect.signature(EmbeddingsClient.__init__).parameters.items()
    if p.default is not inspect.Parameter.empty
}
_OPTIONS = EmbeddingOptions()

# Header names whose values are credentials, or may be.
_SENSITIVE = ("auth", "cookie", "key", "token", "secret", "signature")
_MASK = "**********"


def sensitive_headers(headers: Mapping[str, str] | None) -> list[str]:
    """Names of ``headers`` whose values may be credentials (``Authorization``, ``X-Api-Key``)."""
    return [name for name in headers or {} if any(s in name.lower() for s in _SENSITIVE)]


class InferenceFields(BaseModel):
    """Where to send requests and how: the connection settings every hfrag adapter has."""

    model: str | None = Field(
        default=None,
        description=(
            "Hub model id served by the Hugging Face router, e.g. "
            "'sentence-transformers/all-MiniLM-L6-v2'. Give this or endpoint_url, not both."
        ),
    )
    endpoint_url: str | None = Field(
        default=None,
        description=(
            "URL of an Inference Endpoint or a TEI-compatible server, used as given (POST to it). "
            "Give this or model, not both."
        ),
    )
    token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("token", "api_key"),
        exclude=True,
        description=(
            "Explicit credential (alias api_key), sent as 'Authorization: Bearer ...' to the "
            "target. When unset, HF_TOKEN or the saved login token is used for Hugging Face "
            "hosts only; a custom endpoint gets no credential unless one is given here."
        ),
    )
    router_url: str | None = Field(
        default=None,
        description=(
            "Router base URL for model ids (default https://router.huggingface.co, or "
            "$HFRAG_ROUTER_URL)."
        ),
    )
    timeout: float | None = Field(
        default=_CLIENT["timeout"],
        description="Seconds for one HTTP attempt (connect, send, each read); None: no limit.",
    )
    max_retries: int = Field(
        default=_CLIENT["max_retries"],
        description=(
            "Retries after the first attempt for 408, 429, 5xx and connection failures "
            "(0 disables)."
        ),
    )
    max_retry_wait: float = Field(
        default=_CLIENT["max_retry_wait"],
        description="Cap in seconds on any single wait between retries, server hints included.",
    )
    deadline: float | None = Field(
        default=_CLIENT["deadline"],
        description="Overall seconds for one call, retries and waits included; None: no limit.",
    )
    headers: dict[str, str] | None = Field(
        default=None,
        repr=False,
        description="Extra HTTP headers for every request (credential-like values are masked).",
    )
    bill_to: str | None = Field(
        default=None, description="Organisation to bill on the router (X-HF-Bill-To header)."
    )
    wait_for_model: bool | None = Field(
        default=None,
        description="Send x-wait-for-model: hold the request while the model loads.",
    )
    use_cache: bool | None = Field(
        default=None, description="Send x-use-cache; False skips the server's response cache."
    )

    @field_serializer("headers")
    def _mask_headers(self, headers: dict[str, str] | None) -> dict[str, str] | None:
        if headers is None:
            return None
        hidden = set(sensitive_headers(headers))
        return {k: _MASK if k in hidden else v for k, v in headers.items()}

    def _connection(self) -> dict[str, Any]:
        """Keyword arguments of a task client's constructor, from these fields."""
        return {
            "model": self.model,
            "endpoint_url": self.endpoint_url,
            "token": None if self.token is None else Secret(self.token.get_secret_value()),
            "router_url": self.router_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "max_retry_wait": self.max_retry_wait,
            "deadline": self.deadline,
            "headers": self.headers,
            "bill_to": self.bill_to,
            "wait_for_model": self.wait_for_model,
            "use_cache": self.use_cache,
        }

    def _target_name(self) -> str:
        """The model id, or the endpoint URL fit for logs (for ``model_name`` and the like)."""
        if self.model:
            return self.model.strip()
        return redact_url(self.endpoint_url.strip()) if self.endpoint_url else ""


class EmbeddingFields(InferenceFields):
    """The embedding options, and the :class:`~hfrag.tasks.EmbeddingsClient` built from all fields.

    The client is built once at validation (which surfaces configuration errors at construction)
    and rebuilt on next use if a field was reassigned since.
    """

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
        default=_OPTIONS.show_progress, description="Show a tqdm progress bar for long jobs."
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
            )
            stale, self._client = (
                self._client,
                EmbeddingsClient(**self._connection(), options=options),
            )
            if stale is not None:
                stale.close()  # its pooled connections would otherwise linger
            self._client_key = key
        return self._client
