"""Streamed chat completions: chunks to typed chunks, the one tool-call merge rule, the end rule.

**Tool-call deltas** (:class:`ToolCallMerger`) are keyed by the wire ``index`` *and* ``id``:

- a delta whose ``id`` is new opens a new call, even at an ``index`` another call used (Ollama,
  SGLang and Bedrock send every call at ``index: 0``, each with its own id); a delta without an
  id (or with the id of its index's call) continues the latest call at its index, or the latest
  call when it has no index; an id sent after its call's first delta is adopted by that call;
- an ``id`` sent as a number (TGI 1.4 sends ``"id": 0``) is an id;
- a ``function.name`` is sent once per call: a delta repeating the name so far (some servers
  repeat it in every delta) adds nothing, so no consumer can double it;
- ``arguments`` fragments concatenate in order; an object (TGI) is its JSON text.

The :class:`~hfrag.tasks.generation.ToolCallDelta` chunks this gives carry the call's own
``index`` (0, 1, ... in order of appearance), so every consumer (``collect``, LangChain's chunk
merging, LlamaIndex's stream) merges them by ``index`` alone and gets the same calls.

**The end of a stream** (:meth:`ChatStreamDecoder.finish`): an answer is whole once a chunk of
choice 0 carries a ``finish_reason``. TGI never sends one on a streamed tool call; a stream that
ends with ``data: [DONE]`` after tool calls whose arguments all parse is whole, with
``finish_reason="tool_calls"``; ended any other way it was cut. A stream is :attr:`complete`
as soon as the finish and the usage asked for (``stream_options.include_usage``) have both
arrived, so a server that then holds the connection open without ``[DONE]`` costs no wait.

**Other shapes**: a server that ignores ``stream: true`` and answers one JSON completion gives
that whole answer as chunks; chunks of another choice (``n > 1``) are not mixed into choice 0;
a ``choices`` or ``function`` of the wrong type is a :class:`MalformedResponseError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hfrag.errors import MalformedResponseError
from hfrag.tasks.chat_wire import content_text, decode_chat, decode_usage, normalize_finish
from hfrag.tasks.generation import (
    Chunk,
    Finish,
    StopTrimmer,
    TextDelta,
    ToolCallDelta,
    parse_arguments,
    stream_cut,
)
from hfrag.tasks.logprobs import LogprobsDelta, chat_logprobs
from hfrag.tasks.reasoning import ReasoningDelta, ReasoningReader
from hfrag.transport.urls import redact_url

__all__ = ["ChatStreamDecoder", "ToolCallMerger"]


def _malformed(url: str, what: str) -> MalformedResponseError:
    return MalformedResponseError(f"chat completion stream {what}", status=200, url=redact_url(url))


def _call_id(value: Any) -> str | None:
    """A tool-call id: a non-empty string, or an integer (TGI 1.4's ``0`` included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


@dataclass
class _Call:
    wire_index: int | None
    id: str | None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallMerger:
    """The one merge rule for streamed tool-call deltas (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._calls: list[_Call] = []
        self._by_id: dict[str, int] = {}
        self._at_index: dict[int, int] = {}

    @property
    def calls(self) -> int:
        """How many calls the stream has opened."""
        return len(self._calls)

    def arguments_parse(self) -> bool:
        """Whether every call's arguments so far are a JSON object (an empty text counts)."""
        return all(parse_arguments("".join(c.arguments))[0] is not None for c in self._calls)

    def feed(self, value: Any) -> list[ToolCallDelta]:
        """The deltas of one chunk's ``tool_calls`` (a list, or one object)."""
        if value is None:
            return []
        items = [value] if isinstance(value, Mapping) else value
        if not isinstance(items, list):
            raise _malformed(self._url, "has tool_calls that are not a list")
        return [self._one(item) for item in items]

    def _one(self, item: Any) -> ToolCallDelta:
        if not isinstance(item, Mapping):
            raise _malformed(self._url, "has a tool call that is not an object")
        function = item.get("function")
        if function is None:
            function = {}
        if not isinstance(function, Mapping):
            raise _malformed(
                self._url,
                f"has a tool call whose function is {type(function).__name__}, not an object",
            )
        index = item.get("index")
        wire_index = index if isinstance(index, int) and not isinstance(index, bool) else None
        call_id = _call_id(item.get("id"))
        number, opened = self._find(wire_index, call_id)
        call = self._calls[number]
        name = function.get("name")
        new_name = None
        if isinstance(name, str) and name and name != call.name:
            call.name += name  # a fragment (or the first name); a repeat adds nothing
            new_name = name
        arguments = function.get("arguments")
        if isinstance(arguments, Mapping):
            arguments = json.dumps(arguments)
        fragment = arguments if isinstance(arguments, str) else ""
        call.arguments.append(fragment)
        return ToolCallDelta(number, call.id if opened else None, new_name, fragment)

    def _find(self, wire_index: int | None, call_id: str | None) -> tuple[int, bool]:
        """The call a delta belongs to, and whether the delta is the first to name its id."""
        if call_id is not None and call_id in self._by_id:
            return self._by_id[call_id], False
        latest = self._at_index.get(wire_index) if wire_index is not None else None
        if latest is None and wire_index is None and self._calls:
            latest = len(self._calls) - 1
        if latest is not None and (call_id is None or self._calls[latest].id is None):
            if call_id is not None:  # the id came after the call's first delta
                self._calls[latest].id = call_id
                self._by_id[call_id] = latest
                return latest, True
            return latest, False
        number = len(self._calls)
        self._calls.append(_Call(wire_index, call_id))
        if wire_index is not None:
            self._at_index[wire_index] = number
        if call_id is not None:
            self._by_id[call_id] = number
        return number, True


class ChatStreamDecoder:
    """Chat-completion chunks to typed chunks (see the module docstring)."""

    def __init__(
        self, url: str, stop: Sequence[str] = (), prefix: str = "", split: bool = True
    ) -> None:
        self._url = url
        self._stop = tuple(stop)
        self._split = split
        self._trim = StopTrimmer(stop)
        self._reasoning = ReasoningReader(split)
        self._prefix = prefix
        self._finished = False
        self._usage_after_finish = False
        self._tools = ToolCallMerger(url)
        self._model: str | None = None

    @property
    def complete(self) -> bool:
        """Whether the answer is whole: its finish and its usage have both arrived."""
        return self._finished and self._usage_after_finish

    def feed(self, payload: Any) -> list[Chunk]:
        if not isinstance(payload, Mapping):
            raise _malformed(self._url, f"chunk is {type(payload).__name__}, not an object")
        out: list[Chunk] = []
        if self._prefix:
            out.append(TextDelta(self._prefix))
            self._prefix = ""
        model = payload.get("model")
        if isinstance(model, str) and model:
            self._model = model
        choice = self._first_choice(payload.get("choices"))
        if choice is not None and "delta" not in choice and "message" in choice:
            return out + self._whole(payload)
        if choice is not None and not self._finished:
            out += self._delta(choice)
        usage = decode_usage(payload.get("usage"))
        if usage is not None:
            out.append(usage)
            self._usage_after_finish = self._finished
        return out

    def _first_choice(self, choices: Any) -> Mapping[str, Any] | None:
        """Choice 0 of a chunk (another choice's chunk gives None); refused if not a list."""
        if choices is None:
            return None
        if not isinstance(choices, list):
            raise _malformed(self._url, f"chunk has choices of type {type(choices).__name__}")
        for choice in choices:
            if not isinstance(choice, Mapping):
                raise _malformed(self._url, "chunk has a choice that is not an object")
            index = choice.get("index", 0)
            if index == 0 or index is None:
                return choice
        return None

    def _delta(self, choice: Mapping[str, Any]) -> list[Chunk]:
        out: list[Chunk] = []
        delta = choice.get("delta")
        if delta is None:
            delta = {}
        if not isinstance(delta, Mapping):
            raise _malformed(self._url, "chunk has a delta that is not an object")
        thoughts, answer = self._reasoning.feed(
            delta, content_text(delta.get("content"), self._url)
        )
        out += thoughts
        text = self._trim.feed(answer)
        if text:
            out.append(TextDelta(text))
        logprobs = chat_logprobs(choice)
        if logprobs:
            out.append(LogprobsDelta(logprobs))
        out += self._tools.feed(delta.get("tool_calls"))
        reason = choice.get("finish_reason")
        if reason is not None:
            out += self._finish(normalize_finish(reason) or "stop", str(reason))
        return out

    def _finish(self, reason: str, raw: str | None) -> list[Chunk]:
        thoughts, answer = self._reasoning.flush()
        out: list[Chunk] = [*thoughts]
        rest = self._trim.feed(answer) + self._trim.flush()
        if rest:
            out.append(TextDelta(rest))
        out.append(Finish(reason, raw, self._model))
        self._finished = True
        return out

    def _whole(self, payload: Mapping[str, Any]) -> list[Chunk]:
        """A whole completion where chunks were asked for: the same answer, as chunks."""
        if self._finished:
            raise _malformed(self._url, "sent a whole completion after the answer had ended")
        out = decode_chat(payload, self._url, self._stop, split=self._split)
        chunks: list[Chunk] = [ReasoningDelta(out.reasoning)] if out.reasoning else []
        chunks += [TextDelta(out.text)] if out.text else []
        if out.logprobs:
            chunks.append(LogprobsDelta(out.logprobs))
        chunks += [
            ToolCallDelta(self._tools.calls + i, c.id, c.name, c.raw_arguments)
            for i, c in enumerate(out.tool_calls)
        ]
        chunks.append(
            Finish(out.finish_reason or "stop", out.raw_finish_reason, out.model or self._model)
        )
        self._finished = True
        if out.usage is not None:
            chunks.append(out.usage)
            self._usage_after_finish = True
        return chunks

    def finish(self, done: bool = False) -> list[Chunk]:
        """What the stream's end adds; ``done``: it ended with ``data: [DONE]``."""
        if self._finished:
            return []
        if self._tools.calls and done and self._tools.arguments_parse():
            return self._finish("tool_calls", None)  # TGI: no finish_reason on tool calls
        if self._tools.calls and not done:
            raise stream_cut(self._url, "tool calls without a finish_reason, and no [DONE]")
        if self._tools.calls:
            raise stream_cut(self._url, "tool-call arguments that are not whole JSON")
        raise stream_cut(self._url, "no chunk carried a finish_reason")
