"""LlamaIndex messages and tools in the OpenAI wire form, and tool calls read back."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
)
from llama_index.core.tools import FunctionTool

from hfrag.errors import InputError
from hfrag.llama_index._messages import tool_selections, tool_specs, wire_messages


def test_roles_text_and_multi_turn() -> None:
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
        ChatMessage(role=MessageRole.DEVELOPER, content="Rules."),
        ChatMessage(role=MessageRole.USER, content="Hi"),
        ChatMessage(role=MessageRole.CHATBOT, content="Hello"),
        ChatMessage(role=MessageRole.MODEL, content="there"),
        ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text="a"), TextBlock(text="b")]),
    ]
    assert wire_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "assistant", "content": "there"},
        {"role": "user", "content": "a\nb"},
    ]


def test_images_are_sent_as_parts() -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    message = ChatMessage(
        role="user",
        blocks=[
            TextBlock(text="What is this?"),
            ImageBlock(url="https://example.com/cat.png"),
            ImageBlock(image=png, image_mimetype="image/png"),
        ],
    )
    (wire,) = wire_messages([message])
    assert wire["content"][0] == {"type": "text", "text": "What is this?"}
    assert wire["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/cat.png"},
    }
    url = wire["content"][2]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png


def test_blocks_chat_cannot_carry_fail_before_sending() -> None:
    message = ChatMessage(role="user", blocks=[AudioBlock(audio=b"RIFF....", format="wav")])
    with pytest.raises(InputError, match="message 1 has a 'audio' block") as info:
        wire_messages([ChatMessage(role="user", content="hi"), message])
    assert info.value.positions == (1,)


def test_tool_calls_and_results_round_trip() -> None:
    openai_shaped = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 1}'},
    }
    messages = [
        ChatMessage(
            role="assistant", content="", additional_kwargs={"tool_calls": [openai_shaped]}
        ),
        ChatMessage(role="tool", content="2", additional_kwargs={"tool_call_id": "call_1"}),
    ]
    assert wire_messages(messages) == [
        {"role": "assistant", "content": "", "tool_calls": [openai_shaped]},
        {"role": "tool", "content": "2", "tool_call_id": "call_1"},
    ]


def test_tool_call_blocks_are_sent_once() -> None:
    from llama_index.core.base.llms import types

    if not hasattr(types, "ToolCallBlock"):  # added in a later 0.14 release
        pytest.skip("this llama-index-core has no ToolCallBlock")
    block = types.ToolCallBlock(tool_call_id="c9", tool_name="add", tool_kwargs={"a": 2})
    stale = {"id": "c9", "function": {"name": "add", "arguments": "{}"}}
    message = ChatMessage(
        role="assistant", blocks=[block], additional_kwargs={"tool_calls": [stale]}
    )
    (wire,) = wire_messages([message])
    assert wire["content"] == ""
    assert wire["tool_calls"] == [
        {"id": "c9", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
    ]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_tool_specs() -> None:
    (spec,) = tool_specs([FunctionTool.from_defaults(fn=add)])
    assert spec["type"] == "function"
    assert spec["function"]["name"] == "add"
    assert spec["function"]["description"].endswith("Add two integers.")
    assert set(spec["function"]["parameters"]["properties"]) == {"a", "b"}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1, "b": 2}', {"a": 1, "b": 2}),
        ({"a": 1}, {"a": 1}),  # TGI has been seen to send an object
        ("", {}),
        ("not json", {}),
        ("[1, 2]", {}),
        (None, {}),
    ],
)
def test_tool_selections_tolerate_odd_arguments(arguments: Any, expected: dict[str, Any]) -> None:
    (selection,) = tool_selections(
        [{"id": "x", "function": {"name": "add", "arguments": arguments}}]
    )
    assert (selection.tool_id, selection.tool_name, selection.tool_kwargs) == ("x", "add", expected)
