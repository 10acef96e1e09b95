"""Tool calls and structured output of the deterministic generator, by a documented rule.

No model decides here; a rule does, so clients' tool-call parsing can be tested exactly.

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
``{"type": "json_object"}`` without a schema gives ``{"answer": <the text answer>}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hfrag.server.backends import message_text
from hfrag.server.validation import ApiError

__all__ = ["ToolCallPlan", "build_object", "plan_tool_calls", "structured_answer"]

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


def _invalid(message: str) -> ApiError:
    return ApiError(
        422, {"error": f"Input validation error: {message}", "error_type": "validation"}
    )


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


def _tools(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _invalid("`tools` must be a list")
    functions = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _invalid('each tool must be {"type": "function", "function": {"name", ...}}')
        functions.append(function)
    return functions


def plan_tool_calls(
    body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], seq: int
) -> list[ToolCallPlan]:
    """The tool calls the rule makes for a chat request (empty: answer with text)."""
    functions = _tools(body)
    choice = body.get("tool_choice")
    if not functions or choice == "none":
        if isinstance(choice, Mapping):
            raise _invalid("`tool_choice` names a function but no `tools` were given")
        return []
    if messages and messages[-1].get("role") == "tool":
        return []  # a tool result came back: answer it in words
    text = _last_user_text(messages)
    by_name = {f["name"]: f for f in functions}
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        if name not in by_name:
            raise _invalid(f"`tool_choice` names {name!r}, which is not in `tools`")
        chosen = [by_name[name]]
    else:
        if choice not in (None, "auto", "required", "any"):
            raise _invalid(f"`tool_choice` must be auto, none, required or a function: {choice!r}")
        chosen = [f for f in functions if names_tool(text, f["name"])]
        if not chosen and choice in ("required", "any"):
            chosen = [functions[0]]
    numbers = iter(float(n) for n in _NUMBER.findall(text))
    return [
        ToolCallPlan(
            f"call_{seq}_{i}",
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


def structured_answer(
    body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], answer: str
) -> str | None:
    """The JSON text ``response_format`` asks for, or None when it asks for nothing."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping) or not isinstance(fmt.get("type"), str):
        raise _invalid('`response_format` must be an object with a "type"')
    kind = fmt["type"]
    schema: Any = None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
            raise _invalid('`response_format` "json_schema" needs {"json_schema": {"schema"}}')
        schema = spec["schema"]
    elif kind in ("json_object", "json", "regex", "text"):
        schema = fmt.get("value")
    else:
        raise _invalid(f"unknown `response_format` type {kind!r}")
    if kind == "text":
        return None
    if isinstance(schema, Mapping):
        return json.dumps(build_object(schema, _last_user_text(messages)), ensure_ascii=False)
    return json.dumps({"answer": answer}, ensure_ascii=False)
