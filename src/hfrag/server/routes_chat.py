"""OpenAI-form chat: ``POST /v1/chat/completions`` (TGI's Messages API, the router's chat route).

``model`` picks the generator (``tgi`` or none: the first one). ``tools``, ``tool_choice`` and
``response_format`` are checked once (``chat_format.parse_constraint``) and handed to the
generator with the decoding parameters; the generator decides the answer (see ``chat_format``)
and ``chat_format.AnswerReader`` reads it back. The answer reaches the client in OpenAI's
shapes:

- words: ``message.content``; streamed, one ``delta.content`` per piece as it is generated;
- tool calls: ``message.content: null`` and ``message.tool_calls`` (``id``, ``type:
  "function"``, ``function: {name, arguments}`` with the arguments as a JSON string),
  ``finish_reason: "tool_calls"``; streamed as OpenAI streams them: a first delta per call
  with its ``index``, ``id``, ``type`` and ``function.name`` (arguments ``""``), then deltas of
  ``function.arguments`` text as the model writes it;
- a stream of words ends with a chunk carrying ``finish_reason``, the usage chunk when
  ``stream_options.include_usage``, and ``data: [DONE]``; a stream of tool calls has no
  ``finish_reason`` chunk, as TGI's (the usage chunk when asked, then ``[DONE]``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from aiohttp import web

from hfrag.server.backends import GenerationParams
from hfrag.server.chat_format import AnswerReader, ChatConstraint, Piece, parse_constraint
from hfrag.server.chat_format import prompt_messages as model_messages
from hfrag.server.config import ModelSpec
from hfrag.server.generation import (
    GenRequest,
    GenResult,
    StopHoldback,
    sse,
    stop_list,
    validate_generation,
)
from hfrag.server.inference import (
    admit,
    first_of_kind,
    generation_steps,
    json_response,
    raw_body,
    state_of,
)
from hfrag.server.routes_tgi import FINGERPRINT, INJECTED, error_stream, gone, run_answer
from hfrag.server.runtime import ClientGone
from hfrag.server.streaming import Event, client_alive, send_events
from hfrag.server.traits import (
    ReasoningForm,
    StreamDeltas,
    answer_fields,
    answer_tokens,
    chat_logprobs,
    logprobs_asked,
    model_for,
    reasoning_form,
    reasoning_usage,
    refusal,
)
from hfrag.server.validation import ApiError, Field, deserialize_error, parse_json_body

__all__ = ["chat_completions"]

_ids = itertools.count(1)
Head = Callable[[list[Any]], dict[str, Any]]  # a chunk's fields around its choices


def _chat_error(message: str) -> bytes:
    return sse({"error": {"message": message, "http_status_code": 424}}, space=True)


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


def _usage(
    prompt_tokens: int, completion_tokens: int, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if details:
        usage["completion_tokens_details"] = details
    return usage


def _call_id(seq: int, index: int) -> str:
    return f"call_{seq}_{index}"


def _delta(piece: Piece, seq: int) -> dict[str, Any]:
    """The OpenAI delta of one piece of the answer."""
    if piece.kind == "content":
        return {"role": "assistant", "content": piece.text}
    if piece.kind == "call":
        head = {"index": piece.index, "id": _call_id(seq, piece.index), "type": "function",
                "function": {"name": piece.name, "arguments": ""}}  # fmt: skip
        return {"role": "assistant", "content": None, "tool_calls": [head]}
    return {"tool_calls": [{"index": piece.index, "function": {"arguments": piece.text}}]}


def _finish(result: GenResult, reader: AnswerReader) -> str:
    if reader.calls:
        return "tool_calls"
    return "length" if result.finish_reason == "length" else "stop"


def _request(
    request: web.Request, fields: Field, spec: ModelSpec, messages: list[dict[str, Any]]
) -> tuple[GenRequest, ChatConstraint | None]:
    """The validated generation request of a chat body, with its constraint."""
    max_tokens = fields.integer("max_tokens")
    if max_tokens is None:
        max_tokens = fields.integer("max_completion_tokens")
    temperature = fields.number("temperature")
    top_p = fields.number("top_p")
    if not messages:
        raise ApiError(
            422,
            {
                "error": "Input validation error: `messages` cannot be empty",
                "error_type": "validation",
            },
        )
    constraint = parse_constraint(fields.body, messages)
    params = GenerationParams(
        stop=stop_list(fields, "stop"),
        # OpenAI clients send temperature 0 for greedy and top_p 1 for "off"; TGI's chat
        # route accepts both, so they must not hit the /generate range checks.
        temperature=temperature if temperature and temperature > 0 else None,
        top_p=top_p if top_p is not None and top_p < 1.0 else None,
        seed=fields.integer("seed"),
        constraint=constraint,
    )
    prompt = spec.backend.render_chat(model_messages(messages, constraint))
    state = state_of(request)
    req = validate_generation(
        spec, state.config, prompt, params, max_new_tokens=max_tokens, truncate=None
    )
    return req, constraint


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions`` (OpenAI shape; ``model`` picks the model)."""
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
    admit(1)
    seq = next(_ids)
    try:
        req, constraint = _request(request, fields, spec, messages)
    except ApiError as err:
        if stream and isinstance(err.body, dict):
            message = err.body.get("error")
            event = {"error": {"message": message, "http_status_code": err.status}}
            return await error_stream(request, sse(event, space=True))
        raise
    cid, created = f"chatcmpl-{seq}", int(time.time())
    if stream:
        head: Head = functools.partial(_chunk, spec, cid, created)
        return await send_events(
            request,
            _chat_events(request, spec, req, constraint, head, include_usage, seq, (form, top)),
            cut_event=_chat_error(INJECTED),
            error_event=_chat_error,
        )
    try:
        result = await run_answer(request, spec, req)
    except ClientGone:
        return gone(request)
    reader = AnswerReader(constraint)
    reader.finish(result.text_without_stop)
    completion_tokens = sum(1 for t in result.tokens if not t.special)
    message = {"content": None} if reader.calls else answer_fields(form, reader.content)
    answer: dict[str, Any] = {"role": "assistant", **message}
    logprobs = None
    if top is not None and constraint is None:
        logprobs = chat_logprobs(answer_tokens(form, result.tokens), top)
    if reader.calls:
        answer["tool_calls"] = [
            {
                "id": _call_id(seq, i),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            for i, (name, arguments) in enumerate(reader.tool_calls)
        ]
    choice = {
        "index": 0,
        "message": answer,
        "logprobs": logprobs,
        "finish_reason": _finish(result, reader),
    }
    return json_response(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": spec.name,
            "system_fingerprint": FINGERPRINT,
            "choices": [choice],
            "usage": _usage(
                req.input_length, completion_tokens, reasoning_usage(form, result.tokens)
            ),
        }
    )


