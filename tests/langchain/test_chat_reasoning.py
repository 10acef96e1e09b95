"""LangChain: a reasoning model's reasoning beside the answer, token logprobs, a refused image.

Reasoning is ``additional_kwargs["reasoning_content"]`` on messages and chunks, so
langchain-core's ``content_blocks`` shows a ``reasoning`` block; it is never in ``content``.
Logprobs are ``response_metadata["logprobs"]`` in ChatOpenAI's shape (``{"content": [...]}``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage

from hfrag.langchain import ChatHuggingFaceInference, HuggingFaceInferenceLLM
from hfrag.server.testing import ServerHandle
from tests.llm import (
    ANSWER,
    PROMPT,
    REASONING,
    REASONING_MODELS,
    REASONING_TEXT,
    THINK,
    traits_server,
    traits_srv,
)

__all__ = ["traits_server", "traits_srv"]  # fixtures

MODES = ["invoke", "ainvoke", "stream", "astream"]


def answer(chat: ChatHuggingFaceInference, mode: str, messages: Any = PROMPT) -> BaseMessage:
    if mode == "invoke":
        return chat.invoke(messages)
    if mode == "ainvoke":
        return asyncio.run(chat.ainvoke(messages))
    if mode == "stream":
        chunks = list(chat.stream(messages))
    else:

        async def gather() -> list[AIMessageChunk]:
            return [c async for c in chat.astream(messages)]

        chunks = asyncio.run(gather())
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", REASONING_MODELS)
def test_reasoning_is_a_reasoning_block_never_content(
    traits_srv: ServerHandle, model: str, mode: str
) -> None:
    chat = ChatHuggingFaceInference(model=model, router_url=traits_srv.url)
    message = answer(chat, mode)
    assert message.content == ANSWER
    assert message.additional_kwargs["reasoning_content"] == REASONING_TEXT
    assert message.content_blocks == [
        {"type": "reasoning", "reasoning": REASONING_TEXT},
        {"type": "text", "text": ANSWER},
    ]


def test_reasoning_streams_as_it_grows(traits_srv: ServerHandle) -> None:
    chat = ChatHuggingFaceInference(model=REASONING, router_url=traits_srv.url)
    pieces = [c.additional_kwargs.get("reasoning_content") for c in chat.stream(PROMPT)]
    thoughts = [p for p in pieces if p]
    assert len(thoughts) > 3
    assert "".join(thoughts) == REASONING_TEXT


@pytest.mark.parametrize("send", [False, True])
def test_reasoning_goes_back_only_when_set(traits_srv: ServerHandle, send: bool) -> None:
    chat = ChatHuggingFaceInference(model=REASONING, router_url=traits_srv.url, send_reasoning=send)
    first = chat.invoke(PROMPT)
    chat.invoke([HumanMessage(PROMPT), first, HumanMessage("And Italy?")])
    sent = traits_srv.counters.bodies[-1]["messages"][1]
    assert sent["role"] == "assistant"
    assert sent.get("reasoning_content") == (REASONING_TEXT if send else None)


def test_split_off_keeps_the_text_as_sent(traits_srv: ServerHandle) -> None:
    chat = ChatHuggingFaceInference(model=THINK, router_url=traits_srv.url, split_reasoning=False)
    message = chat.invoke(PROMPT)
    assert message.content == f"<think>{REASONING_TEXT}</think>{ANSWER}"
    assert "reasoning_content" not in message.additional_kwargs


@pytest.mark.parametrize("mode", MODES)
def test_logprobs_in_chatopenai_shape(traits_srv: ServerHandle, mode: str) -> None:
    chat = ChatHuggingFaceInference(model=REASONING, router_url=traits_srv.url, top_logprobs=2)
    message = answer(chat, mode)
    content = message.response_metadata["logprobs"]["content"]
    assert "".join(t["token"] for t in content) == ANSWER
    for token in content:
        assert set(token) == {"token", "logprob", "bytes", "top_logprobs"}
        assert token["bytes"] == list(token["token"].encode())
        assert [t["token"] for t in token["top_logprobs"]][:1] == [token["token"]]
        assert len(token["top_logprobs"]) == 2


def test_no_logprobs_unless_asked(traits_srv: ServerHandle) -> None:
    message = ChatHuggingFaceInference(model=REASONING, router_url=traits_srv.url).invoke(PROMPT)
    assert "logprobs" not in message.response_metadata
    assert isinstance(message, AIMessage)


@pytest.mark.parametrize("streaming", [False, True])
def test_llm_class_keeps_reasoning_and_logprobs_in_generation_info(
    traits_srv: ServerHandle, streaming: bool
) -> None:
    llm = HuggingFaceInferenceLLM(endpoint_url=traits_srv.url, logprobs=True, streaming=streaming)
    result = llm.generate([PROMPT])
    generation = result.generations[0][0]
    assert generation.text == ANSWER
    info = generation.generation_info or {}
    assert info["reasoning_content"] == REASONING_TEXT
    tokens = "".join(t["token"] for t in info["logprobs"]["content"])
    assert tokens == f"<think>{REASONING_TEXT}</think>{ANSWER}"


def test_a_text_only_model_refusing_an_image_is_a_typed_error(traits_srv: ServerHandle) -> None:
    from hfrag.errors import InvalidRequestError
    from tests.llm import TEXT_ONLY

    image = {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"}
    chat = ChatHuggingFaceInference(model=TEXT_ONLY, router_url=traits_srv.url)
    with pytest.raises(InvalidRequestError, match="not a multimodal model") as caught:
        chat.invoke([HumanMessage(content=[{"type": "text", "text": "What is it?"}, image])])
    assert caught.value.status == 400
    sent = traits_srv.counters.bodies[-1]["messages"][0]["content"][1]
    assert sent == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def test_reasoning_settings_are_checked_at_construction() -> None:
    from hfrag.llama_index import HuggingFaceInferenceLLM as LlamaIndexLLM

    for cls in (ChatHuggingFaceInference, HuggingFaceInferenceLLM, LlamaIndexLLM):
        with pytest.raises(ValueError, match="reasoning_effort must be one of"):
            cls(model=REASONING, reasoning_effort="max")
        with pytest.raises(ValueError, match="top_logprobs"):
            cls(model=REASONING, top_logprobs=50)


def test_llm_class_on_the_router_reads_the_reasoning_field(traits_srv: ServerHandle) -> None:
    llm = HuggingFaceInferenceLLM(
        model=REASONING, router_url=traits_srv.url, reasoning_effort="high"
    )
    generation = llm.generate([PROMPT]).generations[0][0]
    assert generation.text == ANSWER
    assert (generation.generation_info or {})["reasoning_content"] == REASONING_TEXT
    assert traits_srv.counters.bodies[-1]["reasoning_effort"] == "high"


def test_a_tool_call_turn_gets_its_reasoning_back_where_the_server_asks(
    traits_srv: ServerHandle,
) -> None:
    from langchain_core.messages import ToolMessage

    from tests.llm import WANTS_REASONING

    call = {"id": "c1", "name": "get_weather", "args": {"location": "Paris"}}
    turn = AIMessage(content="", tool_calls=[call], additional_kwargs={"reasoning_content": "r"})
    history = [HumanMessage(PROMPT), turn, ToolMessage("sunny", tool_call_id="c1")]
    chat = ChatHuggingFaceInference(model=WANTS_REASONING, router_url=traits_srv.url)
    assert chat.invoke(history).content
    assert [b["messages"][1].get("reasoning_content") for b in traits_srv.counters.bodies] == [
        None,
        "r",
    ]
