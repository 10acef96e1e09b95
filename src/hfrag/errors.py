"""The one exception tree of hfrag.

Every failure that reaches a caller is one of these classes. Transport-level failures are mapped
here once, at the transport boundary; nothing above it sees an ``httpx`` exception or a raw error
body::

    HfragError
    ├── ConfigurationError        bad arguments to a client (also a ValueError)
    ├── InputError                bad input found before sending (also a ValueError)
    └── InferenceError            anything that went wrong talking to a server
        ├── AuthenticationError   401, 403: missing, wrong or under-scoped token
        ├── PaymentRequiredError  402: credits exhausted
        ├── NotFoundError         404, 410: unknown model or route, retired host
        ├── InvalidRequestError   400, 422: the server rejected the input
        │   └── BatchTooLargeError   413, or 422 "batch size N > maximum allowed batch size M"
        ├── RateLimitError        429 (retried)
        ├── UnavailableError      503: model loading, scaled to zero, unhealthy (retried)
        ├── BackendError          424, 500, 502, other 5xx, error events in a stream
        ├── InferenceTimeoutError 408, 504, client-side timeouts, the overall deadline
        ├── InferenceConnectionError  refused, reset or dropped connections, truncated bodies
        ├── RedirectError         3xx: the URL redirects elsewhere (redirects are not followed)
        └── MalformedResponseError    a 2xx answer whose body is not what the protocol promises,
                                      no content (204), an oversized body, an invalid status

Each ``InferenceError`` carries ``status`` (None when no response came), the server's ``message``
and ``error_type``, the ``url`` (credentials never appear in it), the retry hint the server gave
(``retry_after``), and the input ``positions`` of a batch job that it cost. ``str(err)`` says what
happened and what to do about it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

#: ``error_type`` of a connection error whose host name did not resolve (never retried).
NAME_NOT_RESOLVED = "name_not_resolved"
#: ``error_type`` of a refused connection (retried only within ``RetryPolicy.refused_budget``).
CONNECTION_REFUSED = "connection_refused"

# How servers say "too many inputs in one request" (docs/PROTOCOL.md, section 4). Each pattern's
# group, when it has one, is the server's limit.
_BATCH_LIMITS = (
    # TEI (/embed, /rerank and /v1/embeddings alike), 413 (422 behind some proxies)
    re.compile(r"batch size \d+ > maximum allowed batch size (\d+)", re.IGNORECASE),
    # OpenAI and Azure OpenAI, 400: "Too many inputs. The max number of inputs is 16."
    re.compile(r"too many inputs\b.*?\bmax(?:imum)? number of inputs is (\d+)", re.IGNORECASE),
    # DashScope-style OpenAI-compatible APIs, 400
    re.compile(r"batch size is invalid, it should not be larger than (\d+)", re.IGNORECASE),
    # FastAPI/pydantic servers (Infinity), 422 on the ``input`` list
    re.compile(r"list should have at most (\d+) items? after validation", re.IGNORECASE),
    # Any other "too many inputs" without a number: split in half
    re.compile(r"too many inputs", re.IGNORECASE),
)


def batch_limit_from_message(message: str) -> int | None:
    """The server's maximum batch size when its message states it (TEI's, OpenAI's... wording)."""
    for pattern in _BATCH_LIMITS:
        match = pattern.search(message)
        if match and match.groups():
            return int(match.group(1))
    return None


def says_batch_too_large(message: str) -> bool:
    """Whether a 400/413/422 message says the request had too many inputs (split, do not fail)."""
    return any(pattern.search(message) for pattern in _BATCH_LIMITS)


class HfragError(Exception):
    """Base class of every error hfrag raises on purpose."""


class ConfigurationError(HfragError, ValueError):
    """A client was configured with missing, conflicting or invalid arguments."""


class InputError(HfragError, ValueError):
    """Input was rejected before any request was sent (for example an empty text).

    ``positions`` lists the offending input positions.
    """

    def __init__(self, message: str, positions: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.positions: tuple[int, ...] = tuple(positions)


class InferenceError(HfragError):
    """A request to an inference server failed.

    Attributes:
        status: HTTP status code, or None when no response arrived.
        message: the server's own error message (or a description of the local failure).
        error_type: the server's error type when it gave one (``Validation``, ``overloaded``...).
        url: the request URL.
        retry_after: seconds the server asked us to wait, when it said.
        positions: input positions of a batch job that were not processed because of this error.
        attempts: how many attempts hfrag made before giving up (None: not recorded).
        elapsed: seconds from the first attempt until hfrag gave up (None: not recorded).
        advice: what to do about this very error, when the transport knows more than the
            class's ``hint`` (the target kind, whether a credential was sent); replaces it.
    """

    #: What the user can do about this class of error; subclasses override it.
    hint: str = ""
    #: Whether the transport retries this class of error.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        url: str | None = None,
        retry_after: float | None = None,
        positions: Sequence[int] | None = None,
        body: Any = None,
        attempts: int | None = None,
        elapsed: float | None = None,
        advice: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.error_type = error_type
        self.url = url
        self.retry_after = retry_after
        self.positions: tuple[int, ...] | None = None if positions is None else tuple(positions)
        #: The decoded error body (JSON value or text), for callers that need more than message.
        self.body = body
        self.attempts = attempts
        self.elapsed = elapsed
        self.advice = advice
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"HTTP {self.status}" if self.status is not None else "no response"
        parts = [f"{head} from {self.url}" if self.url else head]
        if self.error_type:
            parts.append(f"({self.error_type})")
        text = " ".join(parts) + f": {self.message}"
        if self.positions is not None:
            text += f" [inputs not processed: {_ranges(self.positions)}]"
        if self.attempts is not None and self.elapsed is not None:
            tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
            text += f" (hfrag gave up after {tries} in {self.elapsed:.1f} s)"
        advice = self.advice if self.advice is not None else self.hint
        if advice:
            text += f". {advice}"
        return text

    def with_positions(self, positions: Sequence[int]) -> InferenceError:
        """A copy of this error, of the same class, naming the input positions it cost."""
        return self.replaced(positions=tuple(positions))

    def replaced(self, **changes: Any) -> InferenceError:
        """A copy of this error, of the same class, with some attributes changed."""
        clone = copy.copy(self)
        for name, value in changes.items():
            setattr(clone, name, value)
        clone.args = (clone._render(),)
        return clone

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "status": self.status,
            "error_type": self.error_type,
            "url": self.url,
            "retry_after": self.retry_after,
            "positions": self.positions,
            "body": self.body,
            "attempts": self.attempts,
            "elapsed": self.elapsed,
            "advice": self.advice,
        }
        return (_rebuild, (type(self), self.message, kwargs))


