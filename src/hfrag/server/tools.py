"""Tool calls and structured output of the ``--models hash`` generator, by a documented rule.

A test double: no model decides here, a rule does, so clients' tool-call parsing can be tested
exactly. ``RuleTools`` wraps a generator (the hashing one in ``default_models``) and answers a
request's ``ChatConstraint`` by this rule, in the answer format of ``chat_format``; a
``--models real`` server never imports this module (its generator decides under a grammar).

When the generator calls tools (``tools`` given, and the last message is not a ``tool`` result):

- ``tool_choice`` names a function (``{"type": "function", "function": {"name"}}``): that one.
- ``tool_choice`` is ``"required"`` (or ``"any"``): the tools the last user message names, else
  the first tool.
- ``tool_choice`` is ``"auto"`` or absent: the tools the last user message names; none named
  means a text answer. ``"none"``: always text.

A message *names* a tool when it contains the tool's name (case-insensitive), or every word of
the name (split at ``_``, ``-`` and camelCase) other than a leading verb such as ``get``. Several
named tools give several calls, in the order of ``tools``. Call ids are ``call_<n>_<index>``.

Arguments are built from the tool's JSON schema and the last user message's text, per property:

- required properties are always filled; optional ones only when the message states them
  (or, for an ``enum``, mentions one of its members);
- a value stated as ``name: value``, ``name = value`` or ``name is value`` is used;
- strings: an ``enum`` member the message mentions, else the first member; else the schema's
  ``default``; else the whole message text;
- integers and numbers: else the numbers in the message, taken in order across the numeric
  properties; else ``default``; else 0. Booleans: else ``default``; else false;
- arrays: ``default`` or ``[]``; objects: built the same way; ``$ref``/``$defs``, ``anyOf`` and
  ``["T", "null"]`` types are followed (the first non-null branch).

``response_format`` with a schema (OpenAI ``json_schema``, or TGI's ``{"type": "json_object" |
"json", "value": schema}``) makes the answer the JSON object built the same way;
``{"type": "json_object"}`` without a schema (or a ``regex``) gives ``{"answer": <the text
answer>}``. The text answer is the wrapped generator's answer to the messages as sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hfrag.server.backends import GenerationParams, message_text
from hfrag.server.chat_format import MESSAGE_PREFIX, ChatConstraint, render_call

__all__ = ["RuleTools", "ToolCallPlan", "build_object", "names_tool", "plan_tool_calls"]

_VERBS = frozenset(
    [
        "get",
        "set",
        "fetch",
        "call",
        "run",
        "do",
        "make",
        "create",
        "find",
        "lookup",
        "look",
        "search",
        "check",
        "compute",
        "calculate",
        "query",
        "list",
        "read",
        "write",
        "send",
    ]
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class ToolCallPlan:
    """One call the generator makes: the function name and its JSON arguments."""

    id: str
    name: str
    arguments: str


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    words = [w.lower() for w in re.split(r"[\s_\-.]+", spaced) if w]
    while len(words) > 1 and words[0] in _VERBS:
        words = words[1:]
    return words


def names_tool(text: str, name: str) -> bool:
    """Whether ``text`` names the tool ``name`` (see the module docstring)."""
    lowered = text.lower()
    if name.lower() in lowered:
        return True
    present = set(re.findall(r"\w+", lowered))
    words = _name_words(name)
    return bool(words) and all(w in present for w in words)


def plan_tool_calls(constraint: ChatConstraint) -> list[ToolCallPlan]:
    """The tool calls the rule makes for a chat request (empty: answer with text)."""
    messages = constraint.messages
    if not constraint.calls_tools:
        return []
    if messages and messages[-1].get("role") == "tool":
        return []  # a tool result came back: answer it in words
    text = _last_user_text(messages)
    functions = list(constraint.tools)
    if constraint.choice not in ("auto", "required"):
        chosen = list(constraint.callable)
    else:
        chosen = [f for f in functions if names_tool(text, f["name"])]
        if not chosen and constraint.choice == "required":
            chosen = [functions[0]]
    numbers = iter(float(n) for n in _NUMBER.findall(text))
    return [
        ToolCallPlan(
            f"call_{i}",
            f["name"],
            json.dumps(build_object(f.get("parameters") or {}, text, numbers), ensure_ascii=False),
        )
        for i, f in enumerate(chosen)
    ]


# -- values from a schema ---------------------------------------------------------------------


def _resolve(schema: Any, defs: Mapping[str, Any]) -> Mapping[str, Any]:
    for _ in range(20):  # follow $ref and pick the first non-null branch, cycles bounded
        if not isinstance(schema, Mapping):
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            schema = defs.get(ref.rsplit("/", 1)[-1], {})
            continue
        branches = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(branches, list) and branches:
            options = [
                b for b in branches if not (isinstance(b, Mapping) and b.get("type") == "null")
            ]
            schema = {
                **{k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")},
                **(options[0] if options and isinstance(options[0], Mapping) else {}),
            }
            continue
        return schema
    return {}


def _kind(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and isinstance(schema.get("properties"), Mapping):
        return "object"
    return kind if isinstance(kind, str) else None


def _stated(name: str, text: str) -> str | None:
    pattern = rf"\b{re.escape(name)}\b\s*(?::|=|\bis\b)\s*(\"[^\"]*\"|'[^']*'|[^,;\n]+)"
    match = re.search(pattern, text, re.IGNORECASE)
    if match is None:
        return None
    value = match.group(1).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value.rstrip(".!?").strip()


def _value(
    name: str,
    schema: Mapping[str, Any],
    text: str,
    numbers: Iterator[float],
    defs: Mapping[str, Any],
    required: bool,
) -> tuple[bool, Any]:
    """``(present, value)`` of one property."""
    schema = _resolve(schema, defs)
    kind = _kind(schema)
    stated = _stated(name, text)
    has_default = "default" in schema
    if kind == "object":
        if not required and stated is None:
            return False, None
        return True, build_object(schema, text, numbers, defs)
    if kind in ("integer", "number"):
        found = _NUMBER.search(stated) if stated is not None else None
        if found is not None:
            number = float(found.group())
        elif not required:
            return False, None
        else:
            number = next(numbers, float(schema["default"]) if has_default else 0.0)
        return True, int(number) if kind == "integer" else number
    if kind == "boolean":
        if stated is not None:
            return True, stated.lower() in ("true", "yes", "1", "on")
        return required, bool(schema.get("default", False))
    if kind == "array":
        return required, list(schema.get("default") or [])
    if kind == "null":
        return required, None
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        mentioned = [e for e in enum if isinstance(e, str) and e.lower() in text.lower()]
        if stated is not None or mentioned or required:
            return True, mentioned[0] if mentioned else enum[0]
        return False, None
    if stated is not None:
        return True, stated
    if not required:
        return False, None
    return True, schema["default"] if has_default else text.strip()


def build_object(
    schema: Any,
    text: str,
    numbers: Iterator[float] | None = None,
    defs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON object the rule builds for an object ``schema`` from ``text``."""
    if defs is None:
        defs = {}
        if isinstance(schema, Mapping):
            defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    if numbers is None:
        numbers = iter(float(n) for n in _NUMBER.findall(text))
    schema = _resolve(schema, defs)
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    required = schema.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    out: dict[str, Any] = {}
    for name, prop in properties.items():
        present, value = _value(name, prop, text, numbers, defs, name in required_names)
        if present:
            out[name] = value
    return out


