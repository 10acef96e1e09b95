"""Tool calling of the LlamaIndex LLM: chat_with_tools, predict_and_call, streams, agents.

The local server's generator calls tools by a documented rule (``hfrag.server.tools``): the
tools the last user message names (or the one ``tool_choice`` names), with arguments built from
each tool's schema and the numbers in the message.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.chat_engine.types import AgentChatResponse
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from hfrag.llama_index import HuggingFaceInferenceLLM
from hfrag.server.testing import CannedResponse, ServerHandle
from tests.llama_index.conftest import llm_kwargs

CHAT = "/v1/chat/completions"
calls: list[tuple[str, int, int]] = []


def add(a: int, b: int) -> int:
    """Add two integers."""
    calls.append(("add", a, b))
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    calls.append(("multiply", a, b))
    return a * b


TOOLS = [FunctionTool.from_defaults(fn=add), FunctionTool.from_defaults(fn=multiply)]


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    calls.clear()


def make(layout: str, url: str, **kw: Any) -> HuggingFaceInferenceLLM:
    return HuggingFaceInferenceLLM(**llm_kwargs(layout, url), **kw)


def selections(response: ChatResponse, llm: HuggingFaceInferenceLLM) -> list[tuple[str, dict]]:
    return [(s.tool_name, s.tool_kwargs) for s in llm.get_tool_calls_from_response(response)]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_chat_with_tools_in_every_layout(gsrv: ServerHandle, layout: str, mode: str) -> None:
    llm = make(layout, gsrv.url)
    if mode == "sync":
        response = llm.chat_with_tools(TOOLS, user_msg="Please add 2 and 3.")
    else:
        response = asyncio.run(llm.achat_with_tools(TOOLS, user_msg="Please add 2 and 3."))

    assert selections(response, llm) == [("add", {"a": 2, "b": 3})]
    (selection,) = llm.get_tool_calls_from_response(response)
    assert selection.tool_id.startswith("call_")
    assert response.additional_kwargs["finish_reason"] == "tool_calls"
    body = gsrv.counters.bodies[-1]
    assert [t["function"]["name"] for t in body["tools"]] == ["add", "multiply"]
    assert body["tools"][0]["function"]["parameters"]["required"] == ["a", "b"]
    assert body["tool_choice"] == "auto"
    assert body["messages"] == [{"role": "user", "content": "Please add 2 and 3."}]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_predict_and_call_runs_the_tool(gsrv: ServerHandle, layout: str, mode: str) -> None:
    llm = make(layout, gsrv.url)
    if mode == "sync":
        out = llm.predict_and_call(TOOLS, user_msg="multiply 6 and 7")
    else:
        out = asyncio.run(llm.apredict_and_call(TOOLS, user_msg="multiply 6 and 7"))
    assert isinstance(out, AgentChatResponse)
    assert out.response == "42"
    assert calls == [("multiply", 6, 7)]
    assert out.sources[0].tool_name == "multiply"


def test_several_tool_calls_in_one_answer(gsrv: ServerHandle) -> None:
    llm = make("router", gsrv.url)
    message = "add 3 and 4, multiply 5 and 6"
    both = llm.chat_with_tools(TOOLS, user_msg=message, allow_parallel_tool_calls=True)
    assert selections(both, llm) == [("add", {"a": 3, "b": 4}), ("multiply", {"a": 5, "b": 6})]
    ids = [s.tool_id for s in llm.get_tool_calls_from_response(both)]
    assert len(set(ids)) == 2
    # Without parallel calls only the first is kept, as LlamaIndex's OpenAI class does.
    one = llm.chat_with_tools(TOOLS, user_msg=message)
    assert selections(one, llm) == [("add", {"a": 3, "b": 4})]

    out = llm.predict_and_call(TOOLS, user_msg=message, allow_parallel_tool_calls=True)
    assert out.response == "7\n\n30"
    assert calls == [("add", 3, 4), ("multiply", 5, 6)]


def test_tool_choice_and_tool_required(gsrv: ServerHandle) -> None:
    llm = make("tgi", gsrv.url)
    forced = llm.chat_with_tools(TOOLS, user_msg="what of 4 and 5?", tool_choice="multiply")
    assert selections(forced, llm) == [("multiply", {"a": 4, "b": 5})]
    assert gsrv.counters.bodies[-1]["tool_choice"] == {
        "type": "function",
        "function": {"name": "multiply"},
    }
    required = llm.chat_with_tools(TOOLS, user_msg="numbers 8 and 9", tool_required=True)
    assert gsrv.counters.bodies[-1]["tool_choice"] == "required"
    assert selections(required, llm) == [("add", {"a": 8, "b": 9})]  # none named: the first


def test_no_tool_call_follows_error_on_no_tool_call(gsrv: ServerHandle) -> None:
    llm = make("router", gsrv.url)
    response = llm.chat_with_tools(TOOLS, user_msg="Paris is in France. Where is Paris?")
    assert response.message.content == "Paris is in France."
    with pytest.raises(ValueError, match="Expected at least one tool call, but got 0"):
        llm.get_tool_calls_from_response(response)
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="Expected at least one tool call"):
        llm.predict_and_call(TOOLS, user_msg="Paris is in France. Where is Paris?")
    out = llm.predict_and_call(
        TOOLS, user_msg="Paris is in France. Where is Paris?", error_on_no_tool_call=False
    )
    assert out.response == "Paris is in France."


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_streamed_tool_calls_are_merged(gsrv: ServerHandle, layout: str, mode: str) -> None:
    llm = make(layout, gsrv.url)
    message = "add 5 and 6, multiply 7 and 8"
    if mode == "sync":
        responses = list(
            llm.stream_chat_with_tools(TOOLS, user_msg=message, allow_parallel_tool_calls=True)
        )
    else:

        async def go() -> list[ChatResponse]:
            stream = await llm.astream_chat_with_tools(TOOLS, user_msg=message)
            return [r async for r in stream]

        responses = asyncio.run(go())
    # Every partial response can be read (an agent does so on each one) without raising.
    partial = [llm.get_tool_calls_from_response(r, error_on_no_tool_call=False) for r in responses]
    assert [len(p) for p in partial][-1] == 2
    assert selections(responses[-1], llm) == [
        ("add", {"a": 5, "b": 6}),
        ("multiply", {"a": 7, "b": 8}),
    ]
    assert responses[-1].additional_kwargs["finish_reason"] == "tool_calls"
    assert gsrv.counters.bodies[-1]["stream"] is True


INTERLEAVED = [
    'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":['
    '{"index":0,"id":"c_a","type":"function","function":{"name":"add","arguments":""}},'
    '{"index":1,"id":"c_m","type":"function","function":{"name":"multiply","arguments":"{\\"a"}}'
    "]}}]}",
    "",
    'data: {"choices":[{"index":0,"delta":{"tool_calls":['
    '{"index":0,"function":{"arguments":"{\\"a\\": 1, "}},'
    '{"index":1,"function":{"arguments":"\\": 2, \\"b\\": 3}"}}]}}]}',
    "",
    'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    '{"arguments":"\\"b\\": 9}"}}]},"finish_reason":"tool_calls"}]}',
    "",
    "data: [DONE]",
    "",
]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_interleaved_tool_call_fragments_are_merged_per_index(
    gsrv: ServerHandle, mode: str
) -> None:
    gsrv.script(CHAT, CannedResponse(200, sse=INTERLEAVED))
    llm = make("router", gsrv.url)
    if mode == "sync":
        responses = list(llm.stream_chat_with_tools(TOOLS, user_msg="go"))
    else:

        async def go() -> list[ChatResponse]:
            return [r async for r in await llm.astream_chat_with_tools(TOOLS, user_msg="go")]

        responses = asyncio.run(go())
    final = llm.get_tool_calls_from_response(responses[-1])
    assert final == [
        ToolSelection(tool_id="c_a", tool_name="add", tool_kwargs={"a": 1, "b": 9}),
        ToolSelection(tool_id="c_m", tool_name="multiply", tool_kwargs={"a": 2, "b": 3}),
    ]


def test_tool_results_go_back_in_the_wire_form(gsrv: ServerHandle) -> None:
    llm = make("chat", gsrv.url)
    history = [ChatMessage(role="system", content="Use the tools.")]
    first = llm.chat_with_tools(TOOLS, user_msg="add 2 and 40", chat_history=history)
    assert len(history) == 1  # the caller's history is not modified
    (selection,) = llm.get_tool_calls_from_response(first)
    result = ChatMessage(
        role="tool", content="42", additional_kwargs={"tool_call_id": selection.tool_id}
    )
    turns = [*history, ChatMessage(role="user", content="add 2 and 40"), first.message, result]
    second = llm.chat_with_tools(TOOLS, chat_history=turns)
    assert llm.get_tool_calls_from_response(second, error_on_no_tool_call=False) == []
    sent = gsrv.counters.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2]["tool_calls"] == [
        {
            "id": selection.tool_id,
            "type": "function",
            "function": {"name": "add", "arguments": '{"a": 2, "b": 40}'},
        }
    ]
    assert sent[3] == {"role": "tool", "content": "42", "tool_call_id": selection.tool_id}


# The agent workflow inspects its LLM's attributes, pydantic's deprecated ones included.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")
def test_a_function_agent_runs_on_it(gsrv: ServerHandle) -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    llm = make("router", gsrv.url)
    agent = FunctionAgent(tools=TOOLS, llm=llm, system_prompt="Use the tools.")

    async def go() -> Any:
        return await agent.run("multiply 3 and 5")

    result = asyncio.run(go())
    assert calls == [("multiply", 3, 5)]
    assert result.tool_calls[0].tool_output.content == "15"
    tool_turn = [
        m for m in gsrv.counters.bodies[-1]["messages"] if m["role"] == "tool"
    ]  # the tool's answer went back to the model
    assert tool_turn[0]["content"] == "15"


class City(BaseModel):
    """A city and its country."""

    name: str
    country: str


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_structured_predict_asks_for_the_native_response_format(
    gsrv: ServerHandle, layout: str, mode: str
) -> None:
    llm = make(layout, gsrv.url)
    prompt = PromptTemplate("Describe the city: {text}")
    if mode == "sync":
        city = llm.structured_predict(City, prompt, text="name: Paris, country: France")
    else:
        city = asyncio.run(llm.astructured_predict(City, prompt, text="name: Rome, country: Italy"))
    expected = ("Paris", "France") if mode == "sync" else ("Rome", "Italy")
    assert (city.name, city.country) == expected
    body = gsrv.counters.bodies[-1]
    assert "tools" not in body  # a forced tool call only if the server refuses response_format
    fmt = body["response_format"]
    assert fmt.get("json_schema", {}).get("name") == "City" or fmt["type"] == "json_object"


def test_a_structured_llm_answers_json(gsrv: ServerHandle) -> None:
    structured = make("router", gsrv.url).as_structured_llm(City)
    answer = structured.chat([ChatMessage(role="user", content="name: Oslo, country: Norway")])
    assert City.model_validate_json(answer.message.content or "") == City(
        name="Oslo", country="Norway"
    )


def test_arguments_that_are_not_json_become_a_tool_error(gsrv: ServerHandle) -> None:
    answer = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "add", "arguments": '{"a": 1,'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": float("nan"), "completion_tokens": 3},
    }
    gsrv.script(CHAT, CannedResponse(200, answer))
    llm = make("router", gsrv.url)
    response = llm.chat_with_tools(TOOLS, user_msg="add")
    assert llm.get_tool_calls_from_response(response) == [
        ToolSelection(tool_id="c1", tool_name="add", tool_kwargs={})
    ]
    assert response.message.additional_kwargs["tool_calls"][0]["function"]["arguments"] == (
        '{"a": 1,'
    )  # what the model said stays readable
    assert "prompt_tokens" not in response.additional_kwargs  # NaN is not a count
    assert response.additional_kwargs["completion_tokens"] == 3
    gsrv.script(CHAT, CannedResponse(200, answer))
    out = llm.predict_and_call(TOOLS, user_msg="add")  # the tool fails; nothing crashes
    assert out.sources[0].is_error
    assert calls == []
