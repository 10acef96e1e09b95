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

Copies and pickles: ``copy.deepcopy`` and ``model_copy(deep=True)`` give a working adapter with a
fresh client (no pool or lock is copied). A pickle holds no client and no token, unless the token
was given as a :class:`hfrag.transport.Secret` (kept as :class:`PortableToken`): then it travels.

This module imports pydantic (both frameworks bring it) and neither framework; ``import hfrag``
does not import it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from hfrag._fields.migration import configuration_error, field_names, migrate
from hfrag.errors import HfragError
from hfrag.tasks import TaskClient, transport_config
from hfrag.tasks.engine import check_rate_limiter
from hfrag.transport import Secret
from hfrag.transport.redaction import sensitive_headers, url_secrets
from hfrag.transport.urls import redact_url

__all__ = ["ADAPTER_CONFIG", "InferenceFields", "PortableToken", "sensitive_headers"]


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)

#: The pydantic config both adapters use: typos fail, ``api_key=`` works, errors never echo input
#: (the input may hold the token), and a value assigned after construction is checked as one
#: given to the constructor (see :meth:`InferenceFields.__setattr__`).
ADAPTER_CONFIG = ConfigDict(
    extra="forbid", populate_by_name=True, hide_input_in_errors=True, validate_assignment=True
)

# Defaults come from the one place that applies them to every task client.
_CLIENT = {
    name: p.default
    for name, p in inspect.signature(transport_config).parameters.items()
    if p.default is not inspect.Parameter.empty
}
_MASK = "**********"


_URL_FIELDS = ("endpoint_url", "router_url")
# True while a constructor or an assignment validates: validators' own assignments pass as set.
_VALIDATING: ContextVar[bool] = ContextVar("hfrag_validating", default=False)


def _shown_url(url: Any) -> Any:
    """A URL as shown in reprs and dumps: redacted when it carries a credential."""
    if isinstance(url, str) and url_secrets(url):
        return redact_url(url)
    return url


_CACHES = frozenset({"_client", "_client_key"})


class PortableToken(SecretStr):
    """A token given as :class:`hfrag.transport.Secret`: pickles of the adapter carry it.

    A token given as a plain string (or ``SecretStr``) is left out of pickles: the user chose
    to let it travel only by handing over a ``Secret``.
    """


def _accepted_names(cls: type[BaseModel]) -> set[str]:
    """Every name a class takes as an argument: its fields and their aliases."""
    return {n for name, field in cls.model_fields.items() for n in field_names(field, name)}


