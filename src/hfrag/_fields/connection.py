"""The connection settings every hfrag adapter has, declared once as a pydantic mixin.

:class:`InferenceFields` holds where and how to connect (target, credential, timeouts, retries,
headers). Defaults and range rules are not repeated here: defaults are read from the task
client, and the values are checked by the task client when it is built, at construction, so a bad
combination fails there with hfrag's own message. Every bad argument raises
:class:`~hfrag.errors.ConfigurationError` (an ``HfragError`` and a ``ValueError``), never
pydantic's ``ValidationError``; names users bring from langchain-huggingface and LlamaIndex are
accepted or refused by :mod:`~hfrag._fields.migration`.

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
from typing import Any, ClassVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    model_validator,
)

from hfrag._fields.migration import configuration_error, migrate
from hfrag.tasks import transport_config
from hfrag.transport import Secret
from hfrag.transport.urls import redact_url

__all__ = ["ADAPTER_CONFIG", "InferenceFields", "sensitive_headers"]

#: The pydantic config both adapters use: typos fail, ``api_key=`` works, errors never echo input
#: (the input may hold the token).
ADAPTER_CONFIG = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True)

# Defaults come from the one place that applies them to every task client.
_CLIENT = {
    name: p.default
    for name, p in inspect.signature(transport_config).parameters.items()
    if p.default is not inspect.Parameter.empty
}

# Header names whose values are credentials, or may be.
_SENSITIVE = ("auth", "cookie", "key", "token", "secret", "signature")
_MASK = "**********"


def sensitive_headers(headers: Mapping[str, str] | None) -> list[str]:
    """Names of ``headers`` whose values may be credentials (``Authorization``, ``X-Api-Key``)."""
    return [name for name in headers or {} if any(s in name.lower() for s in _SENSITIVE)]


def _accepted_names(cls: type[BaseModel]) -> set[str]:
    """Every name a class takes as an argument: its fields and their aliases."""
    names = set(cls.model_fields)
    for field in cls.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias)
    return names


class InferenceFields(BaseModel):
    """Where to send requests and how: the connection settings every hfrag adapter has."""

    #: ``task=`` values (langchain-huggingface) that name this class's own task; others are refused.
    accepted_tasks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            # pydantic's error is not an HfragError: say the same in hfrag's terms, no input values.
            raise configuration_error(
                exc, type(self).__name__, _accepted_names(type(self))
            ) from None

    @model_validator(mode="before")
    @classmethod
    def _migrate_names(cls, data: Any) -> Any:
        return migrate(data, _accepted_names(cls), cls.accepted_tasks)

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
