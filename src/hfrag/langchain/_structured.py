"""LangChain structured output: a structured answer's JSON checked against its schema, and
the whole answer as the one chunk a stream of it yields."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from hfrag._fields.structured import validated
from hfrag.tasks import StructuredOutputError

__all__ = ["as_chunk", "parse_structured"]


def _structured_text(message: BaseMessage) -> str:
    """The JSON text of a structured answer: the tool call's arguments, else the content."""
    if isinstance(message, AIMessage):
        if message.tool_calls:
            return json.dumps(message.tool_calls[0]["args"])
        if message.invalid_tool_calls:
            return str(message.invalid_tool_calls[0].get("args") or "")
    return message.text


def parse_structured(schema: Any, json_schema: dict[str, Any], message: BaseMessage) -> Any:
    """``schema``'s value from a structured answer, or ``OutputParserException`` (raw text)."""
    text = _structured_text(message)
    try:
        return validated(schema, text, json_schema)
    except StructuredOutputError as error:
        raise OutputParserException(str(error), llm_output=error.raw) from None


def as_chunk(result: ChatResult) -> ChatGenerationChunk:
    """A whole answer as one stream chunk (structured output is not streamed piece by piece)."""
    message = result.generations[0].message
    assert isinstance(message, AIMessage)
    calls = [
        tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
        for i, c in enumerate(message.tool_calls)
    ]
    chunk = AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        tool_call_chunks=calls,
        usage_metadata=message.usage_metadata,
        response_metadata=message.response_metadata,
        chunk_position="last",
    )
    info = {"finish_reason": message.response_metadata.get("finish_reason")}
    return ChatGenerationChunk(message=chunk, generation_info=info)
