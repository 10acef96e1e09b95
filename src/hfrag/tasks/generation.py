"""What the LLM task clients share: options, typed stream chunks, results, message checks.

The API of the LLM task clients (stable names; both frameworks' adapters build on them)::

    from hfrag.tasks import ChatClient, TextGenerationClient, GenerationOptions
    from hfrag.tasks import TextDelta, ToolCallDelta, Finish, Usage, ToolCall, GenerationOutput
    from hfrag.tasks import ReasoningDelta, LogprobsDelta, TokenLogprob

    options = GenerationOptions(max_new_tokens=64, temperature=0.2, stop=["\\n\\n"])

    chat = ChatClient(model="meta-llama/Llama-3.1-8B-Instruct", provider="fastest",
                      options=options)        # or ChatClient(endpoint_url="http://host:8082")
    out = chat.chat([{"role": "user", "content": "Hi"}],
                    tools=None, tool_choice=None, response_format=None,
                    stop=None, options=None)          # -> GenerationOutput
    out = await chat.achat(messages, ...)
    for chunk in chat.stream_chat(messages, ...): ...  # Iterator[Chunk]
    async for chunk in chat.astream_chat(messages, ...): ...

    llm = TextGenerationClient(endpoint_url="http://host:8082", task="auto", options=options)
    out = llm.generate("prompt", stop=None, options=None)   # -> GenerationOutput
    out = await llm.agenerate("prompt")
    for chunk in llm.stream("prompt"): ...
    async for chunk in llm.astream("prompt"): ...
    llm.wire() / await llm.awire()        # "text-generation" or "chat", resolved once
    chat.endpoint_info() / await chat.aendpoint_info()    # GET /info of an endpoint, {} if none

    Chunk = TextDelta(text) | ReasoningDelta(text) | ToolCallDelta(index, id, name, arguments)
          | LogprobsDelta(tokens: tuple[TokenLogprob, ...])
          | Finish(reason, raw_reason, model)
          | Usage(prompt_tokens, completion_tokens, total_tokens, reasoning_tokens)
    GenerationOutput(text, finish_reason, usage, tool_calls: tuple[ToolCall, ...], model,
                     raw_finish_reason, raw, reasoning: str | None,
                     logprobs: tuple[TokenLogprob, ...] | None)
    ToolCall(id, name, arguments: dict | None, raw_arguments: str)   # None: not valid JSON
    collect(chunks) / Accumulator().add(chunk) -> GenerationOutput   # merge a stream

A reasoning model's reasoning is never in ``text``: it is ``reasoning`` (streamed as
:class:`ReasoningDelta`), from either field or a leading ``<think>`` (:mod:`hfrag.tasks.reasoning`).
Token log-probabilities, when asked for (``GenerationOptions(logprobs=True)``), are
``logprobs`` (streamed as :class:`LogprobsDelta`; :mod:`hfrag.tasks.logprobs`).

A stream yields text deltas as they arrive (stop sequences already trimmed), tool-call deltas as
the server sends them (merge ``arguments`` per ``index``), one :class:`Finish` and, when the
server reports it, one :class:`Usage`. A stream that ends before the server said it was done
raises :class:`~hfrag.errors.InferenceConnectionError`; an error event raises its typed error.
Joining a stream's chunks with :func:`collect` gives the same output as the non-streamed call.
Sync streams run on the blocking driver, async ones on the async driver; preparing a stream
(``/info``, the wire form) goes through ``run``/``arun``, and the transport retries a stream only
until its first event.

Where things live: :mod:`~hfrag.tasks.generation_options` (``GenerationOptions``, per-form
mapping), :mod:`~hfrag.tasks.chat_wire` (chat bodies and decoders), :mod:`~hfrag.tasks.chat`
(``ChatClient``), :mod:`~hfrag.tasks.text_generation` (``TextGenerationClient``, TGI's form).
Adapters declare their fields with :class:`hfrag._fields.GenerationFields`, which builds both
clients (``chat_client()``, ``text_generation_client()``, ``generation_options()``).
"""

from __future__ import annotations

