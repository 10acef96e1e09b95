"""The blocking driver: one pooled ``httpx.Client``, ``time.sleep`` between retries.

A body is read chunk by chunk with the clock checked between chunks, so a server that drips its
answer cannot hold an attempt much past its time (each socket read is itself bounded by the
attempt's timeout). Limit: a server dripping its status line and headers is bounded only per
read (and by httpcore's 100 KiB cap on a header section), since httpx gives no hook before the
headers are complete. Task clients do not use this driver: their sync methods run the async one
on hfrag's private loop, where every wait of an attempt is bounded exactly.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

from hfrag.errors import InferenceError
from hfrag.transport._core import (
    BodyBuffer,
    DriverCore,
    StreamDecoder,
    decode_answer,
    is_answer,
    is_event_stream,
    status_error,
    whole_answer,
)
from hfrag.transport.config import TransportConfig
from hfrag.transport.deadline import deadline_error, earliest, remaining
from hfrag.transport.request import Request
from hfrag.transport.responses import error_from_exception
from hfrag.transport.sse import DONE
from hfrag.transport.urls import redact_url


def _close_if_owner(client: httpx.Client, pid: int) -> None:
    # In a forked child the pool is the parent's: closing it there is not ours to do.
    if os.getpid() == pid:
        client.close()


class SyncTransport(DriverCore):
    """Sends :class:`Request` objects and returns decoded JSON or streamed event payloads.

    Thread-safe; share one per client. Example::

        with SyncTransport(TransportConfig(timeout=30)) as transport:
            vectors = transport.request(Request(url, json={"inputs": ["hello"]}))
    """

    _client: httpx.Client | None = None

    def __init__(self, config: TransportConfig | None = None) -> None:
        super().__init__(config)

    def _setup(self) -> None:
        super()._setup()
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        if self._forked():
            # The parent's pool and lock (perhaps held by a thread that does not exist here).
            self._client, self._lock = None, threading.Lock()
        client = self._client
        if client is None:
            with self._lock:  # threads sharing the transport must share one pool
                client = self._client
                if client is None:
                    # Redirects are never followed: see RedirectError.
                    client = httpx.Client(limits=self._limits(), follow_redirects=False)
                    weakref.finalize(self, _close_if_owner, client, os.getpid())
                    self._client = client
        return client

    def request(self, request: Request) -> Any:
        """Send ``request`` (retrying as the policy says) and return the decoded JSON body."""
        try:
            start = time.monotonic()
            end = self._call_end()
            for attempt in itertools.count():
                try:
                    return self._send(request, end)
                except InferenceError as error:
                    wait = self._wait_or_raise(request, attempt, error, end, start)
                time.sleep(wait)
        except InferenceError as error:
            raise self._scrubbed(error, request) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, request: Request, end: float | None) -> Any:
        headers, budget = self._attempt(request, end)
        client = self._http()
        built = self._build(client, request, headers, budget)
        try:
            response = client.send(built, stream=True)
            content = self._read_all(response, request, end, budget)
        except httpx.PoolTimeout:
            raise self._pool_error(request, budget) from None
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        return decode_answer(response, content, request.url)

    def _read_all(
        self,
        response: httpx.Response,
        request: Request,
        end: float | None,
        budget: float | None,
    ) -> bytes:
        """The whole body, counted against its cap and read within the attempt's ``budget``
        (from now) and the call's ``end``; the response is closed."""
        stop = earliest(end, None if budget is None else time.monotonic() + budget)
        try:
            body = BodyBuffer(response, self.config.response_cap(request), request.url)
            for chunk in response.iter_bytes():
                left = remaining(stop)
                if left is not None and left <= 0:
                    raise self._timeout_error(request, end, budget)
                if not body.add(chunk):
                    break
        finally:
            response.close()
        return bytes(body.data)

    def stream(self, request: Request, *, mark_done: bool = False) -> Iterator[Any]:
        """Send ``request`` and yield each event's JSON payload until ``[DONE]`` or the end.

        Failures before the first event are retried like :meth:`request`; an error event or a
        broken connection after it raises. The deadline covers opening and reading the stream.
        ``mark_done``: yield :data:`~hfrag.transport.sse.DONE` last when the stream ended with
        ``data: [DONE]`` (an answer a server says is whole, not one whose connection closed).
        A JSON answer to a stream request is yielded as one payload (an error body raised).
        """
        try:
            yield from self._stream(request, mark_done)
        except InferenceError as error:
            raise self._scrubbed(error, request) from None

    def _stream(self, request: Request, mark_done: bool) -> Iterator[Any]:
        start = time.monotonic()
        end = self._call_end()
        for attempt in itertools.count():
            try:
                response = self._open(request, end)
                break
            except InferenceError as error:
                wait = self._wait_or_raise(request, attempt, error, end, start)
            time.sleep(wait)
        try:
            if not is_event_stream(response.headers):
                body = BodyBuffer(response, self.config.response_cap(request), request.url)
                for chunk in self._chunks(response, request, end):
                    body.add(chunk)
                yield whole_answer(bytes(body.data), request.url)
                return
            decoder = StreamDecoder(request.url, self.config.max_event_bytes)
            for chunk in self._chunks(response, request, end):
                yield from decoder.feed_bytes(chunk)
                if decoder.done:
                    break
            else:
                yield from decoder.finish()
            if decoder.done and mark_done:
                yield DONE
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        finally:
            response.close()

    @staticmethod
    def _chunks(response: httpx.Response, request: Request, end: float | None) -> Iterator[bytes]:
        for chunk in response.iter_bytes():
            left = remaining(end)
            if left is not None and left <= 0:
                raise deadline_error(redact_url(request.url))
            yield chunk

    def _open(self, request: Request, end: float | None) -> httpx.Response:
        headers, budget = self._attempt(request, end)
        client = self._http()
        built = self._build(client, request, headers, budget)
        try:
            response = client.send(built, stream=True)
            if is_answer(response.status_code):
                return response
            content = self._read_all(response, request, end, budget)
        except httpx.PoolTimeout:
            raise self._pool_error(request, budget) from None
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        raise status_error(response, content, request.url)

    def close(self) -> None:
        """Close pooled connections; the transport reopens them if used again."""
        if self._forked():
            self._client, self._lock = None, threading.Lock()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> SyncTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
