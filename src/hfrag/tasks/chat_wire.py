"""The chat-completions wire form: request bodies and answers (pure functions).

Bodies carry the options, ``tools``, ``tool_choice`` and ``response_format`` in the OpenAI or
the TGI form; answers decode to :mod:`hfrag.tasks.generation` types; streamed chunks are decoded in
:mod:`hfrag.tasks.chat_stream`. :class:`~hfrag.tasks.ChatClient` and
:class:`~hfrag.tasks.TextGenerationClient` both use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from hfrag.errors import InputError, MalformedResponseError
from hfrag.tasks.base import Target
from hfrag.tasks.generation import (
    GenerationOptions,
    GenerationOutput,
    StopTrimmer,
    ToolCall,
    Usage,
    parse_arguments,
)
from hfrag.tasks.logprobs import chat_logprobs
from hfrag.tasks.reasoning import answer_reasoning, message_reasoning, split_think
from hfrag.transport.urls import chat_url, endpoint_base, redact_url, router_chat_url

__all__ = [
    "chat_body",
    "chat_model_field",
    "chat_target_url",
    "check_tool_choice",
    "check_tools",
    "content_text",
    "decode_chat",
    "decode_usage",
    "is_tgi_info",
    "normalize_finish",
    "response_format_for",
]

_FINISH = {
    "stop": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def normalize_finish(reason: Any) -> str | None:
    """A server's finish reason in OpenAI's words (``eos_token`` -> ``stop``...)."""
    if reason is None:
        return None
    return _FINISH.get(str(reason), str(reason))


# -- request ----------------------------------------------------------------------------------


def check_tools(tools: Any) -> list[dict[str, Any]] | None:
    """Tools in the OpenAI form; a bare ``{"name", "parameters"}`` is wrapped."""
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise InputError("tools must be a list of tool definitions")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise InputError(f"tool {i} is {type(tool).__name__}, not a dict", positions=[i])
        function = tool.get("function") if tool.get("type", "function") == "function" else None
        if function is None and "name" in tool:
            function, tool = tool, {"type": "function", "function": dict(tool)}
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise InputError(
                f'tool {i} must be {{"type": "function", "function": {{"name", "parameters"}}}}',
                positions=[i],
            )
        out.append(dict(tool))
    return out or None


def check_tool_choice(choice: Any, tools: list[dict[str, Any]] | None) -> Any:
    """``tool_choice`` in the OpenAI form; a bare function name becomes the dict form."""
    if choice is None:
        return None
    names = [t["function"]["name"] for t in tools or []]
    if isinstance(choice, str) and choice not in ("auto", "none", "required", "any"):
        choice = {"type": "function", "function": {"name": choice}}
    if choice == "any":  # Anthropic's word, used by some LangChain callers
        choice = "required"
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str):
            raise InputError(f"tool_choice must name a function, got {choice!r}")
        if name not in names:
            raise InputError(f"tool_choice names {name!r}, which is not among the tools {names}")
        return {"type": "function", "function": {"name": name}}
    if choice != "none" and not names:
        raise InputError(f"tool_choice={choice!r} needs tools")
    return choice


def response_format_for(fmt: Any, style: Literal["openai", "tgi"]) -> Any:
    """``response_format`` in the form the server takes.

    OpenAI: ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"?}}``; TGI and
    hf-inference endpoints: ``{"type": "json_object", "value": schema}``. Either is accepted as
    input; ``{"type": "json_object"}`` (any JSON) passes unchanged.
    """
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping) or not isinstance(fmt.get("type"), str):
        raise InputError(f'response_format must be a dict with a "type", got {fmt!r}')
    kind = fmt["type"]
    schema: Any = None
    name = "response"
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
            raise InputError('response_format "json_schema" needs {"json_schema": {"schema"}}')
        schema, name = spec["schema"], str(spec.get("name") or name)
    elif kind in ("json_object", "json") and isinstance(fmt.get("value"), Mapping):
        schema = fmt["value"]
    if schema is None:
        return dict(fmt)
    if style == "tgi":
        return {"type": "json_object", "value": dict(schema)}
    spec = dict(fmt.get("json_schema") or {})
    return {"type": "json_schema", "json_schema": {**spec, "name": name, "schema": dict(schema)}}


def chat_body(
    model: str,
    messages: list[dict[str, Any]],
    options: GenerationOptions,
    *,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: Any = None,
    response_format: Any = None,
    stream: bool = False,
) -> dict[str, Any]:
    """A chat-completions body; options that are None are not sent."""
    body: dict[str, Any] = {"model": model, "messages": messages}
    if tools:
        body["tools"] = tools
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if response_format is not None:
        body["response_format"] = response_format
    body.update(options.chat_fields())
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# -- answers ----------------------------------------------------------------------------------


def _malformed(url: str, what: str) -> MalformedResponseError:
    return MalformedResponseError(f"chat completion answer {what}", status=200, url=redact_url(url))


def decode_usage(value: Any) -> Usage | None:
    if not isinstance(value, Mapping):
        return None

    def count(key: str, where: Mapping[str, Any] = value) -> int | None:
        n = where.get(key)
        return n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None

    # OpenAI's usage object (also DeepSeek's and vLLM's): completion_tokens_details.reasoning_tokens
    details = value.get("completion_tokens_details")
    reasoning = count("reasoning_tokens", details) if isinstance(details, Mapping) else None
    total = count("total_tokens")
    return Usage(count("prompt_tokens"), count("completion_tokens"), total, reasoning)


def content_text(content: Any, url: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    raise _malformed(url, f"has content of type {type(content).__name__}")


def _tool_calls(value: Any, url: str) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):  # some TGI versions send one call as an object
        value = [value]
    if not isinstance(value, list):
        raise _malformed(url, "has tool_calls that are not a list")
    calls = []
    for i, call in enumerate(value):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _malformed(url, f"has tool call {i} without a function name")
        arguments, raw = parse_arguments(function.get("arguments"))
        call_id = call.get("id")
        calls.append(
            # TGI 1.4 sends the integer 0: an id, not a missing one.
            ToolCall(
                f"call_{i}" if call_id is None or call_id == "" else str(call_id),
                function["name"],
                arguments,
                raw,
            )
        )
    return tuple(calls)


def decode_chat(
    payload: Any, url: str, stop: Sequence[str] = (), prefix: str = "", split: bool = True
) -> GenerationOutput:
    """A chat answer: the first choice's text (stop sequences trimmed), tool calls, usage,
    reasoning (a field, or a leading ``<think>`` when ``split``) and logprobs."""
    if not isinstance(payload, Mapping):
        raise _malformed(url, f"is {type(payload).__name__}, not an object")
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise _malformed(url, "has no choices")
    message = choices[0].get("message")
    if not isinstance(message, Mapping):
        raise _malformed(url, "has no message in its first choice")
    thought, content = split_think(content_text(message.get("content"), url), split)
    text = StopTrimmer(stop).trim(content)
    raw_reason = choices[0].get("finish_reason")
    model = payload.get("model")
    calls = _tool_calls(message.get("tool_calls"), url)
    finish = normalize_finish(raw_reason)
    if calls and finish == "stop":  # TGI ends a tool call with stop/eos_token: OpenAI's tool_calls
        finish = "tool_calls"
    return GenerationOutput(
        text=prefix + text,
        finish_reason=finish,
        usage=decode_usage(payload.get("usage")),
        tool_calls=calls,
        model=model if isinstance(model, str) else None,
        raw_finish_reason=None if raw_reason is None else str(raw_reason),
        raw=payload,
        reasoning=answer_reasoning(message_reasoning(message), thought),
        logprobs=chat_logprobs(choices[0]),
    )


def chat_target_url(target: Target) -> str:
    """The chat URL of a target: the router's, or ``{endpoint}/v1/chat/completions``."""
    url = target.endpoint_url
    if url is None:
        return router_chat_url(target.router_url)
    if urlsplit(url).path.rstrip("/").endswith(("/generate", "/generate_stream")):
        url = endpoint_base(url)  # a TGI route given: its server's chat route
    return chat_url(url)


def chat_model_field(target: Target, provider: str | None) -> str:
    """The body's ``model``: ``id:provider`` on the router; ``tgi`` for an endpoint (TGI and
    llama.cpp ignore it; give vLLM its served name with ``model_kwargs={"model": ...}``)."""
    if target.model is None:
        return "tgi"
    return f"{target.model}:{provider}" if provider else target.model


def is_tgi_info(info: Mapping[str, Any]) -> bool:
    """Whether an endpoint's ``GET /info`` is TGI's (a text-generation server)."""
    return info.get("router") == "text-generation-router" or (
        "max_total_tokens" in info and "model_id" in info
    )
