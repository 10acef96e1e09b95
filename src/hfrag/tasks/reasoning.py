"""A reasoning model's reasoning, kept apart from its answer, in every form servers send it.

Servers send a reasoning model's chain of thought in one of three forms (docs/PROTOCOL.md,
section 8 and "Reasoning"):

- ``reasoning_content`` beside ``content``, in the message and in each stream delta (vLLM before
  0.11, SGLang, DeepSeek, many router providers);
- ``reasoning`` in the same places (vLLM since 0.11, the router's own schema in huggingface_hub's
  ``ChatCompletionOutputMessage`` / ``ChatCompletionStreamOutputDelta``);
- inline, as a leading ``<think>...</think>`` in ``content`` (Qwen3 and DeepSeek-R1 served by
  TGI, or by vLLM without a reasoning parser), and so in TGI ``/generate`` text too.

:func:`message_reasoning` reads the two fields; :class:`ThinkSplitter` splits the inline form,
whole or streamed (a tag may arrive split across chunks: text that may be the start of a tag
is held back until the next chunk decides). Only a *leading* ``<think>`` (after optional
whitespace) opens reasoning; the answer after ``</think>`` loses its leading whitespace, so a
split stream and a split whole answer give the same text. An unterminated ``<think>`` (the
answer was cut by its token limit) is all reasoning. Splitting can be turned off
(``GenerationOptions(split_reasoning=False)``); the text then stays as the server sent it.

:func:`outgoing_messages` applies the ``send_reasoning`` setting to a conversation: by default
an assistant turn's reasoning is not sent back, as the router's input message schema has no
reasoning field (huggingface_hub ``ChatCompletionInputMessage``: role, content, name,
tool_calls). DeepSeek's thinking mode is the known exception: after a tool call it answers 400
``The "reasoning_content" in the thinking mode must be passed back to the API`` (reported by
its users, e.g. NousResearch/hermes-agent#17212, anomalyco/opencode#25058);
:func:`wants_reasoning_back` recognises that answer, and the chat client then resends the
conversation with the reasoning kept, and keeps it for later calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLOSE_TAG",
    "OPEN_TAG",
    "REASONING_FIELDS",
    "ReasoningDelta",
    "ReasoningReader",
    "ThinkSplitter",
    "answer_reasoning",
    "message_reasoning",
    "outgoing_messages",
    "split_think",
    "wants_reasoning_back",
]

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
#: The fields servers put reasoning in, in the order they are read.
REASONING_FIELDS = ("reasoning_content", "reasoning")


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of a reasoning model's reasoning (never part of the answer text)."""

    text: str


def message_reasoning(message: Mapping[str, Any]) -> str | None:
    """The reasoning a message or stream delta carries in a field, or None (also for "")."""
    for name in REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _prefix_held(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkSplitter:
    """Splits a leading ``<think>...</think>`` from answer text, whole or piece by piece.

    ``feed(text)`` returns ``(reasoning, answer)`` for what can be decided now; ``flush()``
    what was held back once the text is complete. ``enabled=False`` passes text through.
    """

    __slots__ = ("_buffer", "_state")

    def __init__(self, enabled: bool = True) -> None:
        self._state = "start" if enabled else "answer"
        self._buffer = ""

    def feed(self, text: str) -> tuple[str, str]:
        if self._state == "answer":
            return "", text
        if not text:
            return "", ""
        buffer = self._buffer + text
        self._buffer = ""
        reasoning = answer = ""
        if self._state == "start":
            head = buffer.lstrip()
            if len(head) < len(OPEN_TAG) and OPEN_TAG.startswith(head):
                self._buffer = buffer  # still may open a tag
                return "", ""
            if not head.startswith(OPEN_TAG):
                self._state = "answer"
                return "", buffer
            self._state = "think"
            buffer = head[len(OPEN_TAG) :]
        if self._state == "think":
            end = buffer.find(CLOSE_TAG)
            if end < 0:
                held = _prefix_held(buffer, CLOSE_TAG)
                self._buffer = buffer[len(buffer) - held :] if held else ""
                return buffer[: len(buffer) - held], ""
            reasoning, buffer = buffer[:end], buffer[end + len(CLOSE_TAG) :]
            self._state = "after"
        if self._state == "after":
            buffer = buffer.lstrip()
            if buffer:
                self._state = "answer"
                answer = buffer
        return reasoning, answer

    def flush(self) -> tuple[str, str]:
        held, self._buffer = self._buffer, ""
        if self._state == "start":
            self._state = "answer"
            return "", held
        if self._state == "think":
            return held, ""
        return "", ""

    def split(self, text: str) -> tuple[str, str]:
        """Whole-text form: ``(reasoning, answer)`` of a complete text."""
        r1, a1 = self.feed(text)
        r2, a2 = self.flush()
        return r1 + r2, a1 + a2


def split_think(text: str, enabled: bool = True) -> tuple[str | None, str]:
    """``(reasoning or None, answer)`` of a whole answer text (see :class:`ThinkSplitter`)."""
    reasoning, answer = ThinkSplitter(enabled).split(text)
    opened = enabled and text.lstrip().startswith(OPEN_TAG)
    return (reasoning if opened and reasoning else None), answer


_WANTS_BACK = re.compile(r"reasoning_content\W*(?:in the thinking mode )?must be passed", re.I)


def wants_reasoning_back(message: str, messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a refusal asks for the reasoning of earlier turns, and this conversation has
    some to send."""
    has = any(name in m for m in messages for name in REASONING_FIELDS)
    return has and bool(_WANTS_BACK.search(message))


def outgoing_messages(messages: Sequence[dict[str, Any]], send: bool) -> list[dict[str, Any]]:
    """``messages`` as sent: assistant turns keep their reasoning fields only when ``send``.

    Reasoning kept is sent as the field it came in (``reasoning_content`` or ``reasoning``).
    """
    if send:
        return list(messages)
    out = []
    for message in messages:
        if any(name in message for name in REASONING_FIELDS):
            message = {k: v for k, v in message.items() if k not in REASONING_FIELDS}
        out.append(message)
    return out


def answer_reasoning(field: str | None, thought: str | None) -> str | None:
    """The reasoning of a whole answer: the field's, then any inline ``<think>`` text."""
    if thought is None:
        return field
    return (field or "") + thought


class ReasoningReader:
    """The reasoning and answer text of stream deltas: the reasoning fields as they come, and
    the content through a :class:`ThinkSplitter` (a tag split across chunks is held back)."""

    __slots__ = ("_splitter",)

    def __init__(self, split: bool = True) -> None:
        self._splitter = ThinkSplitter(split)

    def feed(self, delta: Mapping[str, Any], content: str) -> tuple[list[ReasoningDelta], str]:
        """``(reasoning deltas, answer text)`` of one delta whose content text is ``content``."""
        out = []
        field = message_reasoning(delta)
        if field:
            out.append(ReasoningDelta(field))
        thought, answer = self._splitter.feed(content)
        if thought:
            out.append(ReasoningDelta(thought))
        return out, answer

    def flush(self) -> tuple[list[ReasoningDelta], str]:
        """What was held back, once the answer ended."""
        thought, answer = self._splitter.flush()
        return ([ReasoningDelta(thought)] if thought else []), answer
