"""TGI routes: ``/generate``, ``/generate_stream``, ``POST /`` for a generator, and ``/info``.

OpenAI-form chat (``/v1/chat/completions``, TGI's Messages API) is ``routes_chat``.

Also the text-generation half of the router layout, which answers like TGI's ``POST /``
(a list-wrapped ``[{"generated_text"}]``, or the same SSE stream with ``"stream": true``).
As in TGI, a validation error of a streaming request arrives as an error event in a 200
stream; a body that is not the expected JSON is rejected before streaming (axum's 4xx).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web

from hfrag._version import __version__
from hfrag.server.config import ModelSpec, ServerConfig
from hfrag.server.generation import (
    GenRequest,
    GenResult,
    parse_generate_request,
    sse,
    stream_event,
)
from hfrag.server.inference import (
    admit,
    current,
    first_of_kind,
    generation_steps,
    json_response,
    raw_body,
    run_generation,
    state_of,
)
from hfrag.server.runtime import ClientGone
from hfrag.server.streaming import Event, client_alive, send_events
from hfrag.server.traits import model_for
from hfrag.server.validation import ApiError, parse_json_body

__all__ = [
    "generate_route",
    "generate_stream_route",
    "text_generation",
    "tgi_info",
]

FINGERPRINT = f"hfrag-{__version__}"
INJECTED = "Request failed during generation: injected fault"


def tgi_info(spec: ModelSpec, config: ServerConfig) -> dict[str, Any]:
    """``GET /info`` of TGI."""
    return {
        "model_id": spec.name,
        "model_sha": None,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": config.max_concurrent_requests,
        "max_best_of": 2,
        "max_stop_sequences": config.max_stop_sequences,
        "max_input_tokens": spec.max_input_length,
        "max_total_tokens": spec.total_tokens,
        "validation_workers": 1,
        "max_client_batch_size": config.max_client_batch_size,
        "router": "text-generation-router",
        "version": __version__,
        "sha": None,
        "docker_label": None,
        # Not TGI's: who decides tool calls and response_format here ("grammar": the model,
        # under a llama.cpp grammar; "rule": the --models hash rule of hfrag.server.tools).
        "hfrag_tool_calls": getattr(spec.backend, "tool_calls", None),
    }


async def error_stream(request: web.Request, event: bytes) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(event)
    await resp.write_eof()
    return resp


def _tgi_error_event(err: ApiError) -> bytes:
    return sse(err.body)


def _tgi_error(message: str) -> bytes:
    return sse({"error": message, "error_type": "generation"})


async def _tgi_events(
    request: web.Request, spec: ModelSpec, req: GenRequest, prefix: str
) -> AsyncGenerator[Event, None]:
    """One ``/generate_stream`` event per token, made as the model makes the token."""
    result = GenResult(input_length=req.input_length, seed=req.params.seed)
    steps = generation_steps(spec, req, client_alive(request))
    async with contextlib.aclosing(steps):
        async for step in steps:
            result.add(step)
            yield sse(stream_event(result, prefix)), result.finished


async def run_answer(request: web.Request, spec: ModelSpec, req: GenRequest) -> GenResult:
    """The whole answer; ``ClientGone`` (the model stopped) once the client of ``request``
    leaves."""
    return await run_generation(spec, req, client_alive(request))


def gone(request: web.Request) -> web.Response:
    """The answer to a client that left while its answer was made: nobody reads it."""
    current().dropped = True
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


async def text_generation(
    request: web.Request, spec: ModelSpec, *, wrapped: bool, force_stream: bool = False
) -> web.StreamResponse:
    """TGI generation: ``/generate`` (plain), ``POST /`` and the router (``wrapped``)."""
    state, spec = state_of(request), model_for(spec)
    raw = raw_body(request)
    body = parse_json_body(raw, request.headers.get("Content-Type", ""))
    admit(1)
    streaming = force_stream or (isinstance(body, dict) and body.get("stream") is True)
    try:
        req = parse_generate_request(body, raw, spec, state.config)
    except ApiError as err:
        if streaming and isinstance(err.body, dict):
            return await error_stream(request, _tgi_error_event(err))
        raise
    prefix = req.prompt if req.return_full_text else ""
    if streaming:
        return await send_events(
            request,
            _tgi_events(request, spec, req, prefix),
            cut_event=_tgi_error(INJECTED),
            error_event=_tgi_error,
        )
    try:
        result = await run_answer(request, spec, req)
    except ClientGone:
        return gone(request)
    answer: dict[str, Any] = {"generated_text": prefix + result.text}
    if req.details:
        answer["details"] = result.details()
    return json_response([answer] if wrapped else answer)


async def generate_route(request: web.Request) -> web.StreamResponse:
    """``POST /generate``."""
    return await text_generation(
        request, first_of_kind(state_of(request), "generate"), wrapped=False
    )


async def generate_stream_route(request: web.Request) -> web.StreamResponse:
    """``POST /generate_stream``."""
    spec = first_of_kind(state_of(request), "generate")
    return await text_generation(request, spec, wrapped=False, force_stream=True)
