"""The LLM task clients against the local server's router, TGI and chat layouts.

Every behaviour is checked in the four call modes (sync, async, stream, async stream) where it
applies; a stream is joined with ``collect`` and must equal the non-streamed answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from hfrag.errors import (
    BackendError,
    ConfigurationError,
    InferenceConnectionError,
    InputError,
    MalformedResponseError,
    NotFoundError,
    RedirectError,
)
from hfrag.server import FaultConfig
from hfrag.server.testing import CannedResponse, ServerHandle
from hfrag.tasks import (
    ChatClient,
    Finish,
    GenerationOptions,
    GenerationOutput,
    TextDelta,
    TextGenerationClient,
    ToolCallDelta,
    Usage,
    collect,
)
from tests.llm import ANSWER, LLAMA, PROMPT, llm_config, llm_server, srv
from tests.sockets import open_connections
from tests.transport.conftest import eventually

__all__ = ["llm_server", "srv"]  # fixtures

CHAT = "/v1/chat/completions"
MODES = ["sync", "async", "stream", "astream"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": None,
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
MAGIC = {
    "type": "function",
    "function": {
        "name": "magic_function",
        "parameters": {
            "type": "object",
            "properties": {"input": {"type": "integer"}},
            "required": ["input"],
        },
    },
}


def layout_kwargs(layout: str, url: str) -> dict[str, Any]:
    """Client arguments: router (model id), TGI endpoint, chat-only endpoint (``/v1``)."""
    if layout == "router":
        return {"model": LLAMA, "router_url": url}
    if layout == "tgi":
        return {"endpoint_url": url}
    return {"endpoint_url": url + "/v1"}


def fast(**kwargs: Any) -> dict[str, Any]:
    return {"max_retries": 2, "max_retry_wait": 0.05, "timeout": 10.0, **kwargs}


def generate(client: TextGenerationClient, mode: str, prompt: str, **kw: Any) -> GenerationOutput:
    if mode == "sync":
        return client.generate(prompt, **kw)
    if mode == "async":
        return asyncio.run(client.agenerate(prompt, **kw))
    if mode == "stream":
        return collect(client.stream(prompt, **kw))

    async def gather() -> list[Any]:
        return [c async for c in client.astream(prompt, **kw)]

    return collect(asyncio.run(gather()))


def chat(client: ChatClient, mode: str, messages: Any, **kw: Any) -> GenerationOutput:
    if mode == "sync":
        return client.chat(messages, **kw)
    if mode == "async":
        return asyncio.run(client.achat(messages, **kw))
    if mode == "stream":
        return collect(client.stream_chat(messages, **kw))

    async def gather() -> list[Any]:
        return [c async for c in client.astream_chat(messages, **kw)]

    return collect(asyncio.run(gather()))


# -- prompt in, text out ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("layout", "wire", "paths"),
    [
        ("router", "chat", {CHAT}),
        ("tgi", "text-generation", {"/generate", "/generate_stream"}),
        ("chat", "chat", {CHAT}),
    ],
)
def test_generate_on_every_layout(
    srv: ServerHandle, layout: str, wire: str, paths: set[str], mode: str
) -> None:
    client = TextGenerationClient(**layout_kwargs(layout, srv.url), **fast())
    out = generate(client, mode, PROMPT)
    assert out.text == ANSWER
    assert out.finish_reason == "stop"
    assert out.usage is not None
    assert out.usage.completion_tokens
    assert client.wire() == wire
    # A stream is counted when the server's handler returns, just after the client's last read.
    assert eventually(lambda: srv.counters.total() > srv.counters.total("/info"))
    posted = {path for (path, _), n in srv.counters.requests.items() if path != "/info"}
    assert posted & paths == posted
    body = srv.counters.bodies[-1]
    if wire == "chat":
        assert body["messages"] == [{"role": "user", "content": PROMPT}]
        assert body["model"] == (LLAMA if layout == "router" else "tgi")
    else:
        assert body["inputs"] == PROMPT
        assert body["parameters"]["details"] is True


@pytest.mark.parametrize("mode", MODES)
def test_text_generation_task_on_the_router(srv: ServerHandle, mode: str) -> None:
    client = TextGenerationClient(model=LLAMA, router_url=srv.url, task="text-generation")
    assert generate(client, mode, PROMPT).text == ANSWER
    assert eventually(lambda: srv.counters.total(f"/hf-inference/models/{LLAMA}", 200) == 1)


def test_auto_on_an_endpoint_without_tgi_info_uses_chat(make_server: Any) -> None:
    server = make_server()  # the default server: its /info is TEI's (an embedding primary)
    client = TextGenerationClient(endpoint_url=server.url)
    assert client.generate(PROMPT).text == ANSWER
    assert client.wire() == "chat"
    assert eventually(lambda: server.counters.total(CHAT, 200) == 1)


def test_auto_falls_back_to_text_generation_when_there_is_no_chat_route(srv: ServerHandle) -> None:
    # An endpoint URL that serves text-generation at the URL itself and has no chat route.
    client = TextGenerationClient(endpoint_url=f"{srv.url}/hf-inference/models/{LLAMA}")
    assert client.generate(PROMPT).text == ANSWER
    assert client.wire() == "text-generation"
    assert collect(client.stream(PROMPT)).text == ANSWER  # remembered: no second chat attempt
    assert srv.counters.total(f"/hf-inference/models/{LLAMA}/v1/chat/completions") == 1


@pytest.mark.parametrize("mode", MODES)
def test_an_error_names_both_forms_only_when_neither_works(srv: ServerHandle, mode: str) -> None:
    client = TextGenerationClient(endpoint_url=srv.url + "/nothing", **fast())
    with pytest.raises(NotFoundError) as info:
        generate(client, mode, PROMPT)
    assert "neither chat completions" in str(info.value)
    assert "text-generation" in str(info.value)


def test_text_generation_error_on_the_router_suggests_chat(srv: ServerHandle) -> None:
    client = TextGenerationClient(model="org/unknown", router_url=srv.url, task="text-generation")
    with pytest.raises(NotFoundError, match="task='chat'"):
        client.generate(PROMPT)
    chat_client = TextGenerationClient(model="org/unknown", router_url=srv.url)
    with pytest.raises(NotFoundError) as info:
        chat_client.generate(PROMPT)
    assert "task=" not in str(info.value)  # one form was tried and it said why: no hint


# -- chat -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["router", "tgi", "chat"])
def test_chat_multi_turn_with_system_prompt_and_parts(
    srv: ServerHandle, layout: str, mode: str
) -> None:
    client = ChatClient(**layout_kwargs(layout, srv.url), **fast())
    messages = [
        {"role": "system", "content": "You answer from the context."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi, ask away."},
        {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
    ]
    out = chat(client, mode, messages)
    assert out.text == ANSWER
    assert out.finish_reason == "stop"
    assert out.model == LLAMA
    assert out.usage == Usage(out.usage.prompt_tokens, 6, out.usage.prompt_tokens + 6)  # type: ignore[union-attr]
    body = srv.counters.bodies[-1]
    assert body["messages"] == messages  # parts, roles and order sent as given
    if mode in ("stream", "astream"):
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}


def test_stream_equals_whole_answer_and_chunks_are_typed(srv: ServerHandle) -> None:
    client = ChatClient(endpoint_url=srv.url)
    messages = [{"role": "user", "content": PROMPT}]
    chunks = list(client.stream_chat(messages))
    assert [type(c) for c in chunks[-2:]] == [Finish, Usage]
    deltas = [c for c in chunks if isinstance(c, TextDelta)]
    assert len(deltas) == 6  # one per token: not buffered into one
    assert collect(chunks).text == client.chat(messages).text == ANSWER


def test_provider_and_routing_policy_are_sent_with_the_model(srv: ServerHandle) -> None:
    for provider in ("together", "fastest", "cheapest"):
        client = ChatClient(model=LLAMA, router_url=srv.url, provider=provider)
        assert client.chat([{"role": "user", "content": PROMPT}]).text == ANSWER
        assert srv.counters.bodies[-1]["model"] == f"{LLAMA}:{provider}"
    llm = TextGenerationClient(model=LLAMA, router_url=srv.url, provider="fastest")
    llm.generate(PROMPT)
    assert srv.counters.bodies[-1]["model"] == f"{LLAMA}:fastest"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint_url": "http://127.0.0.1:9", "provider": "together"},
        {"model": LLAMA, "provider": "bad provider"},
        {"model": LLAMA, "provider": ""},
    ],
)
def test_provider_is_checked_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ChatClient(**kwargs)


def test_text_generation_task_refuses_other_providers() -> None:
    with pytest.raises(ConfigurationError, match="hf-inference"):
        TextGenerationClient(model=LLAMA, provider="together", task="text-generation")
    with pytest.raises(ConfigurationError, match="task"):
        TextGenerationClient(model=LLAMA, task="conversational")  # type: ignore[arg-type]


# -- options ----------------------------------------------------------------------------------

ALL = GenerationOptions(
    max_new_tokens=20,
    temperature=0.5,
    top_p=0.9,
    top_k=40,
    repetition_penalty=1.1,
    frequency_penalty=0.2,
    stop=("zzz",),
    seed=7,
    do_sample=True,
    typical_p=0.95,
    model_kwargs={"best_of": 1},
)


def test_options_map_to_text_generation_parameters(srv: ServerHandle) -> None:
    options = GenerationOptions(
        **{**ALL.__dict__, "truncate": 100, "watermark": False, "model_kwargs": {"best_of": 1}}
    )
    client = TextGenerationClient(endpoint_url=srv.url, options=options)
    assert client.generate(PROMPT).text == ANSWER
    assert srv.counters.bodies[-1]["parameters"] == {
        "max_new_tokens": 20,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "repetition_penalty": 1.1,
        "frequency_penalty": 0.2,
        "stop": ["zzz"],
        "seed": 7,
        "do_sample": True,
        "return_full_text": False,
        "truncate": 100,
        "typical_p": 0.95,
        "watermark": False,
        "details": True,
        "best_of": 1,
    }


def test_options_map_to_the_chat_body(srv: ServerHandle) -> None:
    options = GenerationOptions(**{**ALL.__dict__, "presence_penalty": 0.3})
    client = ChatClient(model=LLAMA, router_url=srv.url, options=options)
    assert client.chat([{"role": "user", "content": PROMPT}]).text == ANSWER
    assert srv.counters.bodies[-1] == {
        "model": LLAMA,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 20,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "repetition_penalty": 1.1,
        "frequency_penalty": 0.2,
        "presence_penalty": 0.3,
        "typical_p": 0.95,
        "stop": ["zzz"],
        "seed": 7,
        "best_of": 1,
    }


def test_unset_options_are_not_sent_and_greedy_is_spelled_per_form(srv: ServerHandle) -> None:
    greedy = GenerationOptions(temperature=0.0, top_p=1.0)
    TextGenerationClient(endpoint_url=srv.url, options=greedy).generate(PROMPT)
    assert srv.counters.bodies[-1]["parameters"] == {
        "do_sample": False,
        "return_full_text": False,
        "details": True,
    }  # TGI rejects temperature 0 and top_p 1.0: greedy is do_sample false
    ChatClient(endpoint_url=srv.url, options=greedy).chat([{"role": "user", "content": PROMPT}])
    assert srv.counters.bodies[-1] == {
        "model": "tgi",
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0.0,
        "top_p": 1.0,
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"max_new_tokens": 0},
        {"max_new_tokens": 1.5},
        {"max_new_tokens": True},
        {"temperature": -0.1},
        {"temperature": float("nan")},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"top_k": 0},
        {"repetition_penalty": 0},
        {"frequency_penalty": 3},
        {"presence_penalty": -2.5},
        {"stop": [""]},
        {"stop": [1]},
        {"seed": -1},
        {"truncate": 0},
        {"typical_p": 1.0},
        {"do_sample": "yes"},
        {"model_kwargs": {"inputs": "x"}},
        {"model_kwargs": {"stream": True}},
    ],
)
def test_bad_options_fail_at_construction(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        GenerationOptions(**bad)


def test_options_one_form_lacks_fail_at_call_naming_the_other(srv: ServerHandle) -> None:
    tgi = TextGenerationClient(
        endpoint_url=srv.url, options=GenerationOptions(presence_penalty=0.5)
    )
    with pytest.raises(ConfigurationError, match="task='chat'"):
        tgi.generate(PROMPT)
    chat_client = ChatClient(endpoint_url=srv.url, options=GenerationOptions(watermark=True))
    with pytest.raises(ConfigurationError, match="text-generation"):
        chat_client.chat([{"role": "user", "content": PROMPT}])
    assert srv.counters.total() == 1  # the TGI client read /info; nothing was generated


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["router", "tgi", "chat"])
def test_stop_sequences_are_honoured_and_trimmed(srv: ServerHandle, layout: str, mode: str) -> None:
    client = TextGenerationClient(**layout_kwargs(layout, srv.url))
    out = generate(client, mode, PROMPT, stop=["capital"])
    assert out.text == "Paris is the "
    assert out.finish_reason == "stop"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["router", "tgi"])
def test_return_full_text(srv: ServerHandle, layout: str, mode: str) -> None:
    client = TextGenerationClient(
        **layout_kwargs(layout, srv.url), options=GenerationOptions(return_full_text=True)
    )
    assert generate(client, mode, PROMPT).text == PROMPT + ANSWER


def test_inputs_are_checked_before_anything_is_sent(srv: ServerHandle) -> None:
    llm = TextGenerationClient(endpoint_url=srv.url)
    chat_client = ChatClient(endpoint_url=srv.url)
    with pytest.raises(InputError):
        llm.generate("   ")
    with pytest.raises(TypeError):
        llm.generate(["a list"])  # type: ignore[arg-type]
    with pytest.raises(InputError):
        chat_client.chat([])
    with pytest.raises(InputError, match="message 1"):
        chat_client.chat([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}])
    with pytest.raises(InputError, match="no content"):
        chat_client.stream_chat([{"role": "user"}])
    with pytest.raises(TypeError):
        chat_client.chat("hello")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not among the tools"):
        chat_client.chat([{"role": "user", "content": "a"}], tools=[WEATHER], tool_choice="nope")
    assert srv.counters.total() == 0


async def test_sync_calls_work_inside_a_running_loop(srv: ServerHandle) -> None:
    asyncio.get_running_loop()  # as in Jupyter
    client = TextGenerationClient(endpoint_url=srv.url)
    assert client.generate(PROMPT).text == ANSWER
    assert collect(client.stream(PROMPT)).text == ANSWER
    assert (await client.agenerate(PROMPT)).text == ANSWER


# -- tools and structured output --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["router", "tgi", "chat"])
def test_several_tool_calls_in_one_answer(srv: ServerHandle, layout: str, mode: str) -> None:
    client = ChatClient(**layout_kwargs(layout, srv.url))
    text = "What is the weather in Paris in fahrenheit? Also magic_function(3)."
    out = chat(client, mode, [{"role": "user", "content": text}], tools=[WEATHER, MAGIC])
    assert out.finish_reason == "tool_calls"
    assert out.text == ""
    assert [(c.name, c.arguments) for c in out.tool_calls] == [
        ("get_weather", {"location": text, "unit": "fahrenheit"}),
        ("magic_function", {"input": 3}),
    ]
    assert all(c.id for c in out.tool_calls)
    assert len({c.id for c in out.tool_calls}) == 2


def test_streamed_tool_call_deltas_arrive_in_pieces(srv: ServerHandle) -> None:
    client = ChatClient(endpoint_url=srv.url)
    messages = [{"role": "user", "content": "magic_function(3) please"}]
    chunks = list(client.stream_chat(messages, tools=[MAGIC], tool_choice="magic_function"))
    deltas = [c for c in chunks if isinstance(c, ToolCallDelta)]
    assert len(deltas) == 4  # a head with id and name, then the arguments in three pieces
    assert deltas[0].name == "magic_function"
    assert deltas[0].id
    assert all(d.name is None and d.index == 0 for d in deltas[1:])
    assert collect(chunks).tool_calls[0].arguments == {"input": 3}


@pytest.mark.parametrize("mode", MODES)
def test_tool_choice_forms(srv: ServerHandle, mode: str) -> None:
    client = ChatClient(endpoint_url=srv.url)
    hello = [{"role": "user", "content": "Hello!"}]
    auto = chat(client, mode, hello, tools=[WEATHER, MAGIC])
    assert auto.tool_calls == ()
    assert auto.text
    required = chat(client, mode, hello, tools=[WEATHER, MAGIC], tool_choice="required")
    assert [c.name for c in required.tool_calls] == ["get_weather"]  # the first tool
    named = chat(client, mode, hello, tools=[WEATHER, MAGIC], tool_choice="magic_function")
    assert [(c.name, c.arguments) for c in named.tool_calls] == [("magic_function", {"input": 0})]
    assert srv.counters.bodies[-1]["tool_choice"] == {
        "type": "function",
        "function": {"name": "magic_function"},
    }
    none = chat(client, mode, [{"role": "user", "content": "magic_function(2)"}],
                tools=[MAGIC], tool_choice="none")  # fmt: skip
    assert none.tool_calls == ()


def test_a_tool_result_is_answered_in_words(srv: ServerHandle) -> None:
    client = ChatClient(endpoint_url=srv.url)
    first = client.chat([{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER])
    call = first.tool_calls[0]
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.raw_arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny in Paris today."},
    ]
    answer = client.chat(history, tools=[WEATHER])
    assert answer.tool_calls == ()
    assert answer.finish_reason == "stop"
    assert srv.counters.bodies[-1]["messages"] == history


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer"},
        "capital": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
    },
    "required": ["city", "population"],
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("layout", "sent"),
    [
        ("router", {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}),
        ("tgi", {"type": "json_object", "value": SCHEMA}),
    ],
)
def test_response_format_in_the_form_each_server_takes(
    srv: ServerHandle, layout: str, sent: dict[str, Any], mode: str
) -> None:
    client = ChatClient(**layout_kwargs(layout, srv.url))
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
    text = "city: Paris, population 2100000"
    out = chat(client, mode, [{"role": "user", "content": text}], response_format=fmt)
    assert json.loads(out.text) == {"city": "Paris", "population": 2100000}
    assert srv.counters.bodies[-1]["response_format"] == sent


def test_response_format_style_can_be_forced(srv: ServerHandle) -> None:
    client = ChatClient(model=LLAMA, router_url=srv.url, response_format_style="tgi")
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
    client.chat([{"role": "user", "content": "city: Rome"}], response_format=fmt)
    assert srv.counters.bodies[-1]["response_format"] == {"type": "json_object", "value": SCHEMA}
    with pytest.raises(ConfigurationError):
        ChatClient(model=LLAMA, response_format_style="xml")  # type: ignore[arg-type]


# -- hostile servers --------------------------------------------------------------------------


def _sse(*payloads: Any, done: bool = True) -> list[str]:
    lines = []
    for payload in payloads:
        lines += [f"data: {json.dumps(payload)}", ""]
    return lines + (["data: [DONE]", ""] if done else [])


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_tool_calls_as_tgi_sends_them(srv: ServerHandle) -> None:
    answer = {
        "model": "tgi",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "tool_calls": {  # one call as an object, arguments as an object
                        "id": "0",
                        "type": "function",
                        "function": {"description": None, "name": "f", "arguments": {"a": 1}},
                    },
                },
                "finish_reason": "eos_token",
            }
        ],
    }
    srv.script(CHAT, CannedResponse(200, answer))
    out = ChatClient(endpoint_url=srv.url).chat([{"role": "user", "content": "x"}])
    assert [(c.id, c.name, c.arguments) for c in out.tool_calls] == [("0", "f", {"a": 1})]
    # TGI ends a tool call with eos_token (1.4) or stop (3.x): in OpenAI's words, tool_calls
    # (tests/conformance/test_chat_tools.py replays the recorded answers).
    assert out.finish_reason == "tool_calls"
    assert out.raw_finish_reason == "eos_token"


def test_streamed_tool_calls_without_index_and_bad_arguments(srv: ServerHandle) -> None:
    events = _sse(
        _delta({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"x": '}}]}),
        _delta({"tool_calls": [{"function": {"arguments": "1}"}}]}),
        _delta({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "not json"}}]}),
        _delta({}, "tool_calls"),
    )
    srv.script(CHAT, CannedResponse(200, sse=events))
    out = collect(ChatClient(endpoint_url=srv.url).stream_chat([{"role": "user", "content": "x"}]))
    assert [(c.id, c.name, c.arguments, c.raw_arguments) for c in out.tool_calls] == [
        ("a", "f", {"x": 1}, '{"x": 1}'),
        ("b", "g", None, "not json"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"choices": []},
        {"choices": [{"message": "hi"}]},
        [1, 2],
        {
            "choices": [
                {"message": {"content": "x", "tool_calls": [{"function": {"arguments": "{}"}}]}}
            ]
        },
    ],
)
def test_malformed_chat_answers_raise_malformed(srv: ServerHandle, body: Any) -> None:
    srv.script(CHAT, CannedResponse(200, body))
    with pytest.raises(MalformedResponseError):
        ChatClient(endpoint_url=srv.url).chat([{"role": "user", "content": "x"}])


@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize("layout", ["tgi", "chat"])
def test_an_error_event_in_a_200_stream_raises_and_is_not_retried(
    srv: ServerHandle, layout: str, mode: str
) -> None:
    srv.set_faults(FaultConfig(p_stream_error=1.0))
    client = TextGenerationClient(**layout_kwargs(layout, srv.url), **fast())
    seen: list[Any] = []

    async def agather() -> None:
        async for chunk in client.astream(PROMPT):
            seen.append(chunk)

    def gather() -> None:
        if mode == "stream":
            seen.extend(client.stream(PROMPT))
        else:
            asyncio.run(agather())

    with pytest.raises(BackendError, match="injected fault"):
        gather()
    assert seen  # tokens had been yielded before the error event
    assert eventually(lambda: srv.counters.total() > srv.counters.total("/info"))
    posted = [n for (path, _), n in srv.counters.requests.items() if path != "/info"]
    assert posted == [1]  # never resent once tokens flowed


@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize("layout", ["tgi", "chat"])
def test_a_stream_cut_midway_raises(srv: ServerHandle, layout: str, mode: str) -> None:
    srv.set_faults(FaultConfig(p_truncate=1.0))
    client = TextGenerationClient(**layout_kwargs(layout, srv.url), **fast())
    with pytest.raises(InferenceConnectionError):
        generate(client, mode, PROMPT)
    assert eventually(lambda: srv.counters.total() > srv.counters.total("/info"))
    posted = [n for (path, _), n in srv.counters.requests.items() if path != "/info"]
    assert posted == [1]


@pytest.mark.parametrize(
    ("route", "events"),
    [
        (CHAT, _sse(_delta({"content": "Paris"}), done=False)),
        (CHAT, _sse(_delta({"content": "Paris"}), done=True)),  # [DONE] but no finish_reason
        ("/generate_stream", _sse({"index": 1, "token": {"id": 1, "text": "Paris"}}, done=False)),
    ],
)
def test_a_stream_that_ends_early_never_returns_a_short_answer(
    srv: ServerHandle, route: str, events: list[str]
) -> None:
    srv.script(route, CannedResponse(200, sse=events))
    client = TextGenerationClient(endpoint_url=srv.url + ("/v1" if route == CHAT else ""))
    with pytest.raises(InferenceConnectionError, match="before the answer was complete"):
        list(client.stream(PROMPT))


def test_failures_before_the_first_event_are_retried(srv: ServerHandle) -> None:
    srv.script(CHAT, CannedResponse(503, {"error": "loading", "estimated_time": 0.01}))
    client = ChatClient(endpoint_url=srv.url, **fast())
    assert collect(client.stream_chat([{"role": "user", "content": PROMPT}])).text == ANSWER
    assert eventually(lambda: srv.counters.total(CHAT, 200) == 1)
    assert srv.counters.total(CHAT, 503) == 1


@pytest.mark.parametrize("layout", ["tgi", "chat"])
def test_an_abandoned_stream_closes_its_connection(make_server: Any, layout: str) -> None:
    srv = make_server(llm_config(primary=LLAMA))  # its own port: no other test's connections
    srv.set_faults(FaultConfig(token_delay=0.05))
    client = TextGenerationClient(**layout_kwargs(layout, srv.url))
    client.wire()  # the /info read happens first, on the async pool
    client.close()
    stream = client.stream(PROMPT)
    assert isinstance(next(stream), TextDelta)
    assert open_connections(srv.port) == 1
    stream.close()
    assert eventually(lambda: open_connections(srv.port) == 0)

    async def abandon() -> None:
        astream = client.astream(PROMPT)
        assert isinstance(await astream.__anext__(), TextDelta)
        assert open_connections(srv.port) == 1
        await astream.aclose()  # type: ignore[attr-defined]

    asyncio.run(abandon())
    assert eventually(lambda: open_connections(srv.port) == 0)


@pytest.mark.parametrize("layout", ["tgi", "chat"])
def test_tokens_arrive_while_the_server_is_still_generating(srv: ServerHandle, layout: str) -> None:
    srv.set_faults(FaultConfig(token_delay=0.4))  # seconds of generating in all
    client = TextGenerationClient(**layout_kwargs(layout, srv.url))
    path = "/generate_stream" if layout == "tgi" else CHAT
    stream = client.stream(PROMPT)
    first = next(stream)
    assert isinstance(first, TextDelta)
    assert first.text == "Paris"
    # The server's handler is still sending the later tokens: it has answered nothing yet.
    assert srv.counters.total(path) == 0
    rest = list(stream)
    assert collect([first, *rest]).text == ANSWER
    assert eventually(lambda: srv.counters.total(path, 200) == 1)


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_a_validation_error_event_raises_invalid_request(srv: ServerHandle, mode: str) -> None:
    from hfrag.errors import InvalidRequestError

    # TGI answers a streaming request it rejects with an error event in a 200 stream.
    client = TextGenerationClient(
        endpoint_url=srv.url + "/generate", options=GenerationOptions(max_new_tokens=10**6)
    )
    with pytest.raises(InvalidRequestError, match="max_new_tokens"):
        generate(client, mode, PROMPT)
    assert srv.counters.total("/info") == 0  # a /generate URL needs no probe


def test_endpoint_info_for_metadata(srv: ServerHandle) -> None:
    info = TextGenerationClient(endpoint_url=srv.url).endpoint_info()
    assert info["model_id"] == LLAMA
    assert info["max_total_tokens"] == 8192
    assert (
        asyncio.run(ChatClient(endpoint_url=srv.url + "/v1").aendpoint_info())["model_id"] == LLAMA
    )
    assert ChatClient(model=LLAMA, router_url=srv.url).endpoint_info() == {}


def test_a_server_stalling_midstream_times_out_and_is_not_retried(srv: ServerHandle) -> None:
    from hfrag.errors import InferenceTimeoutError

    srv.set_faults(FaultConfig(token_delay=1.0))
    client = ChatClient(endpoint_url=srv.url, **fast(timeout=0.3))
    seen: list[Any] = []
    with pytest.raises(InferenceTimeoutError):
        seen.extend(client.stream_chat([{"role": "user", "content": PROMPT}]))
    assert len(srv.counters.bodies) == 1  # one request: a stream is never resent


def test_nan_and_odd_counts_in_an_answer(srv: ServerHandle) -> None:
    body = (
        b'{"model": "m", "choices": [{"message": {"content": "a"}, "finish_reason": "stop"},'
        b' {"message": {"content": "b"}}], "usage": {"prompt_tokens": NaN,'
        b' "completion_tokens": -1, "total_tokens": 3}}'
    )
    srv.script(CHAT, CannedResponse(200, body, content_type="application/json"))
    out = ChatClient(endpoint_url=srv.url).chat([{"role": "user", "content": "x"}])
    assert out.text == "a"  # the first choice
    assert out.usage == Usage(None, None, 3)  # NaN and negative counts are dropped


def test_a_redirected_stream_is_an_error_naming_where(srv: ServerHandle) -> None:
    # hfrag follows no redirect (docs/PROTOCOL.md section 7): the error says where it points.
    srv.script("/old/v1/chat/completions", CannedResponse(307, headers={"Location": CHAT}))
    client = ChatClient(endpoint_url=srv.url + "/old")
    with pytest.raises(RedirectError, match="/v1/chat/completions"):
        collect(client.stream_chat([{"role": "user", "content": PROMPT}]))
    assert srv.counters.total(CHAT) == 0


def test_chat_given_a_tgi_route_url_uses_that_servers_chat_route(srv: ServerHandle) -> None:
    client = ChatClient(endpoint_url=srv.url + "/generate")
    assert client.chat([{"role": "user", "content": PROMPT}]).text == ANSWER
    assert srv.counters.total(CHAT, 200) == 1
    llm = TextGenerationClient(endpoint_url=srv.url + "/generate_stream", task="chat")
    assert llm.generate(PROMPT).text == ANSWER
    assert srv.counters.total(CHAT, 200) == 2