def _delta_event(head: Head, delta: dict[str, Any], logprobs: Any = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": None}
    return sse(head([choice]), space=True)


def _chat_tail(head: Head, finish: str, usage: dict[str, int] | None) -> list[Event]:
    """The chunk with ``finish_reason`` (it ends the answer), ``usage`` if asked, ``[DONE]``.

    A tool call's stream has no ``finish_reason`` chunk, as TGI sends it (``router/src/chat.rs``,
    ``ChatState::push``; TGI's snapshot ``test_flash_llama_grammar_tools_choice_stream``, replayed
    in tests/conformance): once the call's JSON is complete, ``[DONE]`` ends the answer.
    """
    tail: list[Event] = []
    if finish != "tool_calls":
        last = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
        tail.append((sse(head([last]), space=True), True))
    if usage is not None:
        tail.append((sse({**head([]), "usage": usage}, space=True), False))
    tail.append((b"data: [DONE]\n\n", finish == "tool_calls"))
    return tail


async def _chat_events(
    request: web.Request,
    spec: ModelSpec,
    req: GenRequest,
    constraint: ChatConstraint | None,
    head: Head,
    include_usage: bool,
    seq: int,
    traits: tuple[ReasoningForm | None, int | None] = (None, None),
) -> AsyncGenerator[Event, None]:
    """A chat stream made as the model makes tokens: a delta per piece of words or of a tool
    call (text that may begin a stop sequence waits for the next token; a free answer's
    reasoning and logprobs per ``traits``), then the closing chunks."""
    result = GenResult(input_length=req.input_length, seed=req.params.seed)
    holdback = StopHoldback(req.params.stop)
    reader = AnswerReader(constraint)
    deltas = StreamDeltas(*traits) if constraint is None else None
    safe = ""
    steps = generation_steps(spec, req, client_alive(request))
    async with contextlib.aclosing(steps):
        async for step in steps:
            result.add(step)
            released = holdback.feed(result)
            if deltas is not None:
                made = deltas.step(step.token, released)
                if made is not None:
                    yield _delta_event(head, *made), False
                continue
            safe += released
            pieces = reader.finish(safe) if result.finished else reader.feed(safe)
            for piece in pieces:
                yield _delta_event(head, _delta(piece, seq)), False
    completion_tokens = sum(1 for t in result.tokens if not t.special)
    details = reasoning_usage(traits[0], result.tokens)
    usage = _usage(req.input_length, completion_tokens, details) if include_usage else None
    for event in _chat_tail(head, _finish(result, reader), usage):
        yield event