def structured_answer(constraint: ChatConstraint, answer: str) -> str | None:
    """The JSON text ``response_format`` asks for, or None when it asks for nothing."""
    if constraint.schema is not None:
        return json.dumps(
            build_object(constraint.schema, _last_user_text(constraint.messages)),
            ensure_ascii=False,
        )
    if constraint.json_object or constraint.pattern is not None:
        return json.dumps({"answer": answer}, ensure_ascii=False)
    return None


_PIECES = re.compile(r"\s*\S+")


class RuleTools:
    """A generator that answers tools and ``response_format`` by the rule of this module.

    Requests without them go to the wrapped generator unchanged. Example::

        RuleTools(HashingBackend())   # the --models hash generator
    """

    tool_calls = "rule"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        inner_runtime = getattr(inner, "runtime", None) or type(inner).__name__
        self.runtime = f"RuleTools({inner_runtime})"

    def __repr__(self) -> str:
        return f"RuleTools({self.inner!r})"

    def tokenize(self, text: str) -> list[str]:
        """The wrapped generator's tokens."""
        tokens: list[str] = self.inner.tokenize(text)
        return tokens

    def truncate_text(self, text: str, max_tokens: int, direction: str = "right") -> str:
        """The wrapped generator's truncation."""
        cut: str = self.inner.truncate_text(text, max_tokens, direction)
        return cut

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The wrapped generator's prompt."""
        prompt: str = self.inner.render_chat(messages)
        return prompt

    def _text_answer(self, constraint: ChatConstraint, params: GenerationParams) -> str:
        plain = GenerationParams(max_new_tokens=params.max_new_tokens)
        prompt = self.inner.render_chat(list(constraint.messages))
        return "".join(self.inner.generate_tokens(prompt, plain))

    def generate_tokens(self, prompt: str, params: GenerationParams) -> Iterator[str]:
        """The rule's answer to ``params.constraint`` in ``chat_format``'s answer format."""
        constraint = params.constraint
        if constraint is None:
            yield from self.inner.generate_tokens(prompt, params)
            return
        plans = plan_tool_calls(constraint)
        for i, plan in enumerate(plans):
            yield ("\n" if i else "") + render_call(plan.name, "")
            step = max(1, -(-len(plan.arguments) // 3))  # the arguments in three pieces
            for start in range(0, len(plan.arguments), step):
                yield plan.arguments[start : start + step]
        if plans:
            return
        answer = self._text_answer(constraint, params)
        text = structured_answer(constraint, answer.strip())
        if constraint.calls_tools:
            yield MESSAGE_PREFIX
        yield from _PIECES.findall(answer if text is None else text)
