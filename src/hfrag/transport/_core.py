"""What both drivers share: preparing an attempt, judging its outcome, deciding to retry.

The sync and async drivers differ only in how they send, read and sleep; every decision is made
here or in the pure modules this one calls:

- time: each attempt gets ``timeout`` shortened to what is left of the call's deadline
  (:mod:`~hfrag.transport.deadline`), and the whole body read counts, not each socket read;
- size: a body is read in chunks and counted against a cap, never read whole first;
- status: only a 2xx with content is an answer; 204/205, 1xx, 3xx (redirects are not followed)
  and invalid codes are errors, as are 4xx and 5xx;
- secrets: every error leaving a driver is scrubbed of the credentials the client holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import time
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import httpx

from hfrag.errors import (
    InferenceConnectionError,
    InferenceError,
    MalformedResponseError,
    RedirectError,
)
from hfrag.transport import redaction
from hfrag.transport.advice import advise
from hfrag.transport.config import DEFAULT_MAX_EVENT_BYTES, TransportConfig
from hfrag.transport.deadline import call_end, deadline_error, earliest, remaining
from hfrag.transport.request import Request
from hfrag.transport.responses import decode_json, error_from_response, stream_error
from hfrag.transport.retry import timeout_within
from hfrag.transport.sse import DONE, SSEDecoder, SSEEvent, decode_event, is_cut
from hfrag.transport.urls import redact_url

logger = logging.getLogger("hfrag.transport")
redaction.install_log_filter()

#: How much of an error body is kept: enough for any server's message.
ERROR_BODY_BYTES = 64 * 1024


class DriverCore:
    """State and decisions common to :class:`SyncTransport` and :class:`AsyncTransport`.

    A driver is fork-aware: its pool belongs to the process that opened it, and a child process
    opens its own (see :meth:`_forked`). It copies and pickles as a fresh driver with the same
    configuration (a token given as a plain string is left out of pickles).
    """

    def __init__(self, config: TransportConfig | None = None) -> None:
        self.config = config or TransportConfig()
        self._setup()

    def _setup(self) -> None:
        self._rng = random.Random()
        self._pid = os.getpid()
        redaction.register(self, self.config.secrets())
        weakref.finalize(self, redaction.forget, id(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timeout={self.config.timeout}, retry={self.config.retry})"

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = state["config"]
        self._setup()

    def __deepcopy__(self, memo: dict[int, Any]) -> DriverCore:
        return type(self)(self.config)

    def _forked(self) -> bool:
        """True once, in a child process, before anything of the parent's pool is touched."""
        if self._pid == os.getpid():
            return False
        self._pid = os.getpid()
        return True

    def _limits(self) -> httpx.Limits:
        n = self.config.max_connections
        return httpx.Limits(max_connections=n, max_keepalive_connections=n)

    def _call_end(self) -> float | None:
        """When the current call must end: the task client's scope, or this driver's own."""
        deadline = self.config.retry.deadline
        own = None if deadline is None else time.monotonic() + deadline
        return earliest(own, call_end())

    def _attempt(self, request: Request, end: float | None) -> tuple[dict[str, str], float | None]:
        """Headers and time budget (seconds, None: unbounded) of the next attempt."""
        left = remaining(end)
        if left is not None and left <= 0:
            raise deadline_error(redact_url(request.url))
        timeout = request.timeout if request.timeout is not None else self.config.timeout
        headers = self.config.headers_for(request)
        redaction.register(
            self, redaction.url_secrets(request.url) + redaction.header_secrets(headers)
        )
        return headers, timeout_within(timeout, left)

    @staticmethod
    def _build(
        client: httpx.Client | httpx.AsyncClient,
        request: Request,
        headers: dict[str, str],
        budget: float | None,
    ) -> httpx.Request:
        """The httpx request of one attempt; ``budget`` bounds each connect, write and read.

        A body that cannot be encoded as UTF-8 (a lone surrogate in a prompt, a message or an
        option) is the caller's input error, raised before anything is sent.
        """
        try:
            return client.build_request(
                request.method,
                request.url,
                json=request.json,
                headers=headers,
                timeout=httpx.Timeout(budget),
            )
        except UnicodeEncodeError:
            from hfrag.errors import InputError

            raise InputError(
                "the request holds text that cannot be encoded as UTF-8 (a lone surrogate "
                "character, often from decoding bytes with errors='surrogateescape'); clean it, "
                "e.g. text.encode('utf-8', 'replace').decode('utf-8')"
            ) from None

    def _pool_error(self, request: Request, budget: float | None) -> InferenceError:
        """A wait for a pooled connection that ran out of time: said as such, not as a slow
        server (every connection of the pool was busy, e.g. with streams held open)."""
        from hfrag.errors import InferenceTimeoutError

        n = self.config.max_connections
        return InferenceTimeoutError(
            f"waited {budget:g} s for a free connection: all {n} connections of this client's "
            f"pool were in use (open streams hold theirs until they end); give the client "
            f"max_connections=... above the number of requests and streams it runs at once",
            url=redact_url(request.url),
            error_type="pool",
        )

    def _timeout_error(self, request: Request, end: float | None, budget: float | None) -> Any:
        left = remaining(end)
        if left is not None and left <= 0.01:
            return deadline_error(redact_url(request.url))
        from hfrag.errors import InferenceTimeoutError

        return InferenceTimeoutError(
            f"no complete answer within the {budget:g} s timeout of one attempt",
            url=redact_url(request.url),
        )

    def _wait_or_raise(
        self,
        request: Request,
        attempt: int,
        error: InferenceError,
        end: float | None,
        start: float,
    ) -> float:
        """Seconds to sleep before the next attempt; raises ``error`` when it is time to stop.

        The error raised says what to do about it (see :func:`~hfrag.transport.advice.advise`).
        """
        policy = self.config.retry
        elapsed = time.monotonic() - start
        if request.paced and error.status in (429, 503):
            raise error  # the caller's budget backs off and resends (Request.paced)
        wait = policy.wait_within(
            attempt, error, None, self._rng, request.max_retries, elapsed=elapsed
        )
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
        left = remaining(end)
        if left is not None and wait >= left:
            # Waking up after the deadline would only fail later: the deadline ends the call now.
            # The cause is named, not repeated: its text is in ``__cause__``.
            failed = f"HTTP {error.status}" if error.status is not None else "no response"
            raise deadline_error(
                redact_url(request.url),
                f"attempt {attempt + 1} got {failed}, and the wait before the next would end "
                "past the deadline",
                error_type=error.error_type,
            ) from error
        logger.debug(
            "retrying %s %s: attempt %d of %d in %.2fs after %s",
            request.method,
            redact_url(request.url),
            attempt + 2,
            (policy.max_retries if request.max_retries is None else request.max_retries) + 1,
            wait,
            error.message if error.status is None else f"HTTP {error.status}",
        )
        return wait

    def _scrubbed(self, error: InferenceError, request: Request) -> InferenceError:
        """``error`` without any credential this driver holds or sent."""
        secrets = self.config.secrets() + redaction.url_secrets(request.url)
        # A bad ambient token raises here: then nothing more of it can be in the message.
        with contextlib.suppress(Exception):
            secrets += redaction.header_secrets(self.config.headers_for(request))
        return redaction.scrub_error(error, secrets)