import json
from collections.abc import (
    AsyncGenerator,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from typing_extensions import Unpack

from hfrag.errors import ConfigurationError, InferenceConnectionError, InputError
from hfrag.tasks.base import Connection, TaskClient, connect
from hfrag.tasks.generation_options import RESERVED_KEYS, GenerationOptions, check_provider
from hfrag.tasks.logprobs import LogprobsDelta, TokenLogprob
from hfrag.tasks.reasoning import ReasoningDelta
from hfrag.transport import AsyncTransport, Request, SyncTransport
from hfrag.transport.sse import DONE
from hfrag.transport.urls import redact_url

__all__ = [
    "RESERVED_KEYS",
    "Accumulator",
    "Chunk",
    "ChunkDecoder",
    "Finish",
    "GenerationOptions",
    "GenerationOutput",
    "LLMClient",
    "LogprobsDelta",
    "ReasoningDelta",
    "StopTrimmer",
    "TextDelta",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "aiter_chunks",
    "check_messages",
    "check_prompt",
    "check_provider",
    "collect",
    "iter_chunks",
    "parse_arguments",
]


# -- stream chunks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call: ``arguments`` fragments concatenate per ``index``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class Finish:
    """Why generation ended: ``stop``, ``length``, ``tool_calls`` (OpenAI's words);
    ``raw_reason`` is what the server said (TGI: ``eos_token``, ``stop_sequence``...);
    ``model`` is the model the server named in its chunks, when it did."""

    reason: str
    raw_reason: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts the server reported (None where it did not say); ``reasoning_tokens`` is
    the part of ``completion_tokens`` a reasoning model spent reasoning."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None


Chunk = TextDelta | ReasoningDelta | ToolCallDelta | LogprobsDelta | Finish | Usage


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """One tool call of an answer. ``arguments`` is None when ``raw_arguments`` is not a JSON
    object (a model's mistake the caller may want to report rather than crash on)."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str


@dataclass(frozen=True)
class GenerationOutput:
    """A whole answer: text (stop sequences trimmed), finish reason, usage, tool calls; a
    reasoning model's ``reasoning`` (None when the server sent none) and the tokens'
    ``logprobs`` (None unless asked for and sent)."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    model: str | None = None
    raw_finish_reason: str | None = None
    raw: Any = field(default=None, repr=False, compare=False)
    reasoning: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None


def parse_arguments(raw: Any) -> tuple[dict[str, Any] | None, str]:
    """Tool-call arguments as ``(dict or None, JSON text)``: a JSON string or an object (TGI)."""
    if isinstance(raw, dict):
        return raw, json.dumps(raw)
    text = "" if raw is None else str(raw)
    if not text.strip():
        return {}, text
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None, text
    return (value, text) if isinstance(value, dict) else (None, text)


class Accumulator:
    """Merges stream chunks into a :class:`GenerationOutput` (tool-call deltas per index)."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] | None = None
        self._logprobs: list[TokenLogprob] | None = None
        self._calls: dict[int, dict[str, Any]] = {}
        self.finish: Finish | None = None
        self.usage: Usage | None = None

    def add(self, chunk: Chunk) -> None:
        if isinstance(chunk, TextDelta):
            self._text.append(chunk.text)
        elif isinstance(chunk, ReasoningDelta):
            if self._reasoning is None:
                self._reasoning = []
            self._reasoning.append(chunk.text)
        elif isinstance(chunk, LogprobsDelta):
            if self._logprobs is None:
                self._logprobs = []
            self._logprobs.extend(chunk.tokens)
        elif isinstance(chunk, ToolCallDelta):
            call = self._calls.setdefault(chunk.index, {"id": None, "name": "", "arguments": []})
            if chunk.id:
                call["id"] = chunk.id
            if chunk.name:
                call["name"] += chunk.name if call["name"] != chunk.name else ""
            call["arguments"].append(chunk.arguments)
        elif isinstance(chunk, Finish):
            self.finish = chunk
        elif isinstance(chunk, Usage):
            self.usage = chunk

    def output(self, model: str | None = None) -> GenerationOutput:
        calls = []
        for index in sorted(self._calls):
            call = self._calls[index]
            arguments, raw = parse_arguments("".join(call["arguments"]))
            calls.append(ToolCall(call["id"] or f"call_{index}", call["name"], arguments, raw))
        return GenerationOutput(
            text="".join(self._text),
            finish_reason=self.finish.reason if self.finish else None,
            usage=self.usage,
            tool_calls=tuple(calls),
            model=model or (self.finish.model if self.finish else None),
            raw_finish_reason=self.finish.raw_reason if self.finish else None,
            reasoning=None if self._reasoning is None else "".join(self._reasoning),
            logprobs=None if self._logprobs is None else tuple(self._logprobs),
        )


def collect(chunks: Iterable[Chunk]) -> GenerationOutput:
    """The output a stream adds up to."""
    acc = Accumulator()
    for chunk in chunks:
        acc.add(chunk)
    return acc.output()


# -- inputs -----------------------------------------------------------------------------------

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def check_prompt(prompt: Any) -> str:
    """A prompt string, or a clear error; nothing is sent."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise InputError("the prompt is empty or whitespace only; servers reject it")
    return prompt


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """OpenAI-shaped messages as a list of dicts, or an error naming the first bad one.

    ``content`` may be a string, a list of parts (``{"type": "text", "text"}``, images...) or
    None for an assistant message that carries ``tool_calls``.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError('messages must be a list of {"role", "content"} dicts')
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"message {i} is {type(message).__name__}, not a dict")
        role = message.get("role")
        if role not in _ROLES:
            raise InputError(
                f"message {i} has role {role!r}; expected one of {sorted(_ROLES)}", positions=[i]
            )
        content = message.get("content")
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            raise InputError(f"message {i} ({role}) has no content", positions=[i])
        if content is not None and not isinstance(content, (str, list)):
            raise InputError(
                f"message {i} content must be a string or a list of parts, got "
                f"{type(content).__name__}",
                positions=[i],
            )
        if isinstance(content, list) and not all(isinstance(p, Mapping) for p in content):
            raise InputError(f"message {i} content parts must be dicts", positions=[i])
        out.append(dict(message))
    if not out:
        raise InputError("messages is empty: give at least one message")
    return out


# -- stop sequences ---------------------------------------------------------------------------


class StopTrimmer:
    """Cuts text at the first stop sequence, across chunk boundaries.

    Text that might be the start of a stop sequence is held back until the next piece shows
    whether it is, so a stream never yields text the whole answer would not contain.
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = [s for s in stop if s]
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        if not self._stop:
            return text
        buffer = self._held + text
        cut = min((i for i in (buffer.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return buffer[:cut]
        keep = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(buffer)), 0, -1):
                if buffer.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def trim(self, text: str) -> str:
        """Whole-text form: ``text`` cut before its first stop sequence."""
        return self.feed(text) + self.flush()


# -- streams ----------------------------------------------------------------------------------


class ChunkDecoder(Protocol):
    """Turns one wire form's event payloads into chunks; ``finish`` checks the stream ended
    where the protocol says an answer ends (else the stream was cut), ``done`` telling whether
    it ended with ``data: [DONE]``; ``complete`` is true once the answer is whole (the stream is
    then closed without waiting for the server to end it)."""

    @property
    def complete(self) -> bool: ...

    def feed(self, payload: Any) -> list[Chunk]: ...

    def finish(self, done: bool = False) -> list[Chunk]: ...


def stream_cut(url: str, what: str) -> InferenceConnectionError:
    """The error for a stream that ended before the answer did."""
    return InferenceConnectionError(
        f"the stream ended before the answer was complete ({what}); the partial answer was "
        "discarded, not returned as if whole",
        status=200,
        url=redact_url(url),
    )


def iter_chunks(
    transport: SyncTransport, request: Request, decoder: ChunkDecoder
) -> Generator[Chunk, None, None]:
    """Chunks of a stream over the blocking driver; closing the iterator closes the connection.

    The blocking driver is used for sync streams (rather than stepping the async one from this
    thread) because each event then costs no thread hop, and an abandoned iterator closes its
    response synchronously in its ``finally`` instead of waiting for a loop to run a finaliser.
    """
    events = cast(Generator[Any, None, None], transport.stream(request, mark_done=True))
    try:
        done = False
        for payload in events:
            if payload is DONE:
                done = True
                break
            yield from decoder.feed(payload)
            if decoder.complete:
                break
        yield from decoder.finish(done)
    finally:
        events.close()


async def aiter_chunks(
    transport: AsyncTransport, request: Request, decoder: ChunkDecoder
) -> AsyncGenerator[Chunk, None]:
    """Chunks of a stream over the async driver; ``aclose()`` closes the connection."""
    events = transport.stream(request, mark_done=True)
    try:
        done = False
        async for payload in events:
            if payload is DONE:
                done = True
                break
            for chunk in decoder.feed(payload):
                yield chunk
            if decoder.complete:
                break
        for chunk in decoder.finish(done):
            yield chunk
    finally:
        await events.aclose()  # type: ignore[attr-defined]


# -- the clients' common base -----------------------------------------------------------------


class LLMClient(TaskClient):
    """What :class:`~hfrag.tasks.ChatClient` and :class:`~hfrag.tasks.TextGenerationClient`
    share: the target, the connection keyword arguments, ``provider`` and the options."""

    task_kind = "generation"

    def __init__(
        self,
        model: str | None = None,
        endpoint_url: str | None = None,
        *,
        provider: str | None = None,
        options: GenerationOptions | None = None,
        **connection: Unpack[Connection],
    ) -> None:
        if options is not None and not isinstance(options, GenerationOptions):
            raise ConfigurationError(f"options must be GenerationOptions, got {options!r}")
        self.options = options or GenerationOptions()
        target, config = connect(model, endpoint_url, connection)
        self.provider = check_provider(provider, endpoint=target.is_endpoint)
        super().__init__(target, config)

    def _options(
        self, stop: Sequence[str] | str | None, options: GenerationOptions | None
    ) -> GenerationOptions:
        if options is not None and not isinstance(options, GenerationOptions):
            raise ConfigurationError(f"options must be GenerationOptions, got {options!r}")
        return (options or self.options).merged(stop=stop)

    def endpoint_info(self) -> dict[str, Any]:
        """An endpoint's ``GET /info`` (TGI: ``max_input_tokens``, ``max_total_tokens``,
        ``model_id``...), read once; empty for router targets and servers without it."""
        return dict(self.run(self._endpoint_info()))

    async def aendpoint_info(self) -> dict[str, Any]:
        """Async :meth:`endpoint_info`."""
        return dict(await self.arun(self._endpoint_info()))
