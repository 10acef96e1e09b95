"""The blocking driver: one pooled ``httpx.Client``, ``time.sleep`` between retries."""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

from hfrag.errors import InferenceError
from hfrag.transport._core import (
    DriverCore,
    StreamDecoder,
    check_status,
    decode_body,
    is_event_stream,
)
from hfrag.transport.config import TransportConfig
from hfrag.transport.request import Request
from hfrag.transport.responses import decode_json, error_from_exception


class SyncTransport(DriverCore):
    """Sends :class:`Request` objects and returns decoded JSON or streamed event payloads.

    Thread-safe; share one per client. Example::

        with SyncTransport(TransportConfig(timeout=30)) as transport:
            vectors = transport.request(Request(url, json={"inputs": ["hello"]}))
    """

    _client: httpx.Client | None = None

    def __init__(self, config: TransportConfig | None = None) -> None:
        super().__init__(config)
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:  # threads sharing the transport must share one pool
                client = self._client
                if client is None:
                    client = httpx.Client(limits=self._limits(), follow_redirects=True)
                    weakref.finalize(self, client.close)
                    self._client = client
        return client

    def request(self, request: Request) -> Any:
        """Send ``request`` (retrying as the policy says) and return the decoded JSON body."""
        start = time.monotonic()
        for attempt in itertools.count():
            try:
                return self._send(request, start)
            except InferenceError as error:
                wait = self._wait_or_raise(request, attempt, error, start)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, request: Request, start: float) -> Any:
        headers, timeout = self._attempt(request, start)
        try:
            response = self._http().request(
                request.method, request.url, json=request.json, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        return decode_body(response, request.url)

    def stream(self, request: Request) -> Iterator[Any]:
        """Send ``request`` and yield each event's JSON payload until ``[DONE]`` or the end.

        Failures before the first event are retried like :meth:`request`; an error event or a
        broken connection after it raises.
        """
        start = time.monotonic()
        for attempt in itertools.count():
            try:
                response = self._open(request, start)
                break
            except InferenceError as error:
                wait = self._wait_or_raise(request, attempt, error, start)
            time.sleep(wait)
        try:
            if not is_event_stream(response.headers):
                yield decode_json(response.read(), request.url)
                return
            decoder = StreamDecoder(request.url)
            for line in response.iter_lines():
                yield from decoder.feed(line)
                if decoder.done:
                    return
            yield from decoder.finish()
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        finally:
            response.close()

    def _open(self, request: Request, start: float) -> httpx.Response:
        headers, timeout = self._attempt(request, start)
        client = self._http()
        built = client.build_request(
            request.method, request.url, json=request.json, headers=headers, timeout=timeout
        )
        try:
            response = client.send(built, stream=True)
            if response.status_code >= 400:
                content = response.read()
                response.close()
                check_status(response, content, request.url)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        return response

    def close(self) -> None:
        """Close pooled connections; the transport reopens them if used again."""
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