def is_answer(status: int) -> bool:
    """Whether a status carries an answer: 2xx with content (204 and 205 have none)."""
    return 200 <= status < 300 and status not in (204, 205)


def status_error(response: httpx.Response, content: bytes, url: str) -> InferenceError:
    """The error for a response that is not an answer."""
    status = response.status_code
    safe = redact_url(url)
    if 300 <= status < 400:
        location = response.headers.get("location")
        where = redact_url(urljoin(url, location)) if location else "an unnamed location"
        return RedirectError(
            f"the server redirects ({status}) to {where}; hfrag does not follow redirects",
            status=status,
            url=safe,
            body={"location": where},
        )
    if 200 <= status < 300:
        return MalformedResponseError(
            f"HTTP {status}: the server answered with no content where a JSON answer was expected",
            status=status,
            url=safe,
        )
    if status < 200 or status >= 600:
        return MalformedResponseError(
            f"HTTP {status} is not a final HTTP status an inference server answers with",
            status=status,
            url=safe,
        )
    return error_from_response(status, response.headers, content, url)


def decode_answer(response: httpx.Response, content: bytes, url: str) -> Any:
    """The decoded JSON of an answer (None for an empty body), or the mapped error."""
    if not is_answer(response.status_code):
        raise status_error(response, content, url)
    if not content.strip():
        return None
    return decode_json(content, url, response.status_code)


