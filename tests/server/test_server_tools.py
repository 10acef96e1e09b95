"""The generator's tool-call and structured-output rule (``hfrag.server.tools``), over HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from hfrag.server.tools import build_object, names_tool

CHAT = "/v1/chat/completions"


def tool(
    name: str, properties: dict[str, Any], required: list[str] | None = None
) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": required or []}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


WEATHER = tool("get_weather", {"location": {"type": "string"}}, ["location"])
ADD = tool("add_numbers", {"a": {"type": "integer"}, "b": {"type": "number"}}, ["a", "b"])


def ask(client: httpx.Client, text: str, **body: Any) -> dict[str, Any]:
    r = client.post(CHAT, json={"messages": [{"role": "user", "content": text}], **body})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()["choices"][0]
    return answer


@pytest.mark.parametrize(
    ("text", "name", "named"),
    [
        ("What is the weather in Rome?", "get_weather", True),  # the verb prefix is dropped
        ("call magic_function(3)", "magic_function", True),
        ("a magic trick", "magic_function", False),
        ("population of Oslo", "GetPopulation", True),  # camelCase
        ("hello", "get_weather", False),
    ],
)
def test_a_message_names_a_tool(text: str, name: str, named: bool) -> None:
    assert names_tool(text, name) is named


def test_auto_calls_the_named_tools_in_tools_order(client: httpx.Client) -> None:
    answer = ask(client, "add the numbers 2 and 3.5, then the weather", tools=[WEATHER, ADD])
    assert answer["finish_reason"] == "tool_calls"
    assert answer["message"]["content"] is None
    calls = answer["message"]["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"location": "add the numbers 2 and 3.5, then the weather"}),
        ("add_numbers", {"a": 2, "b": 3.5}),
    ]
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)


def test_tool_choice_rules(client: httpx.Client) -> None:
    assert "tool_calls" not in ask(client, "hello", tools=[WEATHER, ADD])["message"]
    required = ask(client, "hello", tools=[WEATHER, ADD], tool_choice="required")
    assert [c["function"]["name"] for c in required["message"]["tool_calls"]] == ["get_weather"]
    forced = {"type": "function", "function": {"name": "add_numbers"}}
    named = ask(client, "the weather", tools=[WEATHER, ADD], tool_choice=forced)
    assert [c["function"]["name"] for c in named["message"]["tool_calls"]] == ["add_numbers"]
    assert json.loads(named["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "a": 0,
        "b": 0.0,
    }
    none = ask(client, "the weather", tools=[WEATHER], tool_choice="none")
    assert "tool_calls" not in none["message"]


def test_a_tool_result_gets_a_text_answer(client: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "the weather in Rome"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "Sunny."},
    ]
    r = client.post(CHAT, json={"messages": messages, "tools": [WEATHER]})
    assert r.json()["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "body",
    [
        {"tools": "get_weather"},
        {"tools": [{"type": "function"}]},
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        {"tools": [WEATHER], "tool_choice": "sometimes"},
        {"response_format": {"type": "xml"}},
        {"response_format": {"type": "json_schema", "json_schema": {}}},
    ],
)
def test_bad_tools_and_formats_are_422(client: httpx.Client, body: dict[str, Any]) -> None:
    r = client.post(CHAT, json={"messages": [{"role": "user", "content": "x"}], **body})
    assert r.status_code == 422
    assert r.json()["error_type"] == "validation"


def test_streamed_tool_calls_split_arguments(client: httpx.Client) -> None:
    body = {
        "messages": [{"role": "user", "content": "add the numbers 1 and 2"}],
        "tools": [ADD],
        "stream": True,
    }
    with client.stream("POST", CHAT, json=body) as r:
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    head, *pieces = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert head["function"] == {"name": "add_numbers", "arguments": ""}
    assert len(pieces) == 3
    assert json.loads("".join(p["function"]["arguments"] for p in pieces)) == {"a": 1, "b": 2.0}
    # As TGI streams a tool call: no chunk carries a finish_reason; [DONE] ends it
    # (tests/conformance/test_chat_tools.py replays TGI's recorded stream).
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks if c["choices"])


SCHEMA = {
    "$defs": {
        "Place": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": ["integer", "null"]}},
            "required": ["city"],
        }
    },
    "type": "object",
    "properties": {
        "place": {"$ref": "#/$defs/Place"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "default": 3},
        "alerts": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": "string"},
        "mood": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["place", "unit", "days", "alerts", "tags"],
}


def test_build_object_follows_the_schema() -> None:
    assert build_object(
        SCHEMA, "weather for Oslo in fahrenheit, alerts: yes, note: bring a hat"
    ) == {
        "place": {"city": "weather for Oslo in fahrenheit, alerts: yes, note: bring a hat"},
        "unit": "fahrenheit",
        "days": 3,
        "alerts": True,
        "tags": [],
        "note": "bring a hat",
    }
    assert build_object(SCHEMA, "city = 'Bergen', days: 5")["place"] == {"city": "Bergen"}
    assert build_object(SCHEMA, "days: 5")["days"] == 5
    assert build_object({"type": "string"}, "x") == {}  # not an object schema


@pytest.mark.parametrize(
    "fmt",
    [
        {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}},
        {"type": "json_object", "value": SCHEMA},  # TGI's form
        {"type": "json", "value": SCHEMA},  # TGI's older name
    ],
)
def test_response_format_answers_with_the_built_object(client: httpx.Client, fmt: Any) -> None:
    text = "city: Oslo, unit: celsius"
    answer = ask(client, text, response_format=fmt)
    assert json.loads(answer["message"]["content"]) == build_object(SCHEMA, text)


def test_json_object_without_a_schema_wraps_the_answer(client: httpx.Client) -> None:
    answer = ask(
        client, "Paris is in France. Where is Paris?", response_format={"type": "json_object"}
    )
    assert json.loads(answer["message"]["content"]) == {"answer": "Paris is in France."}
