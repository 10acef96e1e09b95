"""Every class a user chats with, called one way each, its answer read back in one shape.

A way builds its object from target arguments (``model``/``router_url``/``provider`` or
``endpoint_url``) and generation options, calls it once with messages (and tools), and returns
an :class:`Answer`: text, finish reason, usage and tool calls as that class reports them, so a
test compares every class with the recording the same way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hfrag.tasks import ChatClient, GenerationOptions, collect
from hfrag.tasks.generation import GenerationOutput

#: Generation options by their task-client names; the framework classes take the same names.
Options = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str | None
    usage: tuple[int | None, int | None, int | None] | None  # prompt, completion, total
    tool_calls: tuple[tuple[str, dict[str, Any] | None], ...] = ()
    tool_ids: tuple[str, ...] = ()


def _from_output(out: GenerationOutput) -> Answer:
    usage = out.usage
    return Answer(
        out.text,
        out.finish_reason,
        None
        if usage is None
        else (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
        tuple((c.name, c.arguments) for c in out.tool_calls),
        tuple(c.id for c in out.tool_calls),
    )


def _task(target: dict[str, Any], options: Options) -> ChatClient:
    return ChatClient(**target, options=GenerationOptions(**options))


def _langchain(
    target: dict[str, Any], options: Options, tools: list[Any] | None, choice: Any = None
) -> Any:
    from hfrag.langchain import ChatHuggingFaceInference

    model = ChatHuggingFaceInference(**target, **options)
    return model.bind_tools(tools, tool_choice=choice) if tools else model


def _from_langchain(message: Any) -> Answer:
    usage = message.usage_metadata
    calls = tuple((c["name"], c["args"]) for c in message.tool_calls)
    return Answer(
        message.content if isinstance(message.content, str) else str(message.content),
        message.response_metadata.get("finish_reason"),
        None
        if not usage
        else (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]),
        calls,
        tuple(c["id"] for c in message.tool_calls),
    )


def _llama_index(target: dict[str, Any], options: Options) -> Any:
    from hfrag.llama_index import HuggingFaceInferenceLLM

    return HuggingFaceInferenceLLM(**target, **options)


def _li_messages(messages: list[dict[str, Any]]) -> list[Any]:
    from llama_index.core.llms import ChatMessage

    return [ChatMessage(role=m["role"], content=m["content"]) for m in messages]


def _li_tools(tools: list[dict[str, Any]]) -> list[Any]:
    """LlamaIndex tools that send the recorded JSON schemas (no Python function behind them)."""
    from dataclasses import dataclass as _dataclass
    from dataclasses import field

    from llama_index.core.tools import FunctionTool, ToolMetadata

    @_dataclass
    class Recorded(ToolMetadata):
        parameters: dict[str, Any] = field(default_factory=dict)

        def get_parameters_dict(self) -> dict[str, Any]:
            return self.parameters

    out = []
    for tool in tools:
        function = tool["function"]
        meta = Recorded(
            name=function["name"],
            description=function["description"],
            parameters=function["parameters"],
        )
        out.append(FunctionTool(fn=lambda **kw: kw, metadata=meta))
    return out


def _from_llama_index(response: Any, llm: Any) -> Answer:
    extra = response.additional_kwargs
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    usage = tuple(extra.get(k) for k in keys) if any(k in extra for k in keys) else None
    calls: tuple[tuple[str, dict[str, Any] | None], ...] = ()
    ids: tuple[str, ...] = ()
    if extra.get("tool_calls") or response.message.additional_kwargs.get("tool_calls"):
        selections = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
        calls = tuple((s.tool_name, s.tool_kwargs) for s in selections)
        ids = tuple(s.tool_id for s in selections)
    return Answer(response.message.content or "", extra.get("finish_reason"), usage, calls, ids)  # type: ignore[arg-type]


Call = Callable[[dict[str, Any], Options, list[dict[str, Any]], Any, Any], Answer]


def _task_chat(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    return _from_output(_task(t, o).chat(m, tools=tools, tool_choice=choice))


def _task_achat(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    return _from_output(asyncio.run(_task(t, o).achat(m, tools=tools, tool_choice=choice)))


def _task_stream(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    return _from_output(collect(_task(t, o).stream_chat(m, tools=tools, tool_choice=choice)))


def _task_astream(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    async def go() -> GenerationOutput:
        stream = _task(t, o).astream_chat(m, tools=tools, tool_choice=choice)
        return collect([c async for c in stream])

    return _from_output(asyncio.run(go()))


def _lc_invoke(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    return _from_langchain(
        _langchain(t, o, tools, choice).invoke([(x["role"], x["content"]) for x in m])
    )


def _lc_ainvoke(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    model = _langchain(t, o, tools, choice)
    return _from_langchain(asyncio.run(model.ainvoke([(x["role"], x["content"]) for x in m])))


def _lc_stream(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    chunks = list(_langchain(t, o, tools, choice).stream([(x["role"], x["content"]) for x in m]))
    return _from_langchain(sum(chunks[1:], chunks[0]))


def _lc_astream(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    async def go() -> list[Any]:
        model = _langchain(t, o, tools, choice)
        return [c async for c in model.astream([(x["role"], x["content"]) for x in m])]

    chunks = asyncio.run(go())
    return _from_langchain(sum(chunks[1:], chunks[0]))


def _li_chat(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    llm = _llama_index(t, o)
    if tools:
        response = llm.chat_with_tools(
            _li_tools(tools), chat_history=_li_messages(m), tool_choice=choice
        )
    else:
        response = llm.chat(_li_messages(m))
    return _from_llama_index(response, llm)


def _li_achat(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    llm = _llama_index(t, o)
    if tools:
        coro = llm.achat_with_tools(
            _li_tools(tools), chat_history=_li_messages(m), tool_choice=choice
        )
    else:
        coro = llm.achat(_li_messages(m))
    return _from_llama_index(asyncio.run(coro), llm)


def _li_stream(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    llm = _llama_index(t, o)
    if tools:
        stream = llm.stream_chat_with_tools(
            _li_tools(tools), chat_history=_li_messages(m), tool_choice=choice
        )
    else:
        stream = llm.stream_chat(_li_messages(m))
    return _from_llama_index(list(stream)[-1], llm)


def _li_astream(t: dict[str, Any], o: Options, m: list[Any], tools: Any, choice: Any) -> Answer:
    llm = _llama_index(t, o)

    async def go() -> Any:
        if tools:
            stream = await llm.astream_chat_with_tools(
                _li_tools(tools), chat_history=_li_messages(m), tool_choice=choice
            )
        else:
            stream = await llm.astream_chat(_li_messages(m))
        return [r async for r in stream][-1]

    return _from_llama_index(asyncio.run(go()), llm)


#: Whole answers: (class.method) -> call.
WHOLE: dict[str, Call] = {
    "ChatClient.chat": _task_chat,
    "ChatClient.achat": _task_achat,
    "langchain.invoke": _lc_invoke,
    "langchain.ainvoke": _lc_ainvoke,
    "llama_index.chat": _li_chat,
    "llama_index.achat": _li_achat,
}
#: Streamed answers.
STREAMED: dict[str, Call] = {
    "ChatClient.stream_chat": _task_stream,
    "ChatClient.astream_chat": _task_astream,
    "langchain.stream": _lc_stream,
    "langchain.astream": _lc_astream,
    "llama_index.stream_chat": _li_stream,
    "llama_index.astream_chat": _li_astream,
}


def recorded_whole(answer: dict[str, Any]) -> Answer:
    """What a recorded whole answer says, read from its JSON (the oracle)."""
    choice = answer["choices"][0]
    usage = answer.get("usage")
    calls = tuple(
        (
            c["function"]["name"],
            c["function"]["arguments"]
            if isinstance(c["function"]["arguments"], dict)
            else json.loads(c["function"]["arguments"]),
        )
        for c in choice["message"].get("tool_calls") or ()
    )
    return Answer(
        choice["message"].get("content") or "",
        choice.get("finish_reason"),
        None
        if not usage
        else (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]),
        calls,
        tuple(str(c["id"]) for c in choice["message"].get("tool_calls") or ()),
    )


def recorded_stream(events: list[Any]) -> Answer:
    """What a recorded stream says: the deltas' text joined, the last finish reason and usage,
    tool-call name and argument fragments joined per index."""
    text, finish, usage = "", None, None
    calls: dict[int, list[str]] = {}
    ids: dict[int, str] = {}
    for event in events:
        if event == "[DONE]":
            continue
        if event.get("usage"):
            u = event["usage"]
            usage = (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"])
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            finish = choice.get("finish_reason") or finish
            for call in delta.get("tool_calls") or ():
                name, args = calls.setdefault(call["index"], ["", ""])
                function = call.get("function") or {}
                calls[call["index"]] = [
                    name + (function.get("name") or ""),
                    args + (function.get("arguments") or ""),
                ]
                ids.setdefault(call["index"], str(call.get("id")))
    return Answer(
        text,
        finish,
        usage,
        tuple((n, json.loads(a)) for n, a in (calls[i] for i in sorted(calls))),
        tuple(ids[i] for i in sorted(ids)),
    )
