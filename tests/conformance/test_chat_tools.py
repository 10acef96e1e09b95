"""Tool calls and structured output from real TGIs: recorded answers through every chat class.

Recordings (see recordings/SOURCES.json):

- TGI 1.4.5 on api-inference (huggingface_hub's ``test_chat_completion_with_tool``, 2024): two
  whole answers, ``tool_choice: "auto"`` and ``"get_current_weather"``. The call's ``id`` is the
  integer ``0``, ``arguments`` an object, ``description: null``, and ``finish_reason`` is
  ``eos_token``.
- TGI 3.1.2 (TGI's integration snapshots ``test_flash_llama_grammar_tools_nostream``,
  ``..._auto_nostream`` and ``..._choice_stream``, 2025): ids ``"0"``, arguments a JSON string,
  ``finish_reason: "stop"`` on whole answers; the stream's 17 chunks all have
  ``finish_reason: null`` and ``data: [DONE]`` ends it (TGI stops once the call's JSON is done).
- response_format: TGI 2.1.1 (huggingface_hub's ``test_chat_completion_with_response_format``,
  ``{"type": "json", "value": schema}``) and TGI 2.4.1 (TGI's snapshot
  ``test_grammar_response_format_llama_json``, ``{"type": "json_object", "value": schema}``).

What hfrag must give: the tool's name and parsed arguments, the id as a string (``"0"`` for the
integer 0: an id, not a missing one), and ``tool_calls`` as the finish reason of an answer that
calls a tool (TGI says ``eos_token`` or ``stop``; OpenAI's word for it is ``tool_calls``).

hfrag's request differs from the recorded ones; why TGI accepts hfrag's form:

- ``tool_choice`` naming a function is sent as ``{"type": "function", "function": {"name"}}``
  where huggingface_hub sent the bare name: TGI 1.4.5's ``deserialize_tool_choice`` takes both
  (``router/src/lib.rs`` at 4c698fa6, 2024-04-23: ``Value::Object`` with ``function.name``);
  ``"auto"`` is sent as recorded.
- the LlamaIndex class sends ``tool_choice: "auto"`` where none was given (its own default),
  which TGI maps like a missing one (the same function: ``"auto"`` and ``Null`` give ``OneOf``).
- response_format: hfrag sends TGI's ``json_object`` form where the 2.1.1 recording sent
  ``json``: TGI accepts both spellings (the 2.4.1 snapshot's test sends ``json_object`` and then
  ``json`` and gets the same answer: TGI's
  ``integration-tests/models/test_grammar_response_format_llama.py``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hfrag.tasks import ChatClient
from tests.conformance.chat_ways import STREAMED, WHOLE, recorded_stream, recorded_whole
from tests.conformance.replay import ReplayServer, cassette, differences, tgi_snapshot

CHAT = "/v1/chat/completions"
TGI_145 = cassette("InferenceClientVCRTest.test_chat_completion_with_tool")
TGI_312_WHOLE = tgi_snapshot("test_flash_llama_grammar_tools_nostream")
TGI_312_AUTO = tgi_snapshot("test_flash_llama_grammar_tools_auto_nostream")
TGI_312_STREAM = tgi_snapshot("test_flash_llama_grammar_tools_choice_stream")
FORMAT_211 = cassette("InferenceClientVCRTest.test_chat_completion_with_response_format")[0]
FORMAT_241 = tgi_snapshot("test_grammar_response_format_llama_json")
LLAMA3_70B = "/models/meta-llama/Meta-Llama-3-70B-Instruct"

#: The tools and messages of TGI's own test (integration-tests/models/test_tools_llama.py).
TGI_TOOLS = TGI_145[0].request_json()["tools"]
BROOKLYN = [
    {
        "role": "system",
        "content": "Youre a helpful assistant! Answer the users question best you can.",
    },
    {"role": "user", "content": "What is the weather like in Brooklyn, New York?"},
]


def _endpoint(url: str, path: str = "") -> dict[str, Any]:
    return {"endpoint_url": url + path}


@pytest.mark.parametrize("case", [0, 1])
@pytest.mark.parametrize("way", sorted(WHOLE))
def test_tgi_1_4_tool_calls_with_integer_ids(replay: ReplayServer, way: str, case: int) -> None:
    exchange = TGI_145[case]
    replay.serve(exchange, at=LLAMA3_70B + CHAT)
    recorded = exchange.request_json()
    got = WHOLE[way](
        _endpoint(replay.url, LLAMA3_70B),
        {"max_new_tokens": 500},
        recorded["messages"],
        recorded["tools"],
        recorded["tool_choice"],
    )
    want = recorded_whole(exchange.answer_json())
    assert got.tool_calls == want.tool_calls
    assert got.tool_calls[0][0] == ("get_n_day_weather_forecast", "get_current_weather")[case]
    assert got.tool_ids == ("0",)  # the integer 0 is an id
    assert got.finish_reason == "tool_calls"
    assert got.usage == want.usage
    (sent,) = replay.received
    diff = differences(recorded, sent.json())
    assert set(diff) <= {"tool_choice", "max_tokens", "stream"}  # see the module docstring
    if recorded["tool_choice"] != "auto":
        name = recorded["tool_choice"]
        assert sent.json()["tool_choice"] == {"type": "function", "function": {"name": name}}


@pytest.mark.parametrize("snapshot", ["nostream", "auto_nostream"])
@pytest.mark.parametrize("way", sorted(WHOLE))
def test_tgi_3_tool_calls(replay: ReplayServer, way: str, snapshot: str) -> None:
    exchange = TGI_312_WHOLE if snapshot == "nostream" else TGI_312_AUTO
    replay.serve(exchange, at=CHAT)
    choice = None if snapshot == "nostream" else "auto"
    got = WHOLE[way](_endpoint(replay.url), {"max_new_tokens": 100}, BROOKLYN, TGI_TOOLS, choice)
    assert got.tool_calls == (
        ("get_current_weather", {"location": "Brooklyn, NY", "format": "fahrenheit"}),
    )
    assert got.tool_ids == ("0",)
    assert got.finish_reason == "tool_calls"
    assert got.usage == recorded_whole(exchange.answer_json()).usage == (501, 29, 530)


@pytest.mark.parametrize("way", sorted(STREAMED))
def test_a_tgi_tool_stream_without_finish_reason_is_complete_at_done(
    replay: ReplayServer, way: str
) -> None:
    replay.serve(TGI_312_STREAM, at=CHAT)
    events = TGI_312_STREAM.events()
    assert events[-1] == "[DONE]"
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:-1])
    got = STREAMED[way](
        _endpoint(replay.url), {"max_new_tokens": 100}, BROOKLYN, TGI_TOOLS, "get_current_weather"
    )
    want = recorded_stream(events)
    assert want.tool_calls == (
        ("get_current_weather", {"location": "Brooklyn, NY", "format": "fahrenheit"}),
    )
    assert got.tool_calls == want.tool_calls
    assert got.tool_ids == ("0",)
    assert got.finish_reason == "tool_calls"


def test_a_tgi_tool_stream_cut_before_done_is_still_an_error(replay: ReplayServer) -> None:
    from hfrag.errors import InferenceError
    from tests.conformance.replay import Exchange

    cut = TGI_312_STREAM.body[: TGI_312_STREAM.body.rindex(b"data: [DONE]")]
    replay.serve(
        Exchange("derived:cut before [DONE]", "POST", CHAT, None, 200, "text/event-stream", cut),
        at=CHAT,
    )
    client = ChatClient(endpoint_url=replay.url)
    with pytest.raises(InferenceError, match="ended before"):
        list(client.stream_chat(BROOKLYN, tools=TGI_TOOLS, tool_choice="get_current_weather"))


SCHEMA_211 = FORMAT_211.request_json()["response_format"]["value"]


@pytest.mark.parametrize("mode", ["chat", "achat"])
def test_response_format_answers_from_tgi(replay: ReplayServer, mode: str) -> None:
    import asyncio

    replay.serve(FORMAT_211, at=LLAMA3_70B + CHAT)
    client = ChatClient(endpoint_url=replay.url + LLAMA3_70B, response_format_style="tgi")
    fmt = {"type": "json_schema", "json_schema": {"name": "Animals", "schema": SCHEMA_211}}
    messages = FORMAT_211.request_json()["messages"]
    out = (
        client.chat(messages, response_format=fmt)
        if mode == "chat"
        else asyncio.run(client.achat(messages, response_format=fmt))
    )
    assert json.loads(out.text) == {
        "activity": "bike ride",
        "animals": ["puppy", "cat", "raccoon"],
        "animals_seen": 3,
        "location": "park",
    }
    assert out.finish_reason == "stop"  # TGI's eos_token
    (sent,) = replay.received
    assert sent.json()["response_format"] == {"type": "json_object", "value": SCHEMA_211}


def test_response_format_answer_of_tgi_2_4(replay: ReplayServer) -> None:
    replay.serve(FORMAT_241, at=CHAT)
    client = ChatClient(endpoint_url=replay.url, response_format_style="tgi")
    schema = {
        "properties": {
            "unit": {"type": "string"},
            "temperature": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["unit", "temperature"],
        "type": "object",
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "Weather", "schema": schema}}
    out = client.chat([{"role": "user", "content": "weather?"}], response_format=fmt)
    assert json.loads(out.text) == {"unit": "fahrenheit", "temperature": [72, 79, 88]}
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (136, 29)