def _rebuild(cls: type[InferenceError], message: str, kwargs: dict[str, Any]) -> InferenceError:
    return cls(message, **kwargs)


def _ranges(positions: Sequence[int]) -> str:
    """Render ``[0, 1, 2, 5]`` as ``0-2, 5`` so a 10,000-item failure stays readable."""
    out: list[str] = []
    items = sorted(positions)
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ", ".join(out) if out else "none"


class AuthenticationError(InferenceError):
    """401 or 403: the token is missing, wrong, or lacks the needed permission."""

    hint = "Check the credential: pass token=... (or set HF_TOKEN for Hugging Face hosts)"


class PaymentRequiredError(InferenceError):
    """402: the account or organisation has no credits left."""

    hint = "Add credits or bill another organisation with bill_to=..."


class NotFoundError(InferenceError):
    """404 or 410: unknown model, wrong route, or a retired host."""

    hint = (
        "Check the model id or endpoint URL; a model must be deployed by a provider to be "
        "served on the router"
    )


class InvalidRequestError(InferenceError):
    """400 or 422: the server rejected the input (validation, tokenizer, empty input)."""

    hint = "Fix the input or the request options; retrying the same request will fail again"


class BatchTooLargeError(InvalidRequestError):
    """413, or 422 saying the batch exceeds the server's maximum; batch jobs split and go on.

    ``max_batch_size`` is the server's limit when its message names it.
    """

    hint = "Lower batch_size (batch jobs split automatically)"

    @property
    def max_batch_size(self) -> int | None:
        return batch_limit_from_message(self.message)


class RateLimitError(InferenceError):
    """429: too many requests or an overloaded server. Retried, honouring the server's hint."""

    hint = "Lower max_concurrency, raise max_retries, or wait before sending more"
    retryable = True


class UnavailableError(InferenceError):
    """503: the model is loading, the endpoint is scaled to zero, or the server is unhealthy.

    Retried, honouring ``estimated_time``.
    """

    hint = "The model may still be loading: raise max_retries or the deadline, or try again later"
    retryable = True


class BackendError(InferenceError):
    """424, 500, 502 and other server faults, and error events inside a stream."""

    hint = "The server failed while handling the request; it is retried where that is safe"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # 424 means the model cannot do this task; retrying cannot help. 5xx may be transient.
        self.retryable = self.status is not None and self.status >= 500


class InferenceTimeoutError(InferenceError):
    """408, 504, a client-side timeout, or the overall deadline ran out."""

    hint = "Raise timeout (per request) or deadline (whole call), or send smaller batches"
    retryable = True


class InferenceConnectionError(InferenceError):
    """The connection failed: refused, reset, dropped mid-response, or a truncated body.

    ``error_type`` is ``"name_not_resolved"`` when the host name does not resolve (DNS; never
    retried) and ``"connection_refused"`` when nothing listens at the address (retried only for
    a few seconds, see ``RetryPolicy.refused_budget``).
    """

    hint = "Check that the server is running and the URL is right"
    retryable = True

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # A name that does not resolve now will not resolve a second later.
        self.retryable = self.error_type != NAME_NOT_RESOLVED


class RedirectError(InferenceError):
    """3xx: the URL redirects elsewhere. hfrag never follows a redirect.

    Following one would turn a POST into a GET (301, 302, 303) and could carry the credential to
    another host; the message names where the server points (user-info and query values hidden).
    """

    hint = (
        "If you trust the new location, use it as the URL (endpoint_url=... or router_url=...); "
        "a trailing slash or http:// instead of https:// is a common cause"
    )


class MalformedResponseError(InferenceError):
    """A successful status with a body that does not match the protocol (shape, count, values)."""

    hint = "The server answered in an unexpected shape; check that the URL serves this task"


__all__ = [
    "CONNECTION_REFUSED",
    "NAME_NOT_RESOLVED",
    "AuthenticationError",
    "BackendError",
    "BatchTooLargeError",
    "ConfigurationError",
    "HfragError",
    "InferenceConnectionError",
    "InferenceError",
    "InferenceTimeoutError",
    "InputError",
    "InvalidRequestError",
    "MalformedResponseError",
    "NotFoundError",
    "PaymentRequiredError",
    "RateLimitError",
    "RedirectError",
    "UnavailableError",
]
