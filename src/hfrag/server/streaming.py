"""Sending one SSE answer while it is being generated (TGI and OpenAI-form streams).

``send_events`` writes each event the moment its producer yields it, so a token reaches the
client as soon as the model thread hands it over. What it owns, for every streaming route:

- Headers go out with the first event, not before: a request refused before it produces
  anything (a full queue's 429) still gets its own status.
- The simulated service time (``latency``, from ``admit``) is spent before the first event,
  ``token_delay``
  between events.
- A drawn stream fault cuts the stream after its first event, or before the answer's last
  event when that comes first (a one-token answer): ``stream_error`` sends the layout's error
  event, ``truncate`` hangs up. The producer is closed, so the model stops generating.
- An exception in the producer (the model failed) becomes the layout's error event in the
  200 stream, as TGI sends generation errors; an ``ApiError`` raised before the first event is
  answered with its own status instead.
- Events are written by a task of their own (``_Writer``): the producer never waits for the
  client, so a client that stays connected but stops reading never pauses the model thread
  that every generation shares. Unread events wait in memory up to ``MAX_UNSENT`` bytes.
- A client that goes away (a write fails, ``alive()`` turns false while the model works, or it
  leaves more than ``MAX_UNSENT`` bytes unread) ends the answer quietly; the connection is
  closed and the producer too, so the model stops at its next token.

Events after the one that ends the answer (``usage``, ``[DONE]``) are sent as they come and are
never cut. An answer is counted as delivered only when every event went out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, Callable

from aiohttp import web

from hfrag.server.faults import Fault
from hfrag.server.inference import Service, current, request_fault, succeeded
from hfrag.server.logs import logger
from hfrag.server.runtime import ClientGone
from hfrag.server.validation import ApiError

__all__ = ["Event", "client_alive", "send_events"]

#: One SSE event and whether it is the one that ends the answer.
Event = tuple[bytes, bool]

HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}

#: Bytes of events a client may leave unread before it is taken as gone (see ``_Writer``).
MAX_UNSENT = 1 << 20


def client_alive(request: web.Request) -> Callable[[], bool]:
    """Whether the client of ``request`` is still connected (for ``generation_steps``)."""

    def alive() -> bool:
        transport = request.transport
        return transport is not None and not transport.is_closing()

    return alive


class _Writer:
    """Writes one response's events in order on a task of its own.

    The producer hands events over with ``send`` and never waits for the client, so a client
    that stays connected but stops reading cannot hold the model thread (the one generation
    thread every request shares). Events not yet written wait here; past ``limit`` bytes the
    client is taken as gone (``ClientGone``), and so is a failed write.
    """

    def __init__(self, resp: web.StreamResponse, limit: int) -> None:
        self.resp = resp
        self.limit = limit
        self.unsent: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.closing = False
        self.wake = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            while self.unsent:
                data = self.unsent[0]
                await self.resp.write(data)
                self.unsent.popleft()
                self.size -= len(data)
            if self.closing:
                return
            self.wake.clear()
            await self.wake.wait()

    def _check(self) -> None:
        if self.task.done():
            exc = None if self.task.cancelled() else self.task.exception()
            if exc is None or isinstance(exc, ConnectionError):
                raise ClientGone("the client went away") from exc
            raise exc

    def send(self, data: bytes) -> None:
        """Queue ``data`` for the client."""
        self._check()
        self.unsent.append(data)
        self.size += len(data)
        self.wake.set()
        if self.size > self.limit:
            raise ClientGone(f"the client left {self.size} bytes unread")

    async def flush(self) -> None:
        """Wait until everything queued is written."""
        self.closing = True
        self.wake.set()
        try:
            await asyncio.shield(self.task)
        except ConnectionError as exc:
            raise ClientGone("the client went away") from exc

    def abort(self) -> None:
        self.task.cancel()


async def _prepare(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers=HEADERS)
    try:
        await resp.prepare(request)
    except ConnectionError as exc:
        raise ClientGone("the client went away") from exc
    return resp


async def send_events(
    request: web.Request,
    events: AsyncGenerator[Event, None],
    *,
    service: Service | None = None,
    cut_event: bytes,
    error_event: Callable[[str], bytes],
) -> web.StreamResponse:
    """Stream ``events`` to the client as they come (see the module docstring).

    ``cut_event`` is the error event of an injected ``stream_error``; ``error_event(message)``
    builds the error event of a failure in the producer.
    """
    fault = request_fault(request)
    runtime = current().runtime
    delay = runtime.config.token_delay if runtime is not None else 0.0
    cuts = fault in (Fault.STREAM_ERROR, Fault.TRUNCATE)
    resp: web.StreamResponse | None = None
    writer: _Writer | None = None
    sent = 0
    ended = False
    try:
        async with contextlib.aclosing(events):
            async for data, last in events:
                if writer is None:
                    await (service.done() if service is not None else current().spend())
                    resp = await _prepare(request)
                    writer = _Writer(resp, MAX_UNSENT)
                elif delay:
                    await asyncio.sleep(delay)
                if cuts and not ended and (sent == 1 or last):
                    current().cut = True
                    if fault is Fault.TRUNCATE and request.transport is not None:
                        writer.abort()
                        request.transport.close()
                        return writer.resp
                    writer.send(cut_event)
                    await writer.flush()
                    await writer.resp.write_eof()
                    return writer.resp
                writer.send(data)
                sent += 1
                ended = ended or last
        if writer is not None:
            await writer.flush()
    except ClientGone:  # the client went away (or stopped reading): nobody to answer
        current().cut = True
        if writer is None:
            current().dropped = True
            return web.Response(status=204)
        writer.abort()
        if request.transport is not None:
            request.transport.close()
        return writer.resp
    except Exception as exc:
        if isinstance(exc, ApiError) and writer is None:
            raise
        logger.error("generation failed on %s", request.path, exc_info=exc)
        current().cut = True
        with contextlib.suppress(ClientGone, ConnectionError):
            if writer is None:
                writer = _Writer(await _prepare(request), MAX_UNSENT)
            writer.send(error_event(f"Request failed during generation: {exc}"))
            await writer.flush()
            await writer.resp.write_eof()
        if writer is None:
            return web.Response(status=204)
        writer.abort()
        return writer.resp
    finally:
        if writer is not None:
            writer.abort()
    if writer is None:  # a producer with no events: an empty stream
        resp = await _prepare(request)
    else:
        resp = writer.resp
    if ended and service is not None:
        succeeded(1, [])
    elif not ended:
        current().cut = True  # not delivered whole: the pipeline does not count it
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp
