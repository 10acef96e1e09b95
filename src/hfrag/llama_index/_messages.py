"""LlamaIndex chat messages and tools in the OpenAI wire form, and tool calls back as selections.

Messages: roles LlamaIndex has and chat templates do not (``chatbot``, ``model``) become
``assistant``, ``developer`` becomes ``system``, ``function`` becomes ``tool``. Text blocks are
joined into one string; a message with images is sent as a list of parts (``text``,
``image_url``). An assistant's tool calls (``ToolCallBlock`` blocks, or OpenAI-shaped
``additional_kwargs["tool_calls"]``) are sent as ``tool_calls``; a tool result is sent with its
``tool_call_id``. An assistant's ``ThinkingBlock`` content becomes ``reasoning_content``, which
the chat client sends back only with ``send_reasoning=True``. Blocks a chat-completions server
cannot take (audio, video, documents) fail before sending.

Tool calls read back keep the server's ``id``; arguments that are not a JSON object become ``{}``
(as LlamaIndex's own OpenAI class does), so ``predict_and_call`` reports a tool error instead of
crashing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock, ThinkingBlock
from llama_index.core.llms.llm import ToolSelection

from hfrag.errors import InputError
from hfrag.tasks.inputs import check_objects

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["message_tool_calls", "tool_selections", "tool_specs", "wire_message", "wire_messages"]

_ROLES = {"chatbot": "assistant", "model": "assistant", "developer": "system", "function": "tool"}
_SKIPPED_BLOCKS = frozenset({"tool_call", "thinking", "cache", "cache_point", "citation"})


def wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """``messages`` in the OpenAI chat shape (a ``TypeError`` for anything but ChatMessages)."""
    checked = check_objects(messages, ChatMessage, "LlamaIndex ChatMessage objects")
    return [wire_message(m, i) for i, m in enumerate(checked)]


def wire_message(message: ChatMessage, position: int = 0) -> dict[str, Any]:
    """One LlamaIndex message in the OpenAI chat shape (see the module docstring)."""
    role = str(getattr(message.role, "value", message.role))
    role = _ROLES.get(role, role)
    out: dict[str, Any] = {"role": role, "content": _content(message, position)}
    kwargs = message.additional_kwargs
    if role == "assistant":
        calls = message_tool_calls(message)
        if calls:
            out["tool_calls"] = calls
        thoughts = [
            block.content
            for block in message.blocks
            if isinstance(block, ThinkingBlock) and block.content
        ]
        if thoughts:
            out["reasoning_content"] = "".join(thoughts)
    if role == "tool":
        call_id = kwargs.get("tool_call_id")
        if call_id is not None:
            out["tool_call_id"] = str(call_id)
    if isinstance(kwargs.get("name"), str):
        out["name"] = kwargs["name"]
    return out


def _content(message: ChatMessage, position: int) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
        elif getattr(block, "block_type", None) not in _SKIPPED_BLOCKS:
            kind = getattr(block, "block_type", type(block).__name__)
            raise InputError(
                f"message {position} has a {kind!r} block, which chat completions cannot carry; "
                "send text and images only",
                positions=[position],
            )
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _image_url(block: ImageBlock) -> str:
    if block.url is not None and block.image is None and block.path is None:
        return str(block.url)  # the server fetches it; never download on the user's behalf
    data = block.resolve_image(as_base64=True).read().decode("ascii")
    return f"data:{block.image_mimetype or 'image/png'};base64,{data}"


def message_tool_calls(message: ChatMessage) -> list[dict[str, Any]]:
    """A message's tool calls in wire form: from ``ToolCallBlock`` blocks if any, else from
    ``additional_kwargs["tool_calls"]`` (dicts, OpenAI objects or ``ToolSelection``)."""
    calls = [
        _wire_call(
            getattr(block, "tool_call_id", None),
            getattr(block, "tool_name", ""),
            getattr(block, "tool_kwargs", {}),
        )
        for block in message.blocks
        if getattr(block, "block_type", None) == "tool_call"
    ]
    if calls:
        return calls
    for call in message.additional_kwargs.get("tool_calls") or []:
        if hasattr(call, "model_dump"):  # an OpenAI or huggingface_hub object
            call = call.model_dump()
        if isinstance(call, ToolSelection):
            calls.append(_wire_call(call.tool_id, call.tool_name, call.tool_kwargs))
        elif isinstance(call, Mapping):
            function = call.get("function") or {}
            calls.append(
                _wire_call(call.get("id"), function.get("name", ""), function.get("arguments"))
            )
    return calls


def _wire_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {})
    call: dict[str, Any] = {
        "type": "function",
        "function": {"name": str(name), "arguments": arguments},
    }
    if call_id:
        call["id"] = str(call_id)
    return call


def tool_specs(tools: Sequence[BaseTool]) -> list[dict[str, Any]]:
    """The ``tools`` of a chat request (OpenAI function form) for LlamaIndex tools."""
    return [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]


def tool_selections(calls: Sequence[Mapping[str, Any]]) -> list[ToolSelection]:
    """OpenAI-shaped tool calls (``{"id", "function": {"name", "arguments"}}``) as selections."""
    selections = []
    for call in calls:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                arguments = {}
        selections.append(
            ToolSelection(
                tool_id=str(call.get("id") or ""),
                tool_name=str(function.get("name") or ""),
                tool_kwargs=arguments if isinstance(arguments, dict) else {},
            )
        )
    return selections
