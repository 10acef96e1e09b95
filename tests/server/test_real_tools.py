"""Tool calls and structured output decided by SmolLM2 itself, under llama.cpp grammars.

SmolLM2-135M chooses poorly; what these tests hold is that what reaches the client is the
model's own decision (the same as the backend's greedy output in process) in the real wire
shapes, that every structured answer parses against its schema, and that a call's arguments
follow its tool's schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import httpx
import jsonschema
import pytest

from hfrag.server import GenerationParams, ModelSpec, ServerConfig
from hfrag.server.chat_format import AnswerReader, parse_constraint, prompt_messages
from hfrag.server.models_real import GENERATE_MODEL
from hfrag.server.testing import serve_deployments
from tests.sockets import free_base_port

CHAT = "/v1/chat/completions"

# Bounded strings and lists (pydantic's max_length): the grammar then ends every answer within
# max_tokens. Unbounded, SmolLM2-135M may repeat a list item until the token limit cuts the
# JSON, as it would on any server.
CITY = {
    "title": "City",
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "country": {"type": "string", "maxLength": 40},
        "population": {"type": "integer"},
        "climate": {"type": "string", "enum": ["cold", "mild", "hot"]},
        "landmarks": {
            "type": "array",
            "items": {"type": "string", "maxLength": 30},
            "maxItems": 3,
        },
    },
    "required": ["name", "country", "population", "climate", "landmarks"],
}
PROMPTS = [
    "Tell me about Paris, the capital of France.",
    "Describe Tokyo.",
    "Oslo is cold in winter. Describe it.",
    "What do you know about Cairo?",
    "Give me facts about Rio de Janeiro.",
    "hello",
]


def tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": list(properties)}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


WEATHER = tool(
    "get_weather",
    "The current weather in a city.",
    {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
)
ADD = tool("add", "Add two numbers.", {"a": {"type": "integer"}, "b": {"type": "number"}})
SCHEMAS = {
    t["function"]["name"]: t["function"]["parameters"]  # type: ignore[index]
    for t in (WEATHER, ADD)
}


@pytest.fixture(scope="module")
def layout(real_specs: list[ModelSpec]) -> Any:
    """hfrag serve's listeners over the real models."""
    with serve_deployments(ServerConfig(models=real_specs)) as srv:
        yield srv


@pytest.fixture(scope="module")
def tgi(layout: Any) -> str:
    return str(layout.urls["generate"])


@pytest.fixture(scope="module")
def generator(real_specs: list[ModelSpec]) -> Any:
    return real_specs[2].backend


def ask(url: str, text: str, **body: Any) -> dict[str, Any]:
    payload = {"messages": [{"role": "user", "content": text}], "max_tokens": 160, **body}
    r = httpx.post(url + CHAT, json=payload, timeout=600)
    assert r.status_code == 200, r.text
    choice: dict[str, Any] = r.json()["choices"][0]
    return choice


def stream(url: str, text: str, **body: Any) -> list[dict[str, Any]]:
    payload = {
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 160,
        "stream": True,
        **body,
    }
    with httpx.stream("POST", url + CHAT, json=payload, timeout=600) as r:
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_start_up_info_and_models_say_the_model_decides(layout, tgi):
    info = httpx.get(f"{tgi}/info").json()
    assert info["model_id"] == GENERATE_MODEL
    assert info["hfrag_tool_calls"] == "grammar"
    listed = httpx.get(f"{layout.urls['router']}/v1/models").json()["data"]
    by_id = {m["id"]: m for m in listed}
    assert by_id[GENERATE_MODEL]["hfrag_tool_calls"] == "grammar"
    assert by_id[GENERATE_MODEL]["hfrag_runtime"] == "llama.cpp"


@pytest.mark.parametrize("form", ["openai", "tgi"])
def test_structured_output_parses_against_its_schema_for_every_prompt(tgi, form):
    if form == "openai":
        fmt: dict[str, Any] = {
            "type": "json_schema",
            "json_schema": {"name": "City", "schema": CITY},
        }
    else:
        fmt = {"type": "json_object", "value": CITY}  # TGI's form
    for prompt in PROMPTS:
        choice = ask(tgi, prompt, response_format=fmt, max_tokens=300)
        assert choice["finish_reason"] == "stop", (prompt, choice)
        jsonschema.validate(json.loads(choice["message"]["content"]), CITY)


