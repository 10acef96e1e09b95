"""How a transport behaves: timeouts, retries, size caps, credentials and the headers every
request carries. Every value is checked here, at construction, whichever layer builds it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal

from hfrag._checks import check_bool, check_header_value, check_headers, check_int, check_number
from hfrag._version import __version__
from hfrag.errors import ConfigurationError
from hfrag.transport.credentials import Secret, token_for
from hfrag.transport.redaction import header_secrets
from hfrag.transport.request import Request
from hfrag.transport.retry import RetryPolicy

USER_AGENT = f"hfrag/{__version__}"

#: The body-size cap when neither the user nor the task said otherwise.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: The size cap of one event of a stream.
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class TransportConfig:
    """Settings shared by the sync and async drivers.

    Attributes:
        token: an explicit credential, sent to whatever URL the client targets. When None, the
            ambient Hugging Face token is used, for Hugging Face hosts only. Surrounding
            whitespace is stripped; a value that cannot be sent in a header is refused.
        timeout: seconds for one attempt of a request, from connecting to the last byte of the
            answer (a server that drips its body slowly still times out); for a stream, the
            longest wait for the next bytes.
        retry: the retry policy (``max_retries``, waits, the whole-call deadline).
        headers: extra headers for every request (they win over hfrag's own, except the
            credential, which goes in ``Authorization`` unless these headers set it).
        bill_to: organisation to bill on the router (``X-HF-Bill-To``).
        wait_for_model: send ``x-wait-for-model`` (hold the request while a model loads).
        use_cache: send ``x-use-cache`` (``False`` skips the server's response cache).
        max_connections: connection pool size.
        max_response_bytes: cap on one response body; past it the answer is refused with
            ``MalformedResponseError`` without reading further. None: automatic (32 MiB, or more
            when the task expects a bigger answer, e.g. a large embedding batch).
        max_event_bytes: cap on one event of a stream.
        target_kind: ``"router"`` or ``"endpoint"``: what the client calls, for the advice
            errors give (None: guessed from the URL).
    """

    token: Secret | None = None
    timeout: float | None = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Header values may be credentials (Authorization, X-Api-Key): kept out of repr.
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    bill_to: str | None = None
    wait_for_model: bool | None = None
    use_cache: bool | None = None
    max_connections: int = 64
    target_kind: Literal["router", "endpoint"] | None = None
    max_response_bytes: int | None = None
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES

    def __post_init__(self) -> None:
        token = self.token
        if token is not None:
            if not isinstance(token, Secret):
                raise ConfigurationError(
                    f"token must be a string or hfrag.transport.Secret, got {type(token).__name__}"
                )
            raw = token.get_secret_value()
            if not isinstance(raw, str):
                raise ConfigurationError(f"token must be a string, got {type(raw).__name__}")
            value = check_header_value("the token", raw.strip())
            if value != token.get_secret_value():
                object.__setattr__(self, "token", type(token)(value))
        check_number("timeout", self.timeout, positive=True, optional=True, unit="seconds")
        if not isinstance(self.retry, RetryPolicy):
            raise ConfigurationError(
                f"retry must be a RetryPolicy, got {type(self.retry).__name__}"
            )
        headers = check_headers("headers", self.headers)
        object.__setattr__(self, "headers", MappingProxyType(headers))
        if self.bill_to is not None:
            check_header_value("bill_to", self.bill_to)
        check_bool("wait_for_model", self.wait_for_model, optional=True)
        check_bool("use_cache", self.use_cache, optional=True)
        check_int("max_connections", self.max_connections, minimum=1)
        check_int("max_response_bytes", self.max_response_bytes, minimum=1, optional=True)
        check_int("max_event_bytes", self.max_event_bytes, minimum=1)

    def __deepcopy__(self, memo: dict[int, Any]) -> TransportConfig:
        return self  # immutable

    def __getstate__(self) -> dict[str, Any]:
        # A token given as a plain string (LocalSecret) pickles as None: see credentials.py.
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["headers"] = dict(self.headers)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def secrets(self) -> list[str]:
        """Every credential this configuration holds, for scrubbing messages and logs."""
        out = header_secrets(self.headers)
        if self.token is not None and self.token.get_secret_value():
            out.append(self.token.get_secret_value())
        return out

    def response_cap(self, request: Request) -> int:
        """The body-size cap for ``request``: the user's, else the task's estimate or default."""
        if self.max_response_bytes is not None:
            return self.max_response_bytes
        return max(DEFAULT_MAX_RESPONSE_BYTES, request.max_response_bytes or 0)

    def headers_for(self, request: Request) -> dict[str, str]:
        """Every header of ``request``, credential included (the one place it is added)."""
        out: dict[str, str] = {"user-agent": USER_AGENT, "accept": "application/json"}
        if request.stream:
            out["accept"] = "text/event-stream"
        if self.wait_for_model is not None:
            out["x-wait-for-model"] = "true" if self.wait_for_model else "false"
        if self.use_cache is not None:
            out["x-use-cache"] = "true" if self.use_cache else "false"
        if self.bill_to:
            out["x-hf-bill-to"] = self.bill_to
        for source in (request.headers, self.headers):
            out.update({k.lower(): v for k, v in source.items()})
        if "authorization" not in out:
            token = token_for(request.url, self.token)
            if token:
                out["authorization"] = f"Bearer {token}"
        return out
