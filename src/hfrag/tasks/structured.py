"""Structured output on every chat server: the native form first, then a forced tool call,
then JSON-mode prompting, each step taken only when the server says it cannot do the last.

:meth:`hfrag.tasks.ChatClient.structured` asks for an answer matching a JSON schema:

1. ``json_schema``: ``response_format`` in the server's native form (OpenAI ``{"type":
   "json_schema", "json_schema": {"name", "schema", "strict"?}}``, TGI ``{"type": "json_object",
   "value": schema}``), the answer's ``content`` being the JSON.
2. ``function_calling``: when the server answers that it does not take ``response_format``
   (:func:`refuses`), one tool whose parameters are the schema, forced with ``tool_choice``; the
   call's arguments are the JSON.
3. ``json_mode``: when it does not take tools either, the schema in a system instruction and
   the answer's ``content`` read as JSON (a fenced code block is unwrapped).

The step that worked is remembered per client, so later calls start there.
:meth:`StructuredAnswer.value` parses the JSON text: one that is not a JSON object raises
:class:`StructuredOutputError` with the raw text attached; checking it against the schema
(pydantic, TypedDict, JSON schema: :mod:`hfrag._fields.structured`) raises the same error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hfrag.errors import HfragError, InferenceError
from hfrag.tasks.generation import GenerationOutput

__all__ = [
    "FORMS",
    "Form",
    "StructuredAnswer",
    "StructuredOutputError",
    "StructuredSpec",
    "instruction",
    "parse_object",
    "read_answer",
    "refuses",
]

Form = Literal["json_schema", "function_calling", "json_mode"]
FORMS: tuple[Form, ...] = ("json_schema", "function_calling", "json_mode")

# How servers say they cannot take a request field (OpenAI and vLLM "not supported", TGI's
# serde "unknown variant", gateways' "unsupported parameter").
_CANNOT = ("not support", "unsupported", "unknown variant", "not available", "not allowed")
_WORDS: dict[Form, tuple[str, ...]] = {
    "json_schema": ("response_format", "json_schema", "grammar", "structured output"),
    "function_calling": ("tool", "function"),
    "json_mode": (),
}
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


class StructuredOutputError(HfragError, ValueError):
    """An answer that is not the structured output asked for; ``raw`` is the model's text."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(f"{message}; the model's answer was: {raw[:300]!r}")
        self.raw = raw


@dataclass(frozen=True)
class StructuredSpec:
    """What to ask for: a JSON schema, its name (the tool's, the format's) and ``strict``."""

    schema: Mapping[str, Any]
    name: str = "response"
    description: str | None = None
    strict: bool | None = None

    def response_format(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "schema": dict(self.schema)}
        if self.description:
            spec["description"] = self.description
        if self.strict is not None:
            spec["strict"] = self.strict
        return {"type": "json_schema", "json_schema": spec}

    def tool(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "parameters": dict(self.schema)}
        if self.description:
            function["description"] = self.description
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class StructuredAnswer:
    """The answer, the form that produced it, and the text that should be the JSON object."""

    output: GenerationOutput
    form: Form
    text: str

    def value(self) -> dict[str, Any]:
        """The JSON object, or :class:`StructuredOutputError` (``raw`` the text)."""
        return parse_object(self.text)


def parse_object(text: str) -> dict[str, Any]:
    """``text`` as a JSON object (a fenced code block unwrapped), or StructuredOutputError."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise StructuredOutputError("the answer is not JSON", text) from None
    if not isinstance(value, dict):
        raise StructuredOutputError("the answer is JSON but not an object", text)
    return value


def refuses(error: InferenceError, form: Form) -> bool:
    """Whether ``error`` is the server saying it cannot take ``form`` (not a bad input)."""
    if error.status not in (400, 404, 422, 501):
        return False
    body = error.body if isinstance(error.body, Mapping) else {}
    detail = body.get("error") if isinstance(body.get("error"), Mapping) else body
    param = str(detail.get("param") or "").lower() if isinstance(detail, Mapping) else ""
    text = f"{error.message} {param}".lower()
    words = _WORDS[form]
    named = any(w in text for w in words)
    return named and (any(c in text for c in _CANNOT) or param in words)


def instruction(spec: StructuredSpec) -> str:
    """The JSON-mode system instruction."""
    return (
        "Answer with one JSON object that matches this JSON schema, and nothing else (no "
        f"prose, no code fence):\n{json.dumps(dict(spec.schema), separators=(',', ':'))}"
    )


def with_instruction(messages: list[dict[str, Any]], spec: StructuredSpec) -> list[dict[str, Any]]:
    """``messages`` with the JSON-mode instruction in the (first) system message."""
    text = instruction(spec)
    if messages and messages[0].get("role") == "system" and isinstance(messages[0]["content"], str):
        first = dict(messages[0], content=f"{messages[0]['content']}\n\n{text}")
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def read_answer(output: GenerationOutput, form: Form, spec: StructuredSpec) -> StructuredAnswer:
    """The text of an answer in ``form`` that should be the JSON object: the forced tool
    call's arguments, else the content (what the model said instead, if it called no tool)."""
    text = output.text
    if form == "function_calling":
        calls = [c for c in output.tool_calls if c.name == spec.name] or list(output.tool_calls)
        if calls:
            text = calls[0].raw_arguments
    return StructuredAnswer(output, form, text)
