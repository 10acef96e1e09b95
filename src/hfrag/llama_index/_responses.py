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
- A reasoning model's reasoning is a ``ThinkingBlock`` before the ``TextBlock`` of the message
  (never in its text); streamed, each reasoning delta gives a response whose message holds the
  reasoning so far (``delta`` empty, ``additional_kwargs["thinking_delta"]`` the new piece).
  A completion keeps it in ``additional_kwargs["reasoning_content"]``.
- Token log-probabilities, when asked for, are ``logprobs`` (one list per token: the token,
  then its most likely alternatives, as LlamaIndex's OpenAI class fills it), on the whole
  answer and on a stream's final response.
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
    LogProb,
    MessageRole,
    TextBlock,
    ThinkingBlock,
)

from hfrag.tasks import (
    Accumulator,
    Chunk,
    GenerationOutput,
    ReasoningDelta,
    TextDelta,
    TokenLogprob,
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


def _message(text: str, calls: tuple[ToolCall, ...], reasoning: str | None = None) -> ChatMessage:
    extra = {"tool_calls": _wire_calls(calls)} if calls else {}
    blocks: list[Any] = [TextBlock(text=text)]
    if reasoning is not None:
        blocks.insert(0, ThinkingBlock(content=reasoning))
    # blocks=, not content=: the same message, built in about half the time (once per token)
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


def logprobs(tokens: tuple[TokenLogprob, ...] | None) -> list[list[LogProb]] | None:
    """LlamaIndex's ``logprobs``: per token, the token and then its other likely tokens."""
    if tokens is None:
        return None
    out = []
    for t in tokens:
        alternatives = [a for a in t.top if a.token != t.token]
        out.append([_logprob(t), *(_logprob(a) for a in alternatives)])
    return out


def _logprob(t: TokenLogprob) -> LogProb:
    value = t.logprob if t.logprob is not None else float("-inf")
    return LogProb(token=t.token, logprob=value, bytes=list(t.bytes))


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
        message=_message(out.text, out.tool_calls, out.reasoning),
        raw=_raw(out),
        additional_kwargs=_extras(out),
        logprobs=logprobs(out.logprobs),
    )


def completion_response(out: GenerationOutput) -> CompletionResponse:
    """A whole answer as a ``CompletionResponse`` (tool calls, if any, in additional_kwargs)."""
    extra = _extras(out)
    if out.tool_calls:
        extra["tool_calls"] = _wire_calls(out.tool_calls)
    if out.reasoning is not None:
        extra["reasoning_content"] = out.reasoning
    return CompletionResponse(
        text=out.text, raw=_raw(out), additional_kwargs=extra, logprobs=logprobs(out.logprobs)
    )


class ResponseStream:
    """Turns one stream's chunks into LlamaIndex responses (see the module docstring)."""

    def __init__(self) -> None:
        self.text = ""
        self._acc = Accumulator()  # tool calls, finish and usage; text is kept here
        self._calls: tuple[ToolCall, ...] = ()
        self.reasoning: str | None = None

    def _feed(self, chunk: Chunk) -> str | None:
        """The new text of ``chunk`` ("" for a tool-call or reasoning delta); None when
        nothing to show."""
        if isinstance(chunk, TextDelta):
            if not chunk.text:
                return None
            self.text += chunk.text
            return chunk.text
        if isinstance(chunk, ReasoningDelta):
            self.reasoning = (self.reasoning or "") + chunk.text
            return ""
        self._acc.add(chunk)
        if isinstance(chunk, ToolCallDelta):
            self._calls = self._acc.output().tool_calls
            return ""
        return None

    def chat(self, chunk: Chunk) -> ChatResponse | None:
        delta = self._feed(chunk)
        if delta is None:
            return None
        message = _message(self.text, self._calls, self.reasoning)
        if isinstance(chunk, ReasoningDelta):
            extra = {"thinking_delta": chunk.text}
            return ChatResponse(message=message, delta="", additional_kwargs=extra)
        return ChatResponse(message=message, delta=delta)

    def completion(self, chunk: Chunk) -> CompletionResponse | None:
        if isinstance(chunk, ReasoningDelta):
            self._feed(chunk)  # kept for the final response: a completion's text is the answer
            return None
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
            reasoning=self.reasoning,
            logprobs=out.logprobs,
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
