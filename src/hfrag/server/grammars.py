"""llama.cpp grammars for a chat request's ``ChatConstraint`` (the real generator's decoding).

Under ``--models real`` the model decides a constrained answer itself, token by token, while
llama.cpp masks every token the grammar does not allow (GBNF; the JSON-schema translation is
llama-cpp-python's ``llama_grammar.SchemaConverter``, as its own server uses for
``response_format`` and tool calls):

- ``response_format`` with a schema: the grammar of that schema, so every complete answer
  parses and validates against it; ``json_object`` without one: any JSON object (llama.cpp's
  ``json.gbnf``); TGI's ``regex``: text matching the pattern;
- tools with ``tool_choice="auto"``: the model's first tokens choose, under
  ``decision_grammar``, between ``"message:\\n"`` and ``"functions.<name>:\\n"`` for one of the
  tools (the answer format of ``chat_format``); then a message is decoded freely (or under
  ``response_format``'s grammar), a call's arguments under that tool's ``parameters`` schema;
- ``"required"`` or a named function: ``call_grammar``, a call of one of the tools (or of the
  named one) with arguments following its schema.

An answer cut by ``max_tokens`` stops mid-grammar, as it would on any server.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hfrag.server.chat_format import CALL_PREFIX, MESSAGE_PREFIX, ChatConstraint

__all__ = ["answer_grammar", "arguments_grammar", "call_grammar", "decision_grammar"]

_EMPTY_OBJECT: Mapping[str, Any] = {"type": "object", "properties": {}}
#: Free text: any characters (the model ends it with its end-of-turn token).
_FREE_TEXT = "[^\\x00]*"


def _converter(raw_pattern: bool = False) -> Any:
    from llama_cpp.llama_grammar import SchemaConverter

    make: Any = SchemaConverter  # untyped in llama-cpp-python
    return make(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=raw_pattern)


def _answer_rule(converter: Any, constraint: ChatConstraint, name: str) -> str:
    """The rule of a non-call answer: the schema's, any JSON object, a regex, or free text
    (``name`` "" makes it the root rule)."""
    if constraint.schema is not None:
        schema = converter.resolve_refs(copy.deepcopy(dict(constraint.schema)), "response")
        return str(converter.visit(schema, name))
    if constraint.json_object:
        return str(converter.visit({"type": "object"}, name))
    if constraint.pattern is not None:
        pattern = constraint.pattern
        pattern = pattern if pattern.startswith("^") else "^" + pattern
        pattern = pattern if pattern.endswith("$") else pattern + "$"
        return str(converter._visit_pattern(pattern, name or "root"))
    return str(converter._add_rule(name or "root", _FREE_TEXT))


def answer_grammar(constraint: ChatConstraint) -> str | None:
    """The grammar of an answer in words: ``response_format``'s, or None (free text)."""
    if constraint.schema is None and not constraint.json_object and constraint.pattern is None:
        return None
    converter = _converter(raw_pattern=constraint.pattern is not None)
    _answer_rule(converter, constraint, "")
    return str(converter.format_grammar())


def call_grammar(constraint: ChatConstraint) -> str:
    """The grammar of one call: ``functions.``, a callable tool's name, ``:\n``, its arguments."""
    converter = _converter()
    calls = []
    for i, function in enumerate(constraint.callable):
        parameters = function.get("parameters") or _EMPTY_OBJECT
        schema = converter.resolve_refs(copy.deepcopy(dict(parameters)), f"tool{i}")
        rule = converter.visit(schema, f"tool{i}-arguments")
        calls.append(f"{converter._format_literal(str(function['name']) + ':' + chr(10))} {rule}")
    converter._add_rule("root", f"{converter._format_literal(CALL_PREFIX)} ({' | '.join(calls)})")
    return str(converter.format_grammar())


def decision_grammar(constraint: ChatConstraint) -> str:
    """The grammar of the first words of an ``auto`` answer: ``message:\n`` or a call's head.

    Free text under a grammar is slow in llama.cpp (every token of the vocabulary must be
    checked against it), so, as llama-cpp-python's ``chatml-function-calling`` does, the
    model's choice is made under this small grammar and the rest decoded after it: free
    text without a grammar, a call's arguments under that tool's schema."""
    converter = _converter()
    names = " | ".join(
        converter._format_literal(str(f["name"]) + ":\n") for f in constraint.callable
    )
    message, call = (
        converter._format_literal(MESSAGE_PREFIX),
        converter._format_literal(CALL_PREFIX),
    )
    converter._add_rule("root", f"{message} | {call} ({names})")
    return str(converter.format_grammar())


def arguments_grammar(constraint: ChatConstraint, name: str) -> str:
    """The grammar of the arguments of the callable tool ``name`` (its ``parameters``)."""
    function = next(f for f in constraint.callable if f["name"] == name)
    converter = _converter()
    parameters = function.get("parameters") or _EMPTY_OBJECT
    converter.visit(converter.resolve_refs(copy.deepcopy(dict(parameters)), "tool"), "")
    return str(converter.format_grammar())
