"""Server-sent events: the pure decoder, then real streams over HTTP through both drivers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hfrag.errors import (
    AuthenticationError,
    BackendError,
    InferenceConnectionError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
)
from hfrag.server.testing import CannedResponse
from hfrag.transport import DONE, Request, SSEDecoder, SSEEvent, decode_event
from hfrag.transport._core import StreamDecoder
from tests.transport.conftest import eventually


def _events(lines: list[str]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out = [event for line in lines if (event := decoder.feed(line)) is not None]
    last = decoder.flush()
    return [*out, last] if last is not None else out


def _payloads(lines: list[str]) -> list[object]:
    decoder = StreamDecoder("http://h/s")
    out: list[object] = []
    for line in lines:
        out.extend(decoder.feed(line))
        if decoder.done:
            return out
    return out + decoder.finish()


@pytest.mark.parametrize("prefix", ["data: ", "data:"])
def test_data_with_and_without_space(prefix: str) -> None:
    assert _events([f'{prefix}{{"a": 1}}', ""]) == [SSEEvent('{"a": 1}')]


def test_only_one_leading_space_is_removed() -> None:
    assert _events(["data:  x", ""]) == [SSEEvent(" x")]


@pytest.mark.parametrize("line", ["data: [DONE]", "data:[DONE]", "data: [DONE] "])
def test_done_in_both_spellings(line: str) -> None:
    assert decode_event(_events([line, ""])[0]) is DONE
    assert _payloads(['data: {"n": 1}', "", line, "", 'data: {"n": 2}', ""]) == [{"n": 1}]


def test_keep_alive_lines_are_ignored() -> None:
    lines = [": keep-alive", 'data: {"n": 1}', ":", "", ": ping", "", 'data: {"n": 2}', ""]
    assert _payloads(lines) == [{"n": 1}, {"n": 2}]


def test_multi_line_data_is_joined_with_newlines() -> None:
    events = _events(["data: {", 'data: "a": [1,', "data: 2]}", ""])
    assert events == [SSEEvent('{\n"a": [1,\n2]}')]
    assert decode_event(events[0]) == {"a": [1, 2]}


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r"])
def test_line_endings_are_stripped(ending: str) -> None:
    lines = [f'data: {{"n": 1}}{ending}', ending, f"data: [DONE]{ending}", ending]
    assert _payloads(lines) == [{"n": 1}]


def test_last_event_without_trailing_blank_line_is_flushed() -> None:
    assert _payloads(['data: {"n": 1}', "", 'data: {"n": 2}']) == [{"n": 1}, {"n": 2}]


@pytest.mark.parametrize(
    "tail",
    [b'data: {"n": 2', b'data: {"n": 2\n', b"data: [DO", b'data: {"n":\r\ndata: 2'],
    ids=["cut-line", "cut-after-a-line", "cut-done", "cut-multi-line"],
)
def test_a_stream_ending_inside_an_event_is_a_cut_connection(tail: bytes) -> None:
    # Not "malformed": the connection ended in the middle of the event, so the answer is short.
    decoder = StreamDecoder("http://h/s")
    assert decoder.feed_bytes(b'data: {"n": 1}\n\n' + tail) == [{"n": 1}]
    with pytest.raises(InferenceConnectionError, match="middle of an event"):
        decoder.finish()


def test_tgi_stream_without_done() -> None:
    lines = [
        'data:{"token": {"id": 1, "text": "Hel"}, "generated_text": null}',
        "",
        'data:{"token": {"id": 2, "text": "lo"}, "generated_text": "Hello", "details": {}}',
        "",
    ]
    payloads = _payloads(lines)
    assert [p["token"]["text"] for p in payloads] == ["Hel", "lo"]  # type: ignore[index]
    assert payloads[-1]["generated_text"] == "Hello"  # type: ignore[index]


def test_event_and_id_fields() -> None:
    events = _events(["event: delta", "id: 7", "data: {}", "", "data: {}", ""])
    assert events[0] == SSEEvent("{}", "delta", "7")
    assert events[1].event is None  # the event name is per event


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert _events(["", "", "event: x", "", "retry: 100", ""]) == []


def test_field_without_colon() -> None:
    assert _events(["data", ""]) == [SSEEvent("")]


@pytest.mark.parametrize(
    ("payload", "cls"),
    [
        ('{"error": "CUDA OOM", "error_type": "generation"}', BackendError),
        ('{"error": "Model is overloaded", "error_type": "overloaded"}', RateLimitError),
        ('{"error": {"message": "upstream failed"}}', BackendError),
        ('{"error": "bad input", "error_type": "validation"}', InvalidRequestError),
    ],
)
def test_error_event_raises(payload: str, cls: type[Exception]) -> None:
    with pytest.raises(cls) as info:
        _payloads(['data: {"n": 1}', "", f"data: {payload}", "", 'data: {"n": 2}', ""])
    assert info.value.status == 200  # type: ignore[attr-defined]


def test_named_error_event_raises() -> None:
    with pytest.raises(BackendError, match="boom"):
        decode_event(SSEEvent('{"message": "boom"}', event="error"))


def test_null_error_field_is_not_an_error() -> None:
    assert decode_event(SSEEvent('{"choices": [], "error": null}')) == {
        "choices": [],
        "error": None,
    }


@pytest.mark.parametrize(
    "data",
    ["not json", "{", "data: {}", "[DONE", "[" * 100_000],
    ids=["text", "cut", "double-prefix", "cut-done", "deeply-nested"],
)
def test_non_json_data_is_malformed(data: str) -> None:
    with pytest.raises(MalformedResponseError, match="not JSON"):
        decode_event(SSEEvent(data), "http://h/s")


def test_malformed_event_error_hides_url_credentials() -> None:
    with pytest.raises(MalformedResponseError) as info:
        decode_event(SSEEvent("not json"), "http://user:pa55@h/s?api_key=s3cr3t")
    assert "pa55" not in str(info.value)
    assert "s3cr3t" not in str(info.value)
    assert info.value.url == "http://h/s?api_key=***"


# --- real streams over HTTP, through both drivers ---

PATH = "/v1/chat/completions"


def _chunk(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})


def _tgi(text: str, final: bool = False) -> str:
    return json.dumps(
        {
            "token": {"id": 1, "text": text, "special": False},
            "generated_text": "Hello" if final else None,
            "details": {"finish_reason": "eos_token"} if final else None,
        }
    )


CHUNKS = [{"choices": [{"index": 0, "delta": {"content": t}}]} for t in ("Hel", "lo")]
TGI_EVENTS = [json.loads(_tgi("Hel")), json.loads(_tgi("lo", final=True))]

STREAMS: dict[str, tuple[list[str], list[Any]]] = {
    "chat-with-space": (
        [f"data: {_chunk('Hel')}", "", f"data: {_chunk('lo')}", "", "data: [DONE]", ""],
        CHUNKS,
    ),
    "chat-without-space": (
        [f"data:{_chunk('Hel')}", "", f"data:{_chunk('lo')}", "", "data:[DONE]", ""],
        CHUNKS,
    ),
    "nothing-after-done-is-read": (
        [
            f"data: {_chunk('Hel')}",
            "",
            f"data: {_chunk('lo')}",
            "",
            "data: [DONE]",
            "",
            "data: not even json",
            "",
        ],
        CHUNKS,
    ),
    "tgi-without-done": (
        [f"data:{_tgi('Hel')}", "", f"data:{_tgi('lo', final=True)}", ""],
        TGI_EVENTS,
    ),
    "last-event-without-blank-line": (
        [f"data:{_tgi('Hel')}", "", f"data:{_tgi('lo', final=True)}"],
        TGI_EVENTS,
    ),
    "keep-alives": (
        [
            ": keep-alive",
            "",
            f"data: {_chunk('Hel')}",
            ": ping",
            "",
            ":",
            "",
            f"data: {_chunk('lo')}",
            "",
            "data: [DONE]",
            "",
        ],
        CHUNKS,
    ),
    "multi-line-data": (
        [
            "data: {",
            'data: "choices": [{"index": 0,',
            'data: "delta": {"content": "Hel"}}]}',
            "",
            f"data: {_chunk('lo')}",
            "",
            "data: [DONE]",
            "",
        ],
        CHUNKS,
    ),
    "crlf": (
        [f"data: {_chunk('Hel')}\r", "\r", f"data: {_chunk('lo')}\r", "\r", "data: [DONE]\r", "\r"],
        CHUNKS,
    ),
    "event-and-id-fields": (
        [
            "event: message",
            "id: 1",
            f"data: {_chunk('Hel')}",
            "",
            "id: 2",
            f"data: {_chunk('lo')}",
            "",
            "data: [DONE]",
            "",
        ],
        CHUNKS,
    ),
    "empty-stream": ([], []),
}


@pytest.mark.parametrize(("lines", "expected"), list(STREAMS.values()), ids=list(STREAMS))
def test_stream_over_http(server: Any, drive: Any, lines: list[str], expected: list[Any]) -> None:
    server.script(PATH, CannedResponse(200, sse=lines))
    events = drive().stream(Request(server.url + PATH, json={"stream": True}, stream=True))
    assert events == expected
    assert server.counters.headers[-1]["accept"] == "text/event-stream"


ERROR_EVENTS = {
    "tgi-generation": (
        '{"error": "CUDA out of memory", "error_type": "generation"}',
        BackendError,
        "CUDA out of memory",
    ),
    "tgi-overloaded": (
        '{"error": "Model is overloaded", "error_type": "overloaded"}',
        RateLimitError,
        "Model is overloaded",
    ),
    "chat-error": (
        '{"error": {"message": "upstream provider failed", "type": "server_error"}}',
        BackendError,
        "upstream provider failed",
    ),
}


@pytest.mark.parametrize(
    ("payload", "cls", "message"), list(ERROR_EVENTS.values()), ids=list(ERROR_EVENTS)
)
def test_error_event_inside_a_200_stream(
    server: Any, drive: Any, payload: str, cls: type[Exception], message: str
) -> None:
    lines = [f"data: {_chunk('Hel')}", "", f"data: {payload}", "", f"data: {_chunk('lo')}", ""]
    server.script(PATH, CannedResponse(200, sse=lines))
    got: list[Any] = []
    with pytest.raises(cls) as info:
        drive().stream(Request(server.url + PATH, json={}, stream=True), into=got)
    assert got == CHUNKS[:1]  # what came before the error was delivered
    assert info.value.message == message  # type: ignore[attr-defined]
    assert info.value.status == 200  # type: ignore[attr-defined]
    assert info.value.url == server.url + PATH  # type: ignore[attr-defined]
    # A stream that has started is not retried: one request reached the server.
    assert len(server.counters.headers) == 1


def test_non_json_event_over_http(server: Any, drive: Any) -> None:
    server.script(PATH, CannedResponse(200, sse=[f"data: {_chunk('Hel')}", "", "data: oops", ""]))
    got: list[Any] = []
    with pytest.raises(MalformedResponseError, match="oops"):
        drive().stream(Request(server.url + PATH, json={}, stream=True), into=got)
    assert got == CHUNKS[:1]


def test_json_answer_to_a_stream_request_is_one_event(server: Any, drive: Any) -> None:
    answer = [{"generated_text": "Hello"}]
    server.script(PATH, CannedResponse(200, answer))
    events = drive().stream(Request(server.url + PATH, json={}, stream=True))
    assert events == [answer]


def test_error_status_before_the_stream_is_retried(server: Any, drive: Any) -> None:
    server.script(
        PATH,
        CannedResponse(503, {"error": "Model m is currently loading", "estimated_time": 0.01}),
        CannedResponse(drop=True),
        CannedResponse(200, sse=[f"data: {_chunk('Hel')}", "", "data: [DONE]", ""]),
    )
    events = drive().stream(Request(server.url + PATH, json={}, stream=True))
    assert events == CHUNKS[:1]
    assert server.counters.total(PATH, 503) == 1
    assert server.counters.total(PATH, -1) == 1
    # The server counts a stream when its handler returns, which may be just after the client
    # has read [DONE].
    assert eventually(lambda: server.counters.total(PATH, 200) == 1)


@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        (
            CannedResponse(401, {"error": "Invalid credentials in Authorization header"}),
            AuthenticationError,
        ),
        (
            CannedResponse(422, {"error": "Input validation error", "error_type": "validation"}),
            InvalidRequestError,
        ),
    ],
    ids=["401", "422"],
)
def test_error_status_before_the_stream_raises(
    server: Any, drive: Any, answer: CannedResponse, cls: type[Exception]
) -> None:
    server.script(PATH, answer, CannedResponse(200, sse=["data: {}", ""]))
    with pytest.raises(cls) as info:
        drive().stream(Request(server.url + PATH, json={}, stream=True))
    assert info.value.status == answer.status  # type: ignore[attr-defined]
    assert len(server.counters.headers) == 1  # not retried


def test_retried_stream_status_gives_up_with_the_last_error(server: Any, drive: Any) -> None:
    server.script(PATH, *[CannedResponse(502, "Bad Gateway")] * 3)
    with pytest.raises(BackendError) as info:
        drive().stream(Request(server.url + PATH, json={}, stream=True))
    assert info.value.status == 502
    assert server.counters.total(PATH, 502) == 3
