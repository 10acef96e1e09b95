"""The async driver: one pooled ``httpx.AsyncClient`` on hfrag's private loop.

Every coroutine of this class may be awaited from any event loop (``asyncio.run`` called twice,
Jupyter, many concurrent tasks): the work runs on the private loop of :mod:`hfrag.transport._loop`,
where the client's connections live, so no connection is ever bound to a caller's loop that has
since closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
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
from hfrag.transport._loop import io_loop, run_async, run_sync
from hfrag.transport.request import Request
from hfrag.transport.responses import decode_json, error_from_exception

_END = object()


def _close_later(client: httpx.AsyncClient) -> None:
    # Called by weakref.finalize when a transport is garbage-collected without close().
    with contextlib.suppress(RuntimeError):
        asyncio.run_coroutine_threadsafe(client.aclose(), io_loop())


async def _next(iterator: AsyncIterator[Any]) -> Any:
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _END


class AsyncTransport(DriverCore):
    """Async twin of :class:`~hfrag.transport.sync.SyncTransport`.

    Example::

        transport = AsyncTransport(TransportConfig(timeout=30))
        vectors = await transport.request(Request(url, json={"inputs": ["hello"]}))
        async for event in transport.stream(Request(url, json=body, stream=True)):
            ...
        await transport.aclose()
    """

    _client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            client = httpx.AsyncClient(limits=self._limits(), follow_redirects=True)
            self._client = client
            weakref.finalize(self, _close_later, client)
        return self._client

    async def request(self, request: Request) -> Any:
        """Send ``request`` (retrying as the policy says) and return the decoded JSON body."""
        return await run_async(self._request(request))

    async def _request(self, request: Request) -> Any:
        start = time.monotonic()
        for attempt in itertools.count():
            try:
                return await self._send(request, start)
            except InferenceError as error:
                wait = self._wait_or_raise(request, attempt, error, start)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, request: Request, start: float) -> Any:
        headers, timeout = self._attempt(request, start)
        try:
            response = await self._http().request(
                request.method, request.url, json=request.json, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        return decode_body(response, request.url)

    async def stream(self, request: Request) -> AsyncIterator[Any]:
        """Send ``request`` and yield each event's JSON payload until ``[DONE]`` or the end."""
        events = self._stream(request)
        try:
            while True:
                item = await run_async(_next(events))
                if item is _END:
                    return
                yield item
        finally:
            await run_async(events.aclose())

    async def _stream(self, request: Request) -> AsyncGenerator[Any, None]:
        start = time.monotonic()
        for attempt in itertools.count():
            try:
                response = await self._open(request, start)
                break
            except InferenceError as error:
                wait = self._wait_or_raise(request, attempt, error, start)
            await asyncio.sleep(wait)
        try:
            if not is_event_stream(response.headers):
                yield decode_json(await response.aread(), request.url)
                return
            decoder = StreamDecoder(request.url)
            async for line in response.aiter_lines():
                for payload in decoder.feed(line):
                    yield payload
                if decoder.done:
                    return
            for payload in decoder.finish():
                yield payload
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        finally:
            await response.aclose()

    async def _open(self, request: Request, start: float) -> httpx.Response:
        headers, timeout = self._attempt(request, start)
        client = self._http()
        built = client.build_request(
            request.method, request.url, json=request.json, headers=headers, timeout=timeout
        )
        try:
            response = await client.send(built, stream=True)
            if response.status_code >= 400:
                content = await response.aread()
                await response.aclose()
                check_status(response, content, request.url)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        return response

    async def aclose(self) -> None:
        """Close pooled connections; the transport reopens them if used again."""
        client, self._client = self._client, None
        if client is not None:
            await run_async(client.aclose())

    def close(self) -> None:
        """Blocking :meth:`aclose`, for sync code and ``with`` blocks."""
        client, self._client = self._client, None
        if client is not None:
            run_sync(client.aclose())

    async def __aenter__(self) -> AsyncTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
