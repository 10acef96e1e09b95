"""What both drivers share: preparing an attempt, judging its outcome, deciding to retry.

The sync and async drivers differ only in how they send and how they sleep; every decision is
made here or in the pure modules this one calls.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import httpx

from hfrag.errors import InferenceError
from hfrag.transport.advice import advise
from hfrag.transport.config import TransportConfig
from hfrag.transport.request import Request
from hfrag.transport.responses import decode_json, error_from_response
from hfrag.transport.sse import DONE, SSEDecoder, SSEEvent, decode_event
from hfrag.transport.urls import redact_url

logger = logging.getLogger("hfrag.transport")


class DriverCore:
    """State and decisions common to :class:`SyncTransport` and :class:`AsyncTransport`."""

    def __init__(self, config: TransportConfig | None = None) -> None:
        self.config = config or TransportConfig()
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timeout={self.config.timeout}, retry={self.config.retry})"

    def _limits(self) -> httpx.Limits:
        n = self.config.max_connections
        return httpx.Limits(max_connections=n, max_keepalive_connections=n)

    def _attempt(self, request: Request, start: float) -> tuple[dict[str, str], httpx.Timeout]:
        """Headers and timeout for the next attempt of ``request``."""
        timeout = request.timeout if request.timeout is not None else self.config.timeout
        per_attempt = self.config.retry.attempt_timeout(timeout, time.monotonic() - start)
        return self.config.headers_for(request), httpx.Timeout(per_attempt)

    def _wait_or_raise(
        self, request: Request, attempt: int, error: InferenceError, start: float
    ) -> float:
        """Seconds to sleep before the next attempt; raises ``error`` when it is time to stop.

        The error raised says what to do about it (see :func:`~hfrag.transport.advice.advise`).
        """
        elapsed = time.monotonic() - start
        wait = self.config.retry.next_wait(attempt, error, elapsed, self._rng)
        if wait is None:
            raise advise(
                error,
                method=request.method,
                url=request.url,
                body=request.json,
                headers=self.config.headers_for(request),
                explicit_token=self.config.token is not None,
                target=self.config.target_kind,
                attempts=attempt + 1,
                elapsed=elapsed,
            ) from error.__cause__
        logger.debug(
            "retrying %s %s: attempt %d of %d in %.2fs after %s",
            request.method,
            redact_url(request.url),
            attempt + 2,
            self.config.retry.max_retries + 1,
            wait,
            error.message if error.status is None else f"HTTP {error.status}",
        )
        return wait


def _scrub(content: bytes, response: httpx.Response) -> bytes:
    """``content`` without the credential the request carried, should the server echo it."""
    auth = response.request.headers.get("authorization", "")
    token = auth.split(" ", 1)[-1].strip().encode()
    return content.replace(token, b"***") if len(token) >= 8 else content


def check_status(response: httpx.Response, content: bytes, url: str) -> None:
    """Raise the mapped error for a non-2xx answer."""
    if response.status_code >= 400:
        content = _scrub(content, response)
        raise error_from_response(response.status_code, response.headers, content, url)


def decode_body(response: httpx.Response, url: str) -> Any:
    """The decoded JSON of a response, or the mapped error."""
    content = response.content
    check_status(response, content, url)
    if not content.strip():
        return None
    return decode_json(_scrub(content, response), url, response.status_code)


def is_event_stream(headers: Mapping[str, str]) -> bool:
    """Whether a 2xx answer to a streaming request really is an event stream."""
    return "text/event-stream" in headers.get("content-type", "").lower()


class StreamDecoder:
    """Lines in, payloads out, with ``[DONE]`` and end-of-stream handled once for both drivers."""

    def __init__(self, url: str) -> None:
        self._sse = SSEDecoder()
        self._url = url
        self.done = False

    def feed(self, line: str) -> list[Any]:
        return self._decode(self._sse.feed(line))

    def finish(self) -> list[Any]:
        return self._decode(self._sse.flush())

    def _decode(self, event: SSEEvent | None) -> list[Any]:
        if event is None or self.done:
            return []
        payload = decode_event(event, self._url)
        if payload is DONE:
            self.done = True
            return []
        return [payload]