class BodyBuffer:
    """A body read chunk by chunk, refused (or, for error bodies, cut) past ``limit`` bytes."""

    def __init__(self, response: httpx.Response, limit: int, url: str) -> None:
        self.truncate = not is_answer(response.status_code)
        self.limit = ERROR_BODY_BYTES if self.truncate else limit
        self.status = response.status_code
        self.url = url
        self.data = bytearray()
        declared = response.headers.get("content-length", "")
        if not self.truncate and declared.isdigit() and int(declared) > self.limit:
            raise self.too_large(f"declares {int(declared)} bytes")

    def too_large(self, detail: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"the response body {detail}, more than the cap of {self.limit} bytes "
            "(max_response_bytes); it was not read further",
            status=self.status,
            url=redact_url(self.url),
        )

    def add(self, chunk: bytes) -> bool:
        """Append ``chunk``; False when an error body is full (stop reading)."""
        self.data += chunk
        if len(self.data) <= self.limit:
            return True
        if self.truncate:
            del self.data[self.limit :]
            return False
        raise self.too_large("goes on past the cap")


def whole_answer(content: bytes, url: str) -> Any:
    """The JSON answer a server sent instead of the event stream asked for; an error body in
    it (``{"error": ...}``) is raised as the error it says, as an error event would be."""
    payload = decode_json(content, url)
    if isinstance(payload, dict) and payload.get("error"):
        raise stream_error(payload, url)
    return payload


def is_event_stream(headers: Mapping[str, str]) -> bool:
    """Whether a 2xx answer to a streaming request really is an event stream."""
    return "text/event-stream" in headers.get("content-type", "").lower()


_LINE_END = re.compile(rb"\r\n|\r|\n")


_BOM = b"\xef\xbb\xbf"


class StreamDecoder:
    """Bytes in, payloads out: line splitting, ``[DONE]`` and end of stream, for both drivers.

    Memory stays bounded: a line or an event longer than ``max_event_bytes`` is refused. One
    UTF-8 byte-order mark before the first line is dropped (the event-stream rules); a line that
    is not UTF-8 is a :class:`MalformedResponseError`, as the same bytes in a JSON answer are.
    """

    def __init__(self, url: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SSEDecoder()
        self._url = url
        self._limit = max_event_bytes
        self._buffer = bytearray()
        self._event_bytes = 0
        self._started = False
        self.done = False

    def feed(self, line: str) -> list[Any]:
        """Payloads completed by one decoded line."""
        return self._line(line.rstrip("\r\n").encode())

    def feed_bytes(self, chunk: bytes) -> list[Any]:
        """Payloads completed by ``chunk``."""
        self._buffer += chunk
        if not self._started:
            if len(self._buffer) < len(_BOM) and _BOM.startswith(bytes(self._buffer)):
                return []  # perhaps the first bytes of a byte-order mark: wait for more
            if self._buffer.startswith(_BOM):
                del self._buffer[: len(_BOM)]
            self._started = True
        out: list[Any] = []
        while not self.done:
            match = _LINE_END.search(self._buffer)
            # A CR at the very end may be the first half of CRLF: wait for the next chunk.
            if match is None or (match.group() == b"\r" and match.end() == len(self._buffer)):
                break
            line = bytes(self._buffer[: match.start()])
            del self._buffer[: match.end()]
            out += self._line(line)
        if self._event_bytes + len(self._buffer) > self._limit:
            raise self._too_large()
        return out

    def _line(self, raw: bytes) -> list[Any]:
        self._event_bytes = 0 if not raw else self._event_bytes + len(raw)
        if self._event_bytes > self._limit:
            raise self._too_large()
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedResponseError(
                f"a stream line is not valid UTF-8: {raw[:200]!r}",
                status=200,
                url=redact_url(self._url),
            ) from exc
        return self._decode(self._sse.feed(line))

    def _too_large(self) -> MalformedResponseError:
        return MalformedResponseError(
            f"a stream event is larger than the cap of {self._limit} bytes (max_event_bytes)",
            status=200,
            url=redact_url(self._url),
        )

    def finish(self) -> list[Any]:
        """Payloads left when the stream ends (a last line or event without its blank line)."""
        out: list[Any] = []
        if not self._started and self._buffer.startswith(_BOM):
            del self._buffer[: len(_BOM)]
        if self._buffer and not self.done:
            line, self._buffer = bytes(self._buffer), bytearray()
            out += self._line(line)
        last = self._sse.flush()
        if last is not None and not self.done and is_cut(last):
            raise InferenceConnectionError(
                "the stream ended in the middle of an event (the connection closed before the "
                "event was whole); the partial answer was discarded",
                status=200,
                url=redact_url(self._url),
            )
        return out + self._decode(last)

    def _decode(self, event: SSEEvent | None) -> list[Any]:
        if event is None or self.done:
            return []
        payload = decode_event(event, self._url)
        if payload is DONE:
            self.done = True
            return []
        return [payload]
