"""TGI routes: ``/generate``, ``/generate_stream``, ``POST /`` for a generator, chat, info.

Also the text-generation half of the router layout, which answers like TGI's ``POST /``
(a list-wrapped ``[{"generated_text"}]``, or the same SSE stream with ``"stream": true``).
As in TGI, a validation error of a streaming request arrives as an error event in a 200
stream; a body that is not the expected JSON is rejected before streaming (axum's 4xx).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from aiohttp import web

from hfrag._version import __version__
from hfrag.server.backends import GenerationParams
from hfrag.server.config import ModelSpec, ServerConfig
from hfrag.server.generation import (
    GenRequest,
    GenResult,
    StopHoldback,
    parse_generate_request,
    sse,
    stop_list,
    stream_event,
    validate_generation,
)
from hfrag.server.inference import (
    Service,
    current,
    first_of_kind,
    generation_steps,
    json_response,
    raw_body,
    run_generation,
    state_of,
    succeeded,
)
from hfrag.server.runtime import ClientGone
from hfrag.server.streaming import Event, client_alive, send_events
from hfrag.server.tools import ToolCallPlan, plan_tool_calls, structured_answer
from hfrag.server.traits import (
    ReasoningForm,
    StreamDeltas,
    answer_fields,
    answer_tokens,
    chat_logprobs,
    logprobs_asked,
    model_for,
    reasoning_form,
    refusal,
)
from hfrag.server.validation import ApiError, Field, deserialize_error, parse_json_body

__all__ = [
    "chat_completions",
    "generate_route",
    "generate_stream_route",
    "text_generation",
    "tgi_info",
]

FINGERPRINT = f"hfrag-{__version__}"
INJECTED = "Request failed during generation: injected fault"
_ids = itertools.count(1)
_PIECES = re.compile(r"\s*\S+")
Head = Callable[[list[Any]], dict[str, Any]]  # a chunk's fields around its choices


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
    }


async def _error_stream(request: web.Request, event: bytes) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(event)
    await resp.write_eof()
    return resp


def _tgi_error_event(err: ApiError) -> bytes:
    return sse(err.body)


def _tgi_error(message: str) -> bytes:
    return sse({"error": message, "error_type": "generation"})


def _chat_error(message: str) -> bytes:
    return sse({"error": {"message": message, "http_status_code": 424}}, space=True)


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


async def _run(
    request: web.Request, spec: ModelSpec, req: GenRequest, service: Service
) -> GenResult:
    """The whole answer, in no less than the simulated service time; ``ClientGone`` (the
    model stopped) once the client of ``request`` leaves."""
    result = await run_generation(spec, req, client_alive(request))
    await service.done()
    return result


def _gone(request: web.Request) -> web.Response:
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
    state.counters.record_batch(1)
    streaming = force_stream or (isinstance(body, dict) and body.get("stream") is True)
    try:
        req = parse_generate_request(body, raw, spec, state.config)
    except ApiError as err:
        if streaming and isinstance(err.body, dict):
            return await _error_stream(request, _tgi_error_event(err))
        raise
    prefix = req.prompt if req.return_full_text else ""
    if streaming:
        return await send_events(
            request,
            _tgi_events(request, spec, req, prefix),
            service=Service(1),
            cut_event=_tgi_error(INJECTED),
            error_event=_tgi_error,
        )
    try:
        result = await _run(request, spec, req, Service(1))
    except ClientGone:
        return _gone(request)
    succeeded(1, [])
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


def _chat_model(request: web.Request, name: str | None) -> ModelSpec:
    config = state_of(request).config
    if name is None or name in ("", "tgi"):
        return first_of_kind(state_of(request), "generate")
    spec = config.model(name)
    if spec is None and ":" in name:
        spec = config.model(name.rsplit(":", 1)[0])
    if spec is None:
        raise ApiError(404, {"error": f"Model {name} does not exist"})
    if spec.kind != "generate":
        raise ApiError(400, {"error": f"Model {spec.name} is not a chat model"})
    return spec


def _messages(fields: Field) -> list[dict[str, Any]]:
    messages = fields.required("messages")
    if not isinstance(messages, list):
        raise fields.fail("messages", "invalid type: expected a sequence")
    for message in messages:
        if not isinstance(message, dict):
            raise fields.fail("messages", "invalid type: expected struct Message")
        if not isinstance(message.get("role"), str):
            raise deserialize_error("messages: missing field `role`", fields.raw)
    return messages


def _chunk(spec: ModelSpec, cid: str, created: int, choices: list[Any]) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": spec.name,
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
    }


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions`` (OpenAI shape; ``model`` picks the model)."""
    state = state_of(request)
    raw = raw_body(request)
    fields = Field(
        parse_json_body(raw, request.headers.get("Content-Type", "")), raw, "ChatRequest"
    )
    spec = _chat_model(request, fields.string("model"))
    refused = refusal(spec.name, fields.body)
    if refused is not None:
        raise refused
    spec, form, top = model_for(spec), reasoning_form(spec.name), logprobs_asked(fields.body)
    messages = _messages(fields)
    stream = bool(fields.boolean("stream", False))
    options = fields.body.get("stream_options") or {}
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    max_tokens = fields.integer("max_tokens")
    if max_tokens is None:
        max_tokens = fields.integer("max_completion_tokens")
    temperature = fields.number("temperature")
    top_p = fields.number("top_p")
    params = GenerationParams(
        stop=stop_list(fields, "stop"),
        # OpenAI clients send temperature 0 for greedy and top_p 1 for "off"; TGI's chat
        # route accepts both, so they must not hit the /generate range checks.
        temperature=temperature if temperature and temperature > 0 else None,
        top_p=top_p if top_p is not None and top_p < 1.0 else None,
        seed=fields.integer("seed"),
    )
    state.counters.record_batch(1)
    seq = next(_ids)
    try:
        if not messages:
            raise ApiError(
                422,
                {
                    "error": "Input validation error: `messages` cannot be empty",
                    "error_type": "validation",
                },
            )
        plans = plan_tool_calls(fields.body, messages, seq)
        prompt = spec.backend.render_chat(messages)
        req = validate_generation(
            spec, state.config, prompt, params, max_new_tokens=max_tokens, truncate=None
        )
        structured = None if plans else structured_answer(fields.body, messages, "")
    except ApiError as err:
        if stream and isinstance(err.body, dict):
            message = err.body.get("error")
            event = {"error": {"message": message, "http_status_code": err.status}}
            return await _error_stream(request, sse(event, space=True))
        raise
    cid, created = f"chatcmpl-{seq}", int(time.time())
    head: Head = functools.partial(_chunk, spec, cid, created)
    service = Service(1)
    if stream and not plans and structured is None:
        return await send_events(
            request,
            _chat_events(request, spec, req, head, include_usage, (form, top)),
            service=service,
            cut_event=_chat_error(INJECTED),
            error_event=_chat_error,
        )
    try:
        result = await _run(request, spec, req, service)
    except ClientGone:
        return _gone(request)
    finish = "length" if result.finish_reason == "length" else "stop"
    text = result.text_without_stop
    completion_tokens = sum(1 for t in result.tokens if not t.special)
    if structured is not None:
        text = structured_answer(fields.body, messages, text) or ""
        completion_tokens, finish = len(spec.backend.tokenize(text)), "stop"
    if plans:
        arguments = "".join(p.arguments for p in plans)
        completion_tokens, finish = len(spec.backend.tokenize(arguments)), "tool_calls"
    usage = _usage(req.input_length, completion_tokens)
    if not stream:
        message = {"content": None} if plans else answer_fields(form, text)
        answer: dict[str, Any] = {"role": "assistant", **message}
        logprobs = None
        if top is not None and not plans and structured is None:
            logprobs = chat_logprobs(answer_tokens(form, result.tokens), top)
        if plans:
            answer["tool_calls"] = [
                {
                    "id": p.id,
                    "type": "function",
                    "function": {"name": p.name, "arguments": p.arguments},
                }
                for p in plans
            ]
        succeeded(1, [])
        return json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": spec.name,
                "system_fingerprint": FINGERPRINT,
                "choices": [
                    {"index": 0, "message": answer, "logprobs": logprobs, "finish_reason": finish}
                ],
                "usage": usage,
            }
        )
    # Tool calls and structured output are made from the whole answer: they stream once it
    # is complete.
    if plans:
        deltas = tool_call_deltas(plans)
    else:
        deltas = [{"role": "assistant", "content": piece} for piece in _PIECES.findall(text)]
    events = [(_delta_event(head, delta), False) for delta in deltas]
    events += _chat_tail(head, finish, usage if include_usage else None)
    return await send_events(
        request,
        _listed(events),
        service=service,
        cut_event=_chat_error(INJECTED),
        error_event=_chat_error,
    )


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _delta_event(head: Head, delta: dict[str, Any], logprobs: Any = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": None}
    return sse(head([choice]), space=True)


def _chat_tail(head: Head, finish: str, usage: dict[str, int] | None) -> list[Event]:
    """The chunk with ``finish_reason`` (it ends the answer), ``usage`` if asked, ``[DONE]``."""
    last = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
    tail: list[Event] = [(sse(head([last]), space=True), True)]
    if usage is not None:
        tail.append((sse({**head([]), "usage": usage}, space=True), False))
    tail.append((b"data: [DONE]\n\n", False))
    return tail


async def _listed(events: list[Event]) -> AsyncGenerator[Event, None]:
    for event in events:
        yield event


async def _chat_events(
    request: web.Request,
    spec: ModelSpec,
    req: GenRequest,
    head: Head,
    include_usage: bool,
    traits: tuple[ReasoningForm | None, int | None] = (None, None),
) -> AsyncGenerator[Event, None]:
    """A chat stream made as the model makes tokens: a delta per token (text that may begin
    a stop sequence waits for the next token; reasoning and logprobs per ``traits``), then
    the closing chunks."""
    result = GenResult(input_length=req.input_length, seed=req.params.seed)
    holdback = StopHoldback(req.params.stop)
    deltas = StreamDeltas(*traits)
    steps = generation_steps(spec, req, client_alive(request))
    async with contextlib.aclosing(steps):
        async for step in steps:
            result.add(step)
            made = deltas.step(step.token, holdback.feed(result))
            if made is not None:
                yield _delta_event(head, *made), False
    finish = "length" if result.finish_reason == "length" else "stop"
    completion_tokens = sum(1 for t in result.tokens if not t.special)
    usage = _usage(req.input_length, completion_tokens) if include_usage else None
    for event in _chat_tail(head, finish, usage):
        yield event


def tool_call_deltas(plans: list[ToolCallPlan]) -> list[dict[str, Any]]:
    """Streamed tool calls: a head with id and name, then the arguments in three pieces."""
    deltas: list[dict[str, Any]] = []
    for i, plan in enumerate(plans):
        head = {"index": i, "id": plan.id, "type": "function",
                "function": {"name": plan.name, "arguments": ""}}  # fmt: skip
        deltas.append({"role": "assistant", "content": None, "tool_calls": [head]})
        step = max(1, -(-len(plan.arguments) // 3))
        for start in range(0, len(plan.arguments), step):
            piece = plan.arguments[start : start + step]
            deltas.append({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    return deltas
