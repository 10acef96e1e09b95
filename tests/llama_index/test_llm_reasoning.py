"""LlamaIndex: reasoning as a ``ThinkingBlock`` (streamed as it grows), and token logprobs."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatResponse, TextBlock, ThinkingBlock
from llama_index.core.llms import ChatMessage

from hfrag.llama_index import HuggingFaceInferenceLLM
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

MODES = ["chat", "achat", "stream_chat", "astream_chat"]
USER = [ChatMessage(role="user", content=PROMPT)]


def respond(llm: HuggingFaceInferenceLLM, mode: str, messages: Any = USER) -> list[ChatResponse]:
    if mode == "chat":
        return [llm.chat(messages)]
    if mode == "achat":
        return [asyncio.run(llm.achat(messages))]
    if mode == "stream_chat":
        return list(llm.stream_chat(messages))

    async def gather() -> list[ChatResponse]:
        return [r async for r in await llm.astream_chat(messages)]

    return asyncio.run(gather())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", REASONING_MODELS)
def test_reasoning_is_a_thinking_block(traits_srv: ServerHandle, model: str, mode: str) -> None:
    llm = HuggingFaceInferenceLLM(model=model, router_url=traits_srv.url)
    message = respond(llm, mode)[-1].message
    assert message.content == ANSWER
    thinking, text = message.blocks
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.content == REASONING_TEXT
    assert isinstance(text, TextBlock)
    assert text.text == ANSWER


def test_the_thinking_block_grows_while_streamed(traits_srv: ServerHandle) -> None:
    llm = HuggingFaceInferenceLLM(model=THINK, router_url=traits_srv.url)
    responses = list(llm.stream_chat(USER))
    grown = [
        r.message.blocks[0].content for r in responses if "thinking_delta" in r.additional_kwargs
    ]
    assert len(grown) > 3
    assert all(b.startswith(a) for a, b in itertools.pairwise(grown))
    assert grown[-1] == REASONING_TEXT
    assert all(r.delta == "" for r in responses if "thinking_delta" in r.additional_kwargs)
    assert "".join(r.delta or "" for r in responses) == ANSWER


@pytest.mark.parametrize("send", [False, True])
def test_thinking_goes_back_only_when_set(traits_srv: ServerHandle, send: bool) -> None:
    llm = HuggingFaceInferenceLLM(model=REASONING, router_url=traits_srv.url, send_reasoning=send)
    first = llm.chat(USER).message
    llm.chat([*USER, first, ChatMessage(role="user", content="And Italy?")])
    sent = traits_srv.counters.bodies[-1]["messages"][1]
    assert sent["content"] == ANSWER
    assert sent.get("reasoning_content") == (REASONING_TEXT if send else None)


@pytest.mark.parametrize("mode", MODES)
def test_logprobs_streamed_and_not(traits_srv: ServerHandle, mode: str) -> None:
    llm = HuggingFaceInferenceLLM(model=REASONING, router_url=traits_srv.url, top_logprobs=3)
    logprobs = respond(llm, mode)[-1].logprobs
    assert logprobs is not None
    assert "".join(position[0].token for position in logprobs) == ANSWER
    for position in logprobs:
        assert len(position) == 3  # the token and its two other likely tokens
        assert position[0].logprob > position[1].logprob > position[2].logprob


@pytest.mark.parametrize("streaming", [False, True])
def test_complete_keeps_reasoning_apart(traits_srv: ServerHandle, streaming: bool) -> None:
    llm = HuggingFaceInferenceLLM(endpoint_url=traits_srv.url, logprobs=True, streaming=streaming)
    response = llm.complete(PROMPT, formatted=True)
    assert response.text == ANSWER
    assert response.additional_kwargs["reasoning_content"] == REASONING_TEXT
    assert response.logprobs is not None
    assert "".join(p[0].token for p in response.logprobs).endswith(ANSWER)