class InferenceFields(BaseModel):
    """Where to send requests and how: the connection settings every hfrag adapter has."""

    # The task client these fields describe, and the settings it was built from: a cache, left
    # out of pickles and copies and rebuilt on first use (see ``_cached_client``).
    _client: Any = PrivateAttr(default=None)
    _client_key: tuple[Any, ...] | None = PrivateAttr(default=None)

    #: ``task=`` values (langchain-huggingface) that name this class's own task; others are refused.
    accepted_tasks: ClassVar[tuple[str, ...]] = ()
    #: A chat model that takes a wrapped LLM's settings from ``llm=`` (langchain-huggingface's
    #: ``ChatHuggingFace(llm=...)``).
    takes_llm: ClassVar[bool] = False

    def __init__(self, /, **data: Any) -> None:
        token = _VALIDATING.set(True)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            # pydantic's error is not an HfragError: say the same in hfrag's terms, no input values.
            raise configuration_error(
                exc, type(self).__name__, _accepted_names(type(self))
            ) from None
        finally:
            _VALIDATING.reset(token)

    def __setattr__(self, name: str, value: Any) -> None:
        """``adapter.top_n = 0`` or ``chat.temperature = "hot"`` is refused here, with the
        ``ConfigurationError`` the constructor gives, and the field keeps its old value (pydantic
        would keep the bad one when a model check fails); a good value rebuilds the client."""
        if name not in type(self).model_fields:
            super().__setattr__(name, value)
            return
        if _VALIDATING.get():  # a validator keeping fields in step: the whole is checked
            self.__dict__[name] = value
            self.__pydantic_fields_set__.add(name)
            return
        old = self.__dict__.get(name)
        token = _VALIDATING.set(True)
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            self.__dict__[name] = old
            raise configuration_error(
                exc, type(self).__name__, _accepted_names(type(self))
            ) from None
        except HfragError:
            self.__dict__[name] = old
            raise
        finally:
            _VALIDATING.reset(token)

    def _assign_together(self, values: dict[str, Any]) -> None:
        """Assign several fields that must agree (two names of one setting), checked as one
        assignment: all kept, or none."""
        old = {name: self.__dict__.get(name) for name in values}
        *first, last = values
        for name in first:
            self.__dict__[name] = values[name]
            self.__pydantic_fields_set__.add(name)
        try:
            InferenceFields.__setattr__(self, last, values[last])
        except BaseException:
            self.__dict__.update(old)
            raise

    @model_validator(mode="before")
    @classmethod
    def _migrate_names(cls, data: Any) -> Any:
        return migrate(data, _accepted_names(cls), cls.accepted_tasks, takes_llm=cls.takes_llm)

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
        description=(
            "Seconds for one HTTP attempt, from connecting to the last byte of the answer; "
            "None: no limit."
        ),
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
        description=(
            "Overall seconds for one call: every batch, retry, wait and body read; None: no limit."
        ),
    )
    headers: dict[str, str] | None = Field(
        default=None,
        repr=False,
        description="Extra HTTP headers for every request (credential-like values are masked).",
    )
    max_response_bytes: int | None = Field(
        default=_CLIENT["max_response_bytes"],
        description=(
            "Cap on one response body in bytes; None: automatic (32 MiB, more for big batches)."
        ),
    )
    max_connections: int | None = Field(
        default=None,
        description=(
            "Connection pool size; None: what the class's concurrency needs (64 for LLMs). Raise "
            "it above the number of streams held open at once."
        ),
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

    @field_validator("token", mode="before")
    @classmethod
    def _remember_a_secret(cls, value: Any) -> Any:
        return PortableToken(value.get_secret_value()) if isinstance(value, Secret) else value

    def __getstate__(self) -> dict[Any, Any]:
        """Pickles hold no live client, no credential-like header, and no token unless it was
        given as a ``Secret``."""
        state: dict[Any, Any] = super().__getstate__()
        fields = dict(state["__dict__"])
        if not isinstance(fields.get("token"), PortableToken):
            fields["token"] = None
        hidden = set(sensitive_headers(fields.get("headers")))
        if hidden:  # credential-like header values never travel in a pickle
            fields["headers"] = {k: v for k, v in fields["headers"].items() if k not in hidden}
        state["__dict__"] = fields
        private = state.get("__pydantic_private__")
        if private:
            state["__pydantic_private__"] = {
                k: None if k in _CACHES or isinstance(v, TaskClient) else v
                for k, v in private.items()
            }
        return state

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        # A copy takes the settings, never the cached client (sockets, locks): it builds its own.
        memo = {} if memo is None else memo
        memo[id(self._client)] = None
        memo[id(self._client_key)] = None
        return super().__deepcopy__(memo)

    @field_serializer("headers")
    def _mask_headers(self, headers: dict[str, str] | None) -> dict[str, str] | None:
        if headers is None:
            return None
        hidden = set(sensitive_headers(headers))
        return {k: _MASK if k in hidden else v for k, v in headers.items()}

    @field_serializer("endpoint_url", "router_url")
    def _hide_url_credentials(self, url: str | None) -> str | None:
        shown: str | None = _shown_url(url)
        return shown

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, _shown_url(value) if name in _URL_FIELDS else value

    def _connection(self) -> dict[str, Any]:
        """Keyword arguments of a task client's constructor, from these fields."""
        return {
            "model": self.model,
            "endpoint_url": self.endpoint_url,
            "token": self._token(),
            "router_url": self.router_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "max_retry_wait": self.max_retry_wait,
            "deadline": self.deadline,
            "headers": self.headers,
            "bill_to": self.bill_to,
            "wait_for_model": self.wait_for_model,
            "use_cache": self.use_cache,
            "max_response_bytes": self.max_response_bytes,
            "max_connections": self.max_connections,
        }

    def _token(self) -> str | Secret | None:
        if self.token is None:
            return None
        value = self.token.get_secret_value()
        return Secret(value) if isinstance(self.token, PortableToken) else value

    def _settings_key(self, owner: type[BaseModel]) -> tuple[Any, ...]:
        """The values of ``owner``'s fields, hashable: the client is rebuilt when they change."""
        values = []
        for name in owner.model_fields:
            value = getattr(self, name)
            if isinstance(value, dict):
                value = repr(sorted(value.items()))  # values may be lists or dicts themselves
            elif isinstance(value, list):
                value = tuple(value)
            values.append(value)
        return tuple(values)

    def _request_rate_limiter(self) -> Any:
        """The rate limiter the task client acquires before each request (None here; the
        LangChain embedding and rerank classes give their ``rate_limiter`` field)."""
        return None

    def _cached_client(self, owner: type[BaseModel], build: Callable[[], C]) -> C:
        """The task client of ``owner``'s fields: built once, rebuilt after a field changes."""
        key = self._settings_key(owner)
        if self._client is None or key != self._client_key:
            stale, self._client = self._client, build()
            if stale is not None:
                stale.close()  # its pooled connections would otherwise linger
            self._client_key = key
        client: C = self._client
        if hasattr(client, "rate_limiter"):  # a field of its own: read on every use
            client.rate_limiter = check_rate_limiter(self._request_rate_limiter())
        return client

    def _target_name(self) -> str:
        """The model id, or the endpoint URL fit for logs (for ``model_name`` and the like)."""
        if self.model:
            return self.model.strip()
        return redact_url(self.endpoint_url.strip()) if self.endpoint_url else ""
