"""Sending one SSE answer while it is being generated (TGI and OpenAI-form streams).

``send_events`` writes each event the moment its producer yields it, so a token reaches the
client as soon as the model thread hands it over. What it owns, for every streaming route:

- Headers go out with the first event, not before: a request refused before it produces
  anything (a full queue's 429) still gets its own status.
- The simulated service time (``latency``) is spent before the first event, ``token_delay``
  between events.
- A drawn stream fault cuts the stream after its first event, or before the answer's last
  event when that comes first (a one-token answer): ``stream_error`` sends the layout's error
  event, ``truncate`` hangs up. The producer is closed, so the model stops generating.
- An exception in the producer (the model failed) becomes the layout's error event in the
  200 stream, as TGI sends generation errors; an ``ApiError`` raised before the first event is
  answered with its own status instead.
- A client that goes away (a write fails, or ``alive()`` turns false while the model works)
  ends the answer quietly; the producer is closed, so the model stops at its next token.

Events after the one that ends the answer (``usage``, ``[DONE]``) are sent as they come and are
never cut. An answer is counted as delivered (``succeeded``) only when every event went out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

from aiohttp import web

from hfrag.server.faults import Fault
from hfrag.server.inference import Service, current, request_fault, succeeded
from hfrag.server.logs import logger
from hfrag.server.validation import ApiError

__all__ = ["Event", "client_alive", "send_events"]

#: One SSE event and whether it is the one that ends the answer.
Event = tuple[bytes, bool]

HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def client_alive(request: web.Request) -> Callable[[], bool]:
    """Whether the client of ``request`` is still connected (for ``generation_steps``)."""

    def alive() -> bool:
        transport = request.transport
        return transport is not None and not transport.is_closing()

    return alive


async def send_events(
    request: web.Request,
    events: AsyncGenerator[Event, None],
    *,
    service: Service,
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
    sent = 0
    ended = False
    try:
        async with contextlib.aclosing(events):
            async for data, last in events:
                if resp is None:
                    await service.done()
                    resp = web.StreamResponse(status=200, headers=HEADERS)
                    await resp.prepare(request)
                elif delay:
                    await asyncio.sleep(delay)
                if cuts and not ended and (sent == 1 or last):
                    current().cut = True
                    if fault is Fault.TRUNCATE and request.transport is not None:
                        request.transport.close()
                        return resp
                    await resp.write(cut_event)
                    await resp.write_eof()
                    return resp
                await resp.write(data)
                sent += 1
                ended = ended or last
    except ConnectionResetError:  # the client went away: nobody to answer
        current().cut = True
        if resp is None:
            current().dropped = True
            return web.Response(status=204)
        return resp
    except Exception as exc:
        if isinstance(exc, ApiError) and resp is None:
            raise
        logger.error("generation failed on %s", request.path, exc_info=exc)
        current().cut = True
        if resp is None:
            resp = web.StreamResponse(status=200, headers=HEADERS)
            await resp.prepare(request)
        with contextlib.suppress(ConnectionResetError):
            await resp.write(error_event(f"Request failed during generation: {exc}"))
            await resp.write_eof()
        return resp
    if resp is None:  # a producer with no events: an empty stream
        resp = web.StreamResponse(status=200, headers=HEADERS)
        await resp.prepare(request)
    if ended:
        succeeded(1, [])
    with contextlib.suppress(ConnectionResetError):
        await resp.write_eof()
    return resp
