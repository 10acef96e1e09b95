"""Turning what came back into a value or an error: the one mapping from HTTP to hfrag errors.

Error bodies come in every shape PROTOCOL.md lists: ``{"error": str, "error_type"?}`` (TEI, TGI,
the HF router, with ``estimated_time`` while a model loads), OpenAI's ``{"error": {"message"}}``,
FastAPI's ``{"detail"}``, plain text (proxies, axum's JSON rejections) and HTML error pages.
"""

from __future__ import annotations

import html
import json
import re
import socket
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from hfrag.errors import (
    CONNECTION_REFUSED,
    NAME_NOT_RESOLVED,
    AuthenticationError,
    BackendError,
    BatchTooLargeError,
    InferenceConnectionError,
    InferenceError,
    InferenceTimeoutError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    UnavailableError,
    batch_limit_from_message,  # noqa: F401 - importable from here, as before
    says_batch_too_large,
)
from hfrag.transport.retry import retry_after
from hfrag.transport.urls import redact_url

# A 413 about one input's length is not a batch problem: splitting the batch cannot fix it.
_TOO_LONG = re.compile(r"\btokens?\b|too long", re.IGNORECASE)
# Nor is one about a prompt name the model does not define (TEI: "`default-prompt-name` is set
# to `x` but it was not found in the Sentence Transformers prompts. Available prompts: [...]").
PROMPT_PROBLEM = re.compile(r"prompt.{0,80}(not (?:be )?found|no prompts|unknown|invalid)", re.I)
_TAGS = re.compile(r"<[^>]+>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_MAX_MESSAGE = 500

_STATUS_CLASSES: dict[int, type[InferenceError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: AuthenticationError,
    404: NotFoundError,
    405: NotFoundError,
    408: InferenceTimeoutError,
    410: NotFoundError,
    413: BatchTooLargeError,
    422: InvalidRequestError,
    424: BackendError,
    429: RateLimitError,
    503: UnavailableError,
    504: InferenceTimeoutError,
}

# Error types a stream may carry, compared case-insensitively.
_STREAM_TYPES: dict[str, type[InferenceError]] = {
    "validation": InvalidRequestError,
    "tokenizer": InvalidRequestError,
    "empty": InvalidRequestError,
    "invalid_request_error": InvalidRequestError,
    "overloaded": RateLimitError,
    "rate_limit_exceeded": RateLimitError,
    "unhealthy": UnavailableError,
}


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def parse_error_body(
    content: bytes, content_type: str | None = None
) -> tuple[str, str | None, Any]:
    """``(message, error_type, decoded_body)`` from an error response body of any shape."""
    text = content.decode("utf-8", errors="replace").strip()
    if not text:
        return "", None, None
    try:
        body: Any = json.loads(text)
    except (ValueError, RecursionError):
        if "html" in (content_type or "").lower() or text.lstrip().startswith("<"):
            title = _TITLE.search(text)
            raw = title.group(1) if title else _TAGS.sub(" ", text)
            return _clip(html.unescape(raw)), None, text
        return _clip(text), None, text
    message, error_type = _message_from_json(body)
    return _clip(message), error_type, body


def _message_from_json(body: Any) -> tuple[str, str | None]:
    if isinstance(body, dict):
        error = body.get("error")
        error_type = body.get("error_type")
        if isinstance(error, dict):
            message = error.get("message") or error.get("error") or json.dumps(error)
            error_type = error.get("type") or error.get("code") or error_type
            return str(message), None if error_type is None else str(error_type)
        if isinstance(error, list):
            return "; ".join(str(e) for e in error), None if error_type is None else str(error_type)
        if error:
            return str(error), None if error_type is None else str(error_type)
        for key in ("message", "detail", "msg"):
            if body.get(key):
                detail = body[key]
                return (detail if isinstance(detail, str) else json.dumps(detail)), None
    if isinstance(body, str):
        return body, None
    return json.dumps(body), None


def error_class(status: int, message: str, error_type: str | None) -> type[InferenceError]:
    """The exception class for a status code and the server's message."""
    if status in (413, 422, 400) and says_batch_too_large(message):
        return BatchTooLargeError
    if status in (413, 422) and (_TOO_LONG.search(message) or PROMPT_PROBLEM.search(message)):
        return InvalidRequestError
    cls = _STATUS_CLASSES.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return BackendError
    return InvalidRequestError


def error_from_response(
    status: int, headers: Mapping[str, str], content: bytes, url: str
) -> InferenceError:
    """The error for a non-2xx response; never raises while parsing."""
    content_type = headers.get("content-type")
    message, error_type, body = parse_error_body(content, content_type)
    if not message:
        message = httpx.codes.get_reason_phrase(status) or "error"
    cls = error_class(status, message, error_type)
    return cls(
        message,
        status=status,
        error_type=error_type,
        url=redact_url(url),
        retry_after=retry_after(headers, body),
        body=body,
    )


def stream_error(payload: Any, url: str | None) -> InferenceError:
    """The error carried by an error event inside a 200 stream."""
    message, error_type = _message_from_json(payload)
    cls = _STREAM_TYPES.get((error_type or "").lower(), BackendError)
    return cls(
        _clip(message), status=200, error_type=error_type, url=redact_url(url or ""), body=payload
    )


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (httpx -> httpcore -> the OS error)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_DNS_WORDS = re.compile(
    r"name or service not known|nodename nor servname|name resolution|getaddrinfo|"
    r"no address associated",
    re.IGNORECASE,
)


def connection_failure(exc: BaseException) -> str | None:
    """``NAME_NOT_RESOLVED``, ``CONNECTION_REFUSED`` or None for another connection failure."""
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror) or _DNS_WORDS.search(str(cause)):
            return NAME_NOT_RESOLVED
        if isinstance(cause, ConnectionRefusedError) or "connection refused" in str(cause).lower():
            return CONNECTION_REFUSED
    return None


def error_from_exception(exc: Exception, url: str) -> InferenceError:
    """Map an httpx failure (no usable response) to the hfrag error tree."""
    safe_url = redact_url(url)
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return InferenceTimeoutError(f"request timed out ({detail})", url=safe_url)
    failure = connection_failure(exc) if isinstance(exc, httpx.ConnectError) else None
    if failure == NAME_NOT_RESOLVED:
        host = httpx.URL(url).host if url else ""
        message = f"connection failed: the host name {host!r} does not resolve (DNS) ({detail})"
    elif failure == CONNECTION_REFUSED:
        message = f"connection failed: refused, nothing is listening there ({detail})"
    else:
        message = f"connection failed ({detail})"
    return InferenceConnectionError(message, url=safe_url, error_type=failure)


def _fast_loads() -> Callable[[bytes], Any] | None:
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a dependency; json still works
        return None
    return orjson.loads


# orjson parses a vector-heavy body about 10x faster than json (benchmarks/bench_decode.py). It
# refuses what json accepts (NaN, huge integers): those bodies go through json, so the caller
# still sees them and reports NaN as NaN rather than "not JSON".
_loads = _fast_loads()


def decode_json(content: bytes, url: str, status: int = 200) -> Any:
    """The JSON value of a successful response, or a :class:`MalformedResponseError`."""
    if _loads is not None:
        try:
            return _loads(content)
        except (ValueError, RecursionError):
            pass
    try:
        return json.loads(content)
    except (ValueError, RecursionError) as exc:
        snippet = content[:200].decode("utf-8", errors="replace")
        raise MalformedResponseError(
            f"response is not JSON: {snippet!r}", status=status, url=redact_url(url)
        ) from exc