def test_a_streamed_structured_answer_is_the_same_json(tgi):
    fmt = {"type": "json_schema", "json_schema": {"name": "City", "schema": CITY}}
    whole = ask(tgi, PROMPTS[0], response_format=fmt, max_tokens=300)["message"]["content"]
    chunks = stream(tgi, PROMPTS[0], response_format=fmt, max_tokens=300)
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    text = "".join(p for p in pieces if p)
    assert text == whole
    assert len([p for p in pieces if p]) > 5  # token by token, not one block
    jsonschema.validate(json.loads(text), CITY)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("What is the weather in Paris?", "get_weather"),
        ("Is it raining in Oslo, in fahrenheit please?", "get_weather"),
        ("Add 2 and 3.5", "add"),
        ("What is the weather in Rome?", "add"),  # forced: a poor fit, still its schema
    ],
)
def test_a_named_tools_arguments_validate_against_its_schema(tgi, text, name):
    forced = {"type": "function", "function": {"name": name}}
    choice = ask(tgi, text, tools=[WEATHER, ADD], tool_choice=forced)
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    [call] = message["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == name
    assert isinstance(call["function"]["arguments"], str)  # OpenAI: a JSON string
    jsonschema.validate(json.loads(call["function"]["arguments"]), SCHEMAS[name])


def test_required_calls_one_of_the_tools_with_its_schema(tgi):
    choice = ask(tgi, "I need help.", tools=[WEATHER, ADD], tool_choice="required")
    [call] = choice["message"]["tool_calls"]
    name = call["function"]["name"]
    jsonschema.validate(json.loads(call["function"]["arguments"]), SCHEMAS[name])


@pytest.mark.parametrize(
    "text", ["What is the weather in Paris?", "Hello! Who are you?", "Add 2 and 3.5"]
)
def test_auto_gives_the_models_own_decision(tgi, generator, text):
    """What the client gets is what the model, decoding greedily under the same grammar in
    process, decides: an answer in words or a call, never a rule's pick."""
    body = {"tools": [WEATHER, ADD], "tool_choice": "auto"}
    messages = [{"role": "user", "content": text}]
    constraint = parse_constraint(body, messages)
    prompt = generator.render_chat(prompt_messages(messages, constraint))
    params = GenerationParams(max_new_tokens=160, constraint=constraint)
    own = "".join(generator.generate_tokens(prompt, params))
    reader = AnswerReader(constraint)
    reader.finish(own)
    choice = ask(tgi, text, **body)
    if reader.calls:
        assert choice["finish_reason"] == "tool_calls"
        got = [
            (c["function"]["name"], c["function"]["arguments"])
            for c in choice["message"]["tool_calls"]
        ]
        assert got == reader.tool_calls
        for name, arguments in got:
            jsonschema.validate(json.loads(arguments), SCHEMAS[name])
    else:
        assert "tool_calls" not in choice["message"]
        assert choice["message"]["content"] == reader.content


def test_a_streamed_call_arrives_as_openai_streams_it(tgi):
    forced = {"type": "function", "function": {"name": "get_weather"}}
    whole = ask(tgi, "Weather in Paris?", tools=[WEATHER], tool_choice=forced)
    chunks = stream(tgi, "Weather in Paris?", tools=[WEATHER], tool_choice=forced)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    head, *rest = calls
    assert set(head) == {"index", "id", "type", "function"}
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    assert head["type"] == "function"
    assert all(set(c) == {"index", "function"} and c["index"] == 0 for c in rest)
    assert len(rest) > 2  # the arguments as the model writes them
    arguments = "".join(c["function"]["arguments"] for c in rest)
    assert arguments == whole["message"]["tool_calls"][0]["function"]["arguments"]
    # No finish_reason chunk: TGI's shape (tests/conformance/test_chat_tools.py).
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks if c["choices"])


