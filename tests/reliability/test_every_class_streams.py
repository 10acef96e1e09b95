"""What a stream promises, for every class that streams, against raw servers on 127.0.0.1.

- A JSON answer to a stream request (a server that ignores ``stream: true``) is the whole
  answer, or the typed error its body says; never an empty text.
- A complete stream (its ``finish_reason`` chunk and the usage chunk asked for) on a connection
  the server holds open returns at once and closes the connection.
- Cancelling an async stream mid-way (``task.cancel()``, ``asyncio.wait_for``,
  ``asyncio.timeout``) raises ``CancelledError`` or ``TimeoutError``, with the connection closed.
- Tool-call deltas merge by index *and* id, the same in every class that exposes tool calls.
- Odd event streams (a byte-order mark, invalid UTF-8, another choice's chunks, ``choices`` or
  ``function`` of the wrong type) give the right answer or a typed error.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hfrag.errors import (
    BackendError,
    InferenceConnectionError,
    MalformedResponseError,
)
from tests.reliability.classes import INPUTS, SUBJECTS, Subject, close
from tests.reliability.rawserver import ANY, RawServer, respond, sse
from tests.reliability.test_every_class_malformed_responses import STREAMS
from tests.transport.conftest import eventually

pytestmark = pytest.mark.timeout(60)

STREAMERS = [s for s in SUBJECTS if s.name in STREAMS]
PROMPT = INPUTS["generate"]


def _chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


USAGE = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
TEXT_EVENTS = [
    _chunk({"role": "assistant", "content": "Paris"}),
    _chunk({"content": " it is."}),
    _chunk({}, "stop"),
]
WHOLE = {
    "id": "x",
    "object": "chat.completion",
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris it is."},
            "finish_reason": "stop",
        }
    ],
    "usage": USAGE["usage"],
}


def _build(subject: Subject, srv: RawServer, **kw: Any) -> Any:
    kw.setdefault("max_retries", 0)
    return subject.build(srv.url, **kw)


# -- a JSON answer to a stream request ------------------------------------------------------------


@pytest.mark.parametrize("subject", STREAMERS, ids=str)
def test_a_json_answer_to_a_stream_is_the_whole_answer(
    raw_server: RawServer, subject: Subject
) -> None:
    raw_server.route(ANY, respond(200, WHOLE))
    obj = _build(subject, raw_server)
    try:
        assert STREAMS[subject.name](obj, PROMPT) == "Paris it is."
    finally:
        close(obj)


@pytest.mark.parametrize("subject", STREAMERS, ids=str)
def test_a_json_error_answer_to_a_stream_is_its_typed_error(
    raw_server: RawServer, subject: Subject
) -> None:
    raw_server.route(ANY, respond(200, {"error": "CUDA out of memory", "error_type": "generation"}))
    obj = _build(subject, raw_server)
    try:
        with pytest.raises(BackendError, match="CUDA out of memory"):
            STREAMS[subject.name](obj, PROMPT)
    finally:
        close(obj)


# -- a complete stream on a connection held open --------------------------------------------------


@pytest.mark.parametrize("subject", STREAMERS, ids=str)
def test_a_complete_stream_on_a_held_connection_returns_at_once(
    raw_server: RawServer, subject: Subject
) -> None:
    raw_server.route(ANY, sse([*TEXT_EVENTS, USAGE], then="hold"))
    obj = _build(subject, raw_server, timeout=20.0)
    try:
        start = time.monotonic()
        assert STREAMS[subject.name](obj, PROMPT) == "Paris it is."
        # An old hfrag waits for the 20 s timeout, then throws the answer away.
        assert time.monotonic() - start < 5.0
        assert eventually(lambda: raw_server.stats.disconnects == 1, 5.0), "left open"
    finally:
        close(obj)


# -- cancelling an async stream mid-way -----------------------------------------------------------


async def _li_astream(obj: Any, prompt: str) -> AsyncIterator[Any]:
    from llama_index.core.llms import ChatMessage

    async for r in await obj.astream_chat([ChatMessage(role="user", content=prompt)]):
        yield r


ASTREAMS: dict[str, Callable[[Any, str], AsyncIterator[Any]]] = {
    "ChatClient": lambda o, v: o.astream_chat([{"role": "user", "content": v}]),
    "TextGenerationClient": lambda o, v: o.astream(v),
    "lc.ChatHuggingFaceInference": lambda o, v: o.astream(v),
    "lc.HuggingFaceInferenceLLM": lambda o, v: o.astream(v),
    "li.HuggingFaceInferenceLLM": _li_astream,
}


async def _drain(stream: AsyncIterator[Any], started: asyncio.Event) -> None:
    async for _ in stream:
        started.set()


async def _cancel_by_task(stream: AsyncIterator[Any]) -> None:
    started = asyncio.Event()
    task = asyncio.ensure_future(_drain(stream, started))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _cancel_by_wait_for(stream: AsyncIterator[Any]) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(_drain(stream, asyncio.Event()), 0.5)


async def _cancel_by_timeout(stream: AsyncIterator[Any]) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):  # type: ignore[attr-defined]
            await _drain(stream, asyncio.Event())


CANCELS = {"task-cancel": _cancel_by_task, "wait-for": _cancel_by_wait_for}
if hasattr(asyncio, "timeout"):  # Python 3.11+
    CANCELS["asyncio-timeout"] = _cancel_by_timeout


@pytest.mark.parametrize("how", list(CANCELS))
@pytest.mark.parametrize("subject", STREAMERS, ids=str)
def test_cancelling_a_stream_mid_way_raises_cancellation_and_closes(
    raw_server: RawServer, subject: Subject, how: str
) -> None:
    raw_server.route(ANY, sse([_chunk({"role": "assistant", "content": "Paris"})], then="hold"))
    obj = _build(subject, raw_server, timeout=20.0)
    try:
        for _ in range(3):  # the step being cancelled lands at different points each time
            asyncio.run(CANCELS[how](ASTREAMS[subject.name](obj, PROMPT)))
        assert eventually(lambda: raw_server.stats.disconnects == 3, 5.0), "left open"
    finally:
        close(obj)


# -- tool-call deltas -----------------------------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} of a place",
            "parameters": {"type": "object", "properties": {arg: {"type": "string"}}},
        },
    }
    for name, arg in (("get_weather", "city"), ("get_time", "zone"))
]


def _call(index: int, call_id: Any = None, name: Any = None, arguments: Any = "") -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        out["id"] = call_id
    if name is not None:
        out["function"]["name"] = name
    return out


def _tools(*calls: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return _chunk({"tool_calls": list(calls)}, finish)


END = _chunk({}, "tool_calls")
PARIS = ("get_weather", {"city": "Paris"})

#: id -> (events, how the stream ends, the calls it must give as (id or None, name, arguments)).
TOOL_STREAMS: dict[str, tuple[list[Any], str, list[tuple[str | None, str, dict[str, Any]]]]] = {
    # Ollama, SGLang, Bedrock: each call whole in one delta, every one at index 0.
    "two-calls-sharing-index-0": (
        [
            _tools(_call(0, "call_a", "get_weather", '{"city": "Paris"}')),
            _tools(_call(0, "call_b", "get_time", '{"zone": "CET"}')),
            END,
        ],
        "done",
        [("call_a", *PARIS), ("call_b", "get_time", {"zone": "CET"})],
    ),
    "name-repeated-in-every-delta": (
        [
            _tools(_call(0, "call_a", "get_weather", '{"city": ')),
            _tools(_call(0, None, "get_weather", '"Paris"}')),
            END,
        ],
        "done",
        [("call_a", *PARIS)],
    ),
    "id-sent-as-integer-0": (  # TGI 1.4
        [
            _tools(_call(0, 0, "get_weather", '{"city": ')),
            _tools(_call(0, None, None, '"Paris"}')),
            END,
        ],
        "done",
        [("0", *PARIS)],
    ),
    "two-calls-by-index": (
        [
            _tools(_call(0, "call_a", "get_weather", ""), _call(1, "call_b", "get_time", "")),
            _tools(_call(0, None, None, '{"city": "Paris"}')),
            _tools(_call(1, None, None, '{"zone": "CET"}')),
            END,
        ],
        "done",
        [("call_a", *PARIS), ("call_b", "get_time", {"zone": "CET"})],
    ),
    # TGI: no finish_reason on a streamed tool call, [DONE] once its JSON is whole.
    "tgi-no-finish-reason-then-done": (
        [
            _chunk({"role": "assistant", "tool_calls": [_call(0, "", "get_weather", '{"city"')]}),
            _tools(_call(0, "", None, ': "Paris"}')),
        ],
        "done",
        [(None, *PARIS)],
    ),
}


def _chat_client_calls(obj: Any) -> list[tuple[str | None, str, Any]]:
    from hfrag.tasks import collect

    out = collect(obj.stream_chat([{"role": "user", "content": PROMPT}], tools=TOOLS))
    assert out.finish_reason == "tool_calls"
    return [(c.id, c.name, c.arguments) for c in out.tool_calls]


def _lc_calls(obj: Any) -> list[tuple[str | None, str, Any]]:
    merged = None
    for chunk in obj.bind_tools(TOOLS).stream(PROMPT):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None
    assert merged.response_metadata["finish_reason"] == "tool_calls"
    return [(c["id"], c["name"], c["args"]) for c in merged.tool_calls]


def _li_calls(obj: Any) -> list[tuple[str | None, str, Any]]:
    from llama_index.core.llms import ChatMessage

    messages = [ChatMessage(role="user", content=PROMPT)]
    last = None
    for last in obj.stream_chat(messages, tools=TOOLS):  # noqa: B007
        pass
    assert last is not None
    assert last.additional_kwargs["finish_reason"] == "tool_calls"
    calls = last.message.additional_kwargs["tool_calls"]
    return [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


#: Each class that exposes streamed tool calls, and how to read them.
TOOL_CALLS = {
    "ChatClient": _chat_client_calls,
    "lc.ChatHuggingFaceInference": _lc_calls,
    "li.HuggingFaceInferenceLLM": _li_calls,
}
TOOL_STREAMERS = [s for s in SUBJECTS if s.name in TOOL_CALLS]


@pytest.mark.parametrize("case", list(TOOL_STREAMS))
@pytest.mark.parametrize("subject", TOOL_STREAMERS, ids=str)
def test_tool_call_deltas_merge_by_index_and_id(
    raw_server: RawServer, subject: Subject, case: str
) -> None:
    events, then, expected = TOOL_STREAMS[case]
    raw_server.route(ANY, sse(events, then=then))
    obj = _build(subject, raw_server)
    try:
        calls = TOOL_CALLS[subject.name](obj)
        assert [(n, a) for _, n, a in calls] == [(n, a) for _, n, a in expected]
        for (got, _, _), (want, _, _) in zip(calls, expected, strict=True):
            if want is not None:
                assert got == want
        assert len({got for got, _, _ in calls}) == len(calls), "two calls share an id"
    finally:
        close(obj)


@pytest.mark.parametrize("subject", TOOL_STREAMERS, ids=str)
def test_a_tool_call_stream_cut_before_done_is_an_error(
    raw_server: RawServer, subject: Subject
) -> None:
    events, _, _ = TOOL_STREAMS["tgi-no-finish-reason-then-done"]
    raw_server.route(ANY, sse(events, then="close"))
    obj = _build(subject, raw_server)
    try:
        with pytest.raises(InferenceConnectionError):
            TOOL_CALLS[subject.name](obj)
    finally:
        close(obj)


# -- odd event streams ----------------------------------------------------------------------------

#: id -> (behaviour, the text it must give, or the typed error it must raise).
ODD: dict[str, tuple[Any, str | type[Exception]]] = {
    "bom-before-first-event": (sse([*TEXT_EVENTS], prefix=b"\xef\xbb\xbf"), "Paris it is."),
    "invalid-utf8-in-an-event": (
        sse([b'{"choices": [{"index": 0, "delta": {"content": "Par\xffis"}}]}', TEXT_EVENTS[2]]),
        MalformedResponseError,
    ),
    "choice-1-not-mixed-into-choice-0": (
        sse(
            [
                TEXT_EVENTS[0],
                _chunk({"role": "assistant", "content": "Rome"}, index=1),
                TEXT_EVENTS[1],
                _chunk({}, "stop", index=1),
                TEXT_EVENTS[2],
            ]
        ),
        "Paris it is.",
    ),
    "choices-as-an-object": (
        sse([{"choices": {"index": 0, "delta": {"content": "Paris"}}}, TEXT_EVENTS[2]]),
        MalformedResponseError,
    ),
    "function-as-a-string": (
        sse([_chunk({"tool_calls": [{"index": 0, "function": "get_weather"}]}), END]),
        MalformedResponseError,
    ),
}


@pytest.mark.parametrize("case", list(ODD))
@pytest.mark.parametrize("subject", STREAMERS, ids=str)
def test_an_odd_event_stream_gives_the_answer_or_a_typed_error(
    raw_server: RawServer, subject: Subject, case: str
) -> None:
    behaviour, expected = ODD[case]
    raw_server.route(ANY, behaviour)
    obj = _build(subject, raw_server)
    try:
        if isinstance(expected, str):
            assert STREAMS[subject.name](obj, PROMPT) == expected
        else:
            with pytest.raises(expected):
                STREAMS[subject.name](obj, PROMPT)
    finally:
        close(obj)


# -- more streams at once than the pool has connections -------------------------------------------


def _many_streams(obj: Any, n: int) -> list[Any]:
    async def one() -> str:
        chunks = [c async for c in obj.astream_chat([{"role": "user", "content": PROMPT}])]
        return "".join(c.text for c in chunks if hasattr(c, "text") and isinstance(c.text, str))

    async def every() -> list[Any]:
        return await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)

    return asyncio.run(every())


def test_a_wait_for_a_pooled_connection_is_said_to_be_one(raw_server: RawServer) -> None:
    from hfrag.errors import InferenceTimeoutError
    from hfrag.tasks import ChatClient

    raw_server.route(ANY, sse(TEXT_EVENTS, interval=0.4, then="done"))
    client = ChatClient(model="m/x", router_url=raw_server.url, max_retries=0, timeout=0.8)
    try:
        results = _many_streams(client, 8 + 64)  # 64: the pool of a chat client
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors, "every stream got a connection: the check proves nothing"
        for error in errors:
            assert isinstance(error, InferenceTimeoutError)
            assert "free connection" in str(error)
            assert "max_connections" in str(error)
    finally:
        client.close()


def test_a_pool_sized_for_the_streams_serves_them_all(raw_server: RawServer) -> None:
    from hfrag.tasks import ChatClient

    raw_server.route(ANY, sse(TEXT_EVENTS, interval=0.4, then="done"))
    client = ChatClient(
        model="m/x", router_url=raw_server.url, max_retries=0, timeout=5.0, max_connections=80
    )
    try:
        assert _many_streams(client, 72) == ["Paris it is."] * 72
    finally:
        client.close()
