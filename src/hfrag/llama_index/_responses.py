"""hfrag answers and stream chunks as LlamaIndex responses.

- A whole answer becomes one ``ChatResponse``/``CompletionResponse``: the text, the tool calls in
  ``message.additional_kwargs["tool_calls"]`` (OpenAI shape, arguments as the server's JSON
  text), ``raw`` the server's answer (a dict, with ``usage`` added when the wire form reports it
  elsewhere, e.g. TGI's ``details``), and ``additional_kwargs`` with ``finish_reason`` and the
  token counts (``prompt_tokens``, ``completion_tokens``, ``total_tokens``) where known.
- A stream gives one response per text delta (``delta`` the new text, ``text``/``content`` all
  so far) and per tool-call delta (``delta`` empty, tool calls so far), as they arrive, and then
  one final response with an empty ``delta`` that carries the finish reason and usage in ``raw``
  and ``additional_kwargs``. No text is held back, so the last token is never lost or late.
- :func:`streamed`/:func:`astreamed` run a client's chunks through a :class:`ResponseStream` and
  close the client's stream when the caller stops early; :func:`last`/:func:`alast` drain one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from dataclasses import asdict
from typing import Any, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    MessageRole,
    TextBlock,
)

from hfrag.tasks import (
    Accumulator,
    Chunk,
    GenerationOutput,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "ResponseStream",
    "alast",
    "astreamed",
    "chat_response",
    "completion_response",
    "last",
    "streamed",
]

R = TypeVar("R")


def _wire_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw_arguments}}
        for c in calls
    ]


def _message(text: str, calls: tuple[ToolCall, ...]) -> ChatMessage:
    extra = {"tool_calls": _wire_calls(calls)} if calls else {}
    # blocks=, not content=: the same message, built in about half the time (once per token)
    return ChatMessage(
        role=MessageRole.ASSISTANT, blocks=[TextBlock(text=text)], additional_kwargs=extra
    )


def _usage(usage: Usage | None) -> dict[str, int]:
    return {k: v for k, v in asdict(usage).items() if v is not None} if usage else {}


def _extras(out: GenerationOutput) -> dict[str, Any]:
    """``additional_kwargs`` of a response: finish reason and token counts."""
    extra: dict[str, Any] = {"finish_reason": out.finish_reason}
    if out.raw_finish_reason is not None and out.raw_finish_reason != out.finish_reason:
        extra["raw_finish_reason"] = out.raw_finish_reason
    extra.update(_usage(out.usage))
    return extra


def _raw(out: GenerationOutput) -> dict[str, Any]:
    """A dict (LlamaIndex's token counter reads ``raw["usage"]``) holding the server's answer."""
    raw = dict(out.raw) if isinstance(out.raw, dict) else {"response": out.raw}
    usage = _usage(out.usage)
    if usage and not isinstance(raw.get("usage"), dict):
        raw["usage"] = usage
    return raw


def chat_response(out: GenerationOutput) -> ChatResponse:
    """A whole answer as a ``ChatResponse``."""
    return ChatResponse(
        message=_message(out.text, out.tool_calls), raw=_raw(out), additional_kwargs=_extras(out)
    )


def completion_response(out: GenerationOutput) -> CompletionResponse:
    """A whole answer as a ``CompletionResponse`` (tool calls, if any, in additional_kwargs)."""
    extra = _extras(out)
    if out.tool_calls:
        extra["tool_calls"] = _wire_calls(out.tool_calls)
    return CompletionResponse(text=out.text, raw=_raw(out), additional_kwargs=extra)


class ResponseStream:
    """Turns one stream's chunks into LlamaIndex responses (see the module docstring)."""

    def __init__(self) -> None:
        self.text = ""
        self._acc = Accumulator()  # tool calls, finish and usage; text is kept here
        self._calls: tuple[ToolCall, ...] = ()

    def _feed(self, chunk: Chunk) -> str | None:
        """The new text of ``chunk`` ("" for a tool-call delta); None when nothing to show."""
        if isinstance(chunk, TextDelta):
            if not chunk.text:
                return None
            self.text += chunk.text
            return chunk.text
        self._acc.add(chunk)
        if isinstance(chunk, ToolCallDelta):
            self._calls = self._acc.output().tool_calls
            return ""
        return None

    def chat(self, chunk: Chunk) -> ChatResponse | None:
        delta = self._feed(chunk)
        if delta is None:
            return None
        return ChatResponse(message=_message(self.text, self._calls), delta=delta)

    def completion(self, chunk: Chunk) -> CompletionResponse | None:
        delta = self._feed(chunk)
        if delta is None:
            return None
        return CompletionResponse(text=self.text, delta=delta)

    def _output(self) -> GenerationOutput:
        out = self._acc.output()
        raw = {"finish_reason": out.finish_reason, "usage": _usage(out.usage) or None}
        return GenerationOutput(
            text=self.text,
            finish_reason=out.finish_reason,
            usage=out.usage,
            tool_calls=out.tool_calls,
            raw_finish_reason=out.raw_finish_reason,
            raw={k: v for k, v in raw.items() if v is not None},
        )

    def chat_final(self) -> ChatResponse:
        """The last response: all the text and tool calls, finish reason and usage."""
        response = chat_response(self._output())
        response.delta = ""
        return response

    def completion_final(self) -> CompletionResponse:
        response = completion_response(self._output())
        response.delta = ""
        return response


def streamed(
    chunks: Iterator[Chunk], step: Callable[[Chunk], R | None], final: Callable[[], R]
) -> Generator[R, None, None]:
    """``step`` of each chunk that gives a response, then ``final()``; closes ``chunks``."""
    try:
        for chunk in chunks:
            response = step(chunk)
            if response is not None:
                yield response
        yield final()
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # an abandoned stream closes its connection now, not at garbage collection


async def astreamed(
    chunks: AsyncIterator[Chunk], step: Callable[[Chunk], R | None], final: Callable[[], R]
) -> AsyncGenerator[R, None]:
    """Async :func:`streamed`."""
    try:
        async for chunk in chunks:
            response = step(chunk)
            if response is not None:
                yield response
        yield final()
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def last(responses: Iterator[R]) -> R:
    """The last response of a stream (its final one holds the whole answer)."""
    item = None
    for item in responses:  # noqa: B007
        pass
    assert item is not None  # a stream always ends with its final response
    return item


async def alast(responses: AsyncIterator[R]) -> R:
    """Async :func:`last`."""
    item = None
    async for item in responses:  # noqa: B007
        pass
    assert item is not None
    return item