def test_an_agent_loop_with_a_real_tool_runs_to_its_end(layout):
    """LlamaIndex's FunctionAgent on SmolLM2: the model calls the tool (its own arguments),
    the tool runs, and the loop ends with an answer. SmolLM2-135M keeps calling the tool once
    it has its result, so the agent's own ``early_stopping_method="generate"`` ends the loop
    by asking for the final answer (no tools) after the first round."""
    import asyncio

    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool

    from hfrag.llama_index import HuggingFaceInferenceLLM

    cities: list[str] = []

    def get_weather(city: str) -> str:
        """The current weather in a city."""
        cities.append(city)
        return f"It is sunny and 21 degrees in {city}."

    llm = HuggingFaceInferenceLLM(
        endpoint_url=layout.urls["generate"], max_new_tokens=48, temperature=0.0, timeout=600
    )
    assert llm.metadata.model_name == GENERATE_MODEL  # the TGI listener's own /info
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(get_weather)],
        llm=llm,
        system_prompt="You answer questions about the weather with the get_weather tool.",
        early_stopping_method="generate",
    )

    async def run() -> Any:
        return await agent.run("What is the weather in Paris?", max_iterations=2)

    result = asyncio.run(run())
    assert cities, "the model never called the tool"
    assert all(isinstance(c, str) and c for c in cities)
    assert result.tool_calls[0].tool_name == "get_weather"
    assert (
        result.tool_calls[0].tool_output.raw_output == f"It is sunny and 21 degrees in {cities[0]}."
    )
    assert str(result).strip()


SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    import httpx
    from hfrag.cli import main

    port = int(sys.argv[1])
    threading.Thread(
        target=main, args=(["serve", "--models", sys.argv[2], "--port", str(port)],), daemon=True
    ).start()
    url = f"http://127.0.0.1:{port + 2}"
    deadline = time.monotonic() + 600  # the models load first, slowly on a busy machine
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}
    body = {"messages": [{"role": "user", "content": "x is 3"}], "tools": [tool],
            "tool_choice": "required", "max_tokens": 20}
    r = httpx.post(url + "/v1/chat/completions", json=body, timeout=600)
    loaded = [m for m in ("hfrag.server.tools", "hfrag.server.hashing") if m in sys.modules]
    print(json.dumps({"status": r.status_code, "loaded": loaded,
                      "grammars": "hfrag.server.grammars" in sys.modules}))
    """
)


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        ("real", {"status": 200, "loaded": [], "grammars": True}),
        # the control: the hashing server does load both, so the check can fail
        ("hash", {"status": 200, "loaded": ["hfrag.server.tools", "hfrag.server.hashing"],
                  "grammars": False}),
    ],
)  # fmt: skip
def test_a_real_server_never_imports_the_rule_module(real_specs, models, expected):
    port = free_base_port()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(port), models],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ},
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == expected


def test_langchain_structured_output_and_tools_are_the_models(layout):
    """The first pipeline a new user writes: with_structured_output and bind_tools on SmolLM2,
    through the TGI listener. The fields come from the model, not the prompt copied in."""
    from pydantic import BaseModel, Field

    from hfrag.langchain import ChatHuggingFaceInference

    class City(BaseModel):
        name: str = Field(max_length=40)
        country: str = Field(max_length=40)

    prompt = "Tell me about Paris, the capital of France."
    chat = ChatHuggingFaceInference(
        endpoint_url=layout.urls["generate"], max_new_tokens=120, temperature=0.0, timeout=600
    )
    city = chat.with_structured_output(City).invoke(prompt)
    assert isinstance(city, City)
    assert prompt not in (city.name, city.country)

    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return "sunny"

    message = chat.bind_tools([get_weather]).invoke("What is the weather in Paris?")
    for call in message.tool_calls:  # the model may also answer in words: its decision
        assert call["name"] == "get_weather"
        assert isinstance(call["args"]["city"], str)
    assert message.tool_calls or message.content
