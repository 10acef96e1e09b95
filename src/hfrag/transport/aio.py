"""The async driver: one pooled ``httpx.AsyncClient`` on hfrag's private loop.

Every coroutine of this class may be awaited from any event loop (``asyncio.run`` called twice,
Jupyter, many concurrent tasks): the work runs on the private loop of :mod:`hfrag.transport._loop`,
where the client's connections live, so no connection is ever bound to a caller's loop that has
since closed. Each attempt, body read included, is bounded by ``asyncio.wait_for`` with the time
the attempt may take (its timeout, shortened to the call's deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
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
from hfrag.transport._loop import io_loop, run_async, run_sync
from hfrag.transport.deadline import deadline_error, remaining
from hfrag.transport.request import Request
from hfrag.transport.responses import error_from_exception
from hfrag.transport.sse import DONE
from hfrag.transport.urls import redact_url

_END = object()


def _close_later(client: httpx.AsyncClient, pid: int) -> None:
    # Called by weakref.finalize when a transport is garbage-collected without close(). In a
    # forked child the pool is the parent's: leave it alone.
    if os.getpid() == pid:
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(client.aclose(), io_loop())


def _outer(budget: float | None) -> float | None:
    """The bound of a whole exchange: a moment past the attempt's budget, so httpx's own
    timeouts (a wait for a pooled connection above all) fire first and say what waited."""
    return None if budget is None else budget + 0.05


class _Remote:
    """An async generator living on hfrag's loop, stepped and closed from the caller's loop.

    A caller cancelled while it waits for an item leaves that step running on hfrag's loop for
    a moment; :meth:`close` cancels it and waits for it to end before closing the generator (an
    ``aclose()`` during a step would raise "asynchronous generator is already running").
    """

    def __init__(self, generator: AsyncGenerator[Any, None]) -> None:
        self._generator = generator
        self._step: asyncio.Task[Any] | None = None

    async def next(self) -> Any:
        self._step = asyncio.current_task()
        try:
            return await self._generator.__anext__()
        except StopAsyncIteration:
            return _END
        finally:
            self._step = None

    async def close(self) -> None:
        step = self._step
        if step is not None and step is not asyncio.current_task():
            # The caller's cancellation reached the step already (it is queued on this loop
            # before this call): a second cancel would also cut the step's own clean-up short
            # (httpcore's shielded close of the connection), leaving the connection open.
            cancelling = getattr(step, "cancelling", None)  # Python 3.11+
            if cancelling is None or not cancelling():
                step.cancel()
            await asyncio.wait({step})
        await self._generator.aclose()


async def _shielded(awaitable: Awaitable[None]) -> None:
    """Await ``awaitable`` to its end even if the caller is cancelled meanwhile (then the
    cancellation is raised after it)."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


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
        if self._forked():
            self._client = None  # the parent's pool: not ours to use or to close
        if self._client is None:
            # Redirects are never followed: see RedirectError.
            client = httpx.AsyncClient(limits=self._limits(), follow_redirects=False)
            self._client = client
            weakref.finalize(self, _close_later, client, os.getpid())
        return self._client

    async def request(self, request: Request) -> Any:
        """Send ``request`` (retrying as the policy says) and return the decoded JSON body."""
        try:
            return await run_async(self._request(request))
        except InferenceError as error:
            raise self._scrubbed(error, request) from None

    async def _request(self, request: Request) -> Any:
        start = time.monotonic()
        end = self._call_end()
        for attempt in itertools.count():
            try:
                return await self._send(request, end)
            except InferenceError as error:
                wait = self._wait_or_raise(request, attempt, error, end, start)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, request: Request, end: float | None) -> Any:
        headers, budget = self._attempt(request, end)
        client = self._http()
        built = self._build(client, request, headers, budget)
        try:
            response, content = await asyncio.wait_for(
                self._exchange(built, request), _outer(budget)
            )
        except asyncio.TimeoutError:
            raise self._timeout_error(request, end, budget) from None
        except httpx.PoolTimeout:
            raise self._pool_error(request, budget) from None
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        return decode_answer(response, content, request.url)

    async def _exchange(self, built: httpx.Request, request: Request) -> tuple[Any, bytes]:
        response = await self._http().send(built, stream=True)
        return response, await self._read_all(response, request)

    async def _read_all(self, response: httpx.Response, request: Request) -> bytes:
        """The whole body, counted against its cap as it streams in; the response is closed."""
        try:
            body = BodyBuffer(response, self.config.response_cap(request), request.url)
            async for chunk in response.aiter_bytes():
                if not body.add(chunk):
                    break
        finally:
            await response.aclose()
        return bytes(body.data)

    async def stream(self, request: Request, *, mark_done: bool = False) -> AsyncIterator[Any]:
        """Send ``request`` and yield each event's JSON payload until ``[DONE]`` or the end.

        The deadline covers opening the stream and reading all of it; ``timeout`` bounds each
        wait for the next bytes. ``mark_done`` and a JSON answer: as
        :meth:`SyncTransport.stream <hfrag.transport.sync.SyncTransport.stream>`. Cancelling
        the caller (``task.cancel()``, ``asyncio.wait_for``, ``asyncio.timeout``) while it waits
        for an event raises ``CancelledError`` there, with the connection closed.
        """
        events = _Remote(self._stream(request, self._call_end(), mark_done))
        try:
            while True:
                try:
                    item = await run_async(events.next())
                except InferenceError as error:
                    raise self._scrubbed(error, request) from None
                if item is _END:
                    return
                yield item
        finally:
            await _shielded(run_async(events.close()))

    async def _stream(
        self, request: Request, end: float | None, mark_done: bool
    ) -> AsyncGenerator[Any, None]:
        start = time.monotonic()
        for attempt in itertools.count():
            try:
                response = await self._open(request, end)
                break
            except InferenceError as error:
                wait = self._wait_or_raise(request, attempt, error, end, start)
            await asyncio.sleep(wait)
        try:
            if not is_event_stream(response.headers):
                body = BodyBuffer(response, self.config.response_cap(request), request.url)
                async for chunk in self._chunks(response, request, end):
                    body.add(chunk)
                yield whole_answer(bytes(body.data), request.url)
                return
            decoder = StreamDecoder(request.url, self.config.max_event_bytes)
            async for chunk in self._chunks(response, request, end):
                for payload in decoder.feed_bytes(chunk):
                    yield payload
                if decoder.done:
                    break
            else:
                for payload in decoder.finish():
                    yield payload
            if decoder.done and mark_done:
                yield DONE
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc
        finally:
            await response.aclose()

    @staticmethod
    async def _chunks(
        response: httpx.Response, request: Request, end: float | None
    ) -> AsyncIterator[bytes]:
        """The body's chunks, each awaited no later than the call's end."""
        iterator = response.aiter_bytes().__aiter__()
        while True:
            left = remaining(end)
            if left is not None and left <= 0:
                raise deadline_error(redact_url(request.url))
            try:
                chunk = await asyncio.wait_for(iterator.__anext__(), left)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise deadline_error(redact_url(request.url)) from None
            yield chunk

    async def _open(self, request: Request, end: float | None) -> httpx.Response:
        headers, budget = self._attempt(request, end)
        client = self._http()
        built = self._build(client, request, headers, budget)
        try:
            return await asyncio.wait_for(self._open_checked(built, request), _outer(budget))
        except asyncio.TimeoutError:
            raise self._timeout_error(request, end, budget) from None
        except httpx.PoolTimeout:
            raise self._pool_error(request, budget) from None
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, request.url) from exc

    async def _open_checked(self, built: httpx.Request, request: Request) -> httpx.Response:
        response = await self._http().send(built, stream=True)
        if is_answer(response.status_code):
            return response
        raise status_error(response, await self._read_all(response, request), request.url)

    async def aclose(self) -> None:
        """Close pooled connections; the transport reopens them if used again."""
        if self._forked():
            self._client = None
        client, self._client = self._client, None
        if client is not None:
            await run_async(client.aclose())

    def close(self) -> None:
        """Blocking :meth:`aclose`, for sync code and ``with`` blocks."""
        if self._forked():
            self._client = None
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
