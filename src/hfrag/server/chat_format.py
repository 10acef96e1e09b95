"""Tools and ``response_format`` of a chat request: what the answer must be, and reading it back.

A chat request with ``tools`` or ``response_format`` is handed to the generator as a
``ChatConstraint`` (in ``GenerationParams.constraint``); the generator decides what to answer
(llama.cpp under a grammar built from it, the ``--models hash`` rule wrapper by its rule), and
the chat route reads the answer back with ``AnswerReader``, token by token as it streams.

The answer format for tools is llama-cpp-python's ``chatml-function-calling`` chat format
(``llama_cpp/llama_chat_format.py``), made for ChatML models such as SmolLM2: the system message
lists the functions with their JSON schemas, and the assistant answers either

    message:
    <the answer in words>

or one or more calls, each ``functions.<name>:`` and a newline, then its arguments as JSON::

    functions.get_weather:
    {"location": "Paris"}

Earlier calls in the conversation are shown to the model in the same form, and tool results as
``tool`` messages. With ``response_format`` alone the answer is the JSON itself (no prefix).

Parsing and validation of the request fields (TGI's 422 ``validation`` errors) live here too, so
every generator sees the same checked constraint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hfrag.server.backends import message_text
from hfrag.server.validation import ApiError

__all__ = [
    "CALL_PREFIX",
    "MESSAGE_PREFIX",
    "AnswerReader",
    "ChatConstraint",
    "Piece",
    "parse_constraint",
    "prompt_messages",
    "render_call",
]

MESSAGE_PREFIX = "message:\n"
CALL_PREFIX = "functions."


def _invalid(message: str) -> ApiError:
    return ApiError(
        422, {"error": f"Input validation error: {message}", "error_type": "validation"}
    )


@dataclass(frozen=True)
class ChatConstraint:
    """What a chat answer may be.

    Attributes:
        tools: the functions offered (each ``{"name", "description"?, "parameters"?}``).
        choice: ``auto`` (answer or call), ``required`` (call one of ``tools``), ``none``
            (answer in words), or the name of the one function to call.
        schema: the JSON schema of ``response_format`` (None: no schema).
        json_object: ``response_format`` asks for a JSON object (with or without ``schema``).
        pattern: TGI's ``{"type": "regex", "value"}``: the answer matches this regex.
        messages: the request's messages as sent (for a generator that reads them itself).
    """

    tools: tuple[Mapping[str, Any], ...] = ()
    choice: str = "auto"
    schema: Mapping[str, Any] | None = None
    json_object: bool = False
    pattern: str | None = None
    messages: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)

    @property
    def calls_tools(self) -> bool:
        """Whether the answer may (or must) be a tool call."""
        return bool(self.tools) and self.choice != "none"

    @property
    def callable(self) -> tuple[Mapping[str, Any], ...]:
        """The functions the answer may call (the named one alone when one is named)."""
        if self.choice in ("auto", "required", "none"):
            return self.tools if self.choice != "none" else ()
        return tuple(f for f in self.tools if f["name"] == self.choice)

    @property
    def must_call(self) -> bool:
        """Whether the answer must be a call (``required`` or a named function)."""
        return self.calls_tools and self.choice != "auto"


def _functions(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
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


def _choice(body: Mapping[str, Any], names: Sequence[str]) -> str:
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        if not names:
            raise _invalid("`tool_choice` names a function but no `tools` were given")
        if name not in names:
            raise _invalid(f"`tool_choice` names {name!r}, which is not in `tools`")
        return str(name)
    if choice is None:
        return "auto"
    if choice == "any":  # Anthropic's and LangChain's word for required
        return "required"
    if choice not in ("auto", "required", "none"):
        raise _invalid(f"`tool_choice` must be auto, none, required or a function: {choice!r}")
    return str(choice)


def _response_format(body: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, bool, str | None]:
    """``(schema, json_object, pattern)`` of ``response_format``."""
    fmt = body.get("response_format")
    if fmt is None:
        return None, False, None
    if not isinstance(fmt, Mapping) or not isinstance(fmt.get("type"), str):
        raise _invalid('`response_format` must be an object with a "type"')
    kind = fmt["type"]
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
            raise _invalid('`response_format` "json_schema" needs {"json_schema": {"schema"}}')
        return spec["schema"], True, None
    if kind in ("json_object", "json"):  # TGI's forms carry the schema in "value"
        value = fmt.get("value")
        return (value if isinstance(value, Mapping) else None), True, None
    if kind == "regex":
        value = fmt.get("value")
        if not isinstance(value, str):
            raise _invalid('`response_format` "regex" needs a string "value"')
        return None, False, value
    if kind == "text":
        return None, False, None
    raise _invalid(f"unknown `response_format` type {kind!r}")


def parse_constraint(
    body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]
) -> ChatConstraint | None:
    """The checked constraint of a chat request body (None: a free answer)."""
    functions = _functions(body)
    choice = _choice(body, [f["name"] for f in functions])
    schema, json_object, pattern = _response_format(body)
    if not functions and not json_object and pattern is None:
        return None
    return ChatConstraint(
        tools=tuple(functions),
        choice=choice,
        schema=schema,
        json_object=json_object,
        pattern=pattern,
        messages=tuple(messages),
    )


def render_call(name: str, arguments: str) -> str:
    """One call as the model writes it: ``functions.NAME:``, a newline, the arguments."""
    return f"{CALL_PREFIX}{name}:\n{arguments}"


def _tool_listing(functions: Sequence[Mapping[str, Any]]) -> str:
    listed = "".join(
        f"\nfunctions.{f['name']}:\n"
        + (f"{f['description']}\n" if f.get("description") else "")
        + json.dumps(f.get("parameters") or {"type": "object", "properties": {}})
        + "\n"
        for f in functions
    )
    return (
        "\n\nYou have access to the following functions:\n"
        f"{listed}"
        "\n\nYou can respond to users messages with either a single message or one or more "
        "function calls."
        "\n\nTo respond with a message begin the message with 'message:', use the following "
        "format:\n\nmessage:\n<message>"
        "\n\nTo respond with one or more function calls begin the message with "
        "'functions.<function_name>:', use the following format:"
        '\n\nfunctions.<function_name>:\n{ "arg1": "value1", "arg2": "value2" }'
    )


def prompt_messages(
    messages: Sequence[Mapping[str, Any]], constraint: ChatConstraint | None
) -> list[dict[str, Any]]:
    """The messages the model's chat template renders: with tools offered, the system message
    lists them and earlier calls are written as the model writes calls (see the docstring)."""
    if constraint is None or not constraint.calls_tools:
        return [dict(m) for m in messages]
    out: list[dict[str, Any]] = []
    for message in messages:
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and isinstance(calls, list) and calls:
            written = [
                render_call(
                    str((c.get("function") or {}).get("name", "")),
                    str((c.get("function") or {}).get("arguments") or "{}"),
                )
                for c in calls
                if isinstance(c, Mapping)
            ]
            out.append({"role": "assistant", "content": "\n".join(written)})
        else:
            out.append(
                {"role": message.get("role"), "content": message_text(message.get("content"))}
            )
    listing = _tool_listing(constraint.tools)
    if out and out[0]["role"] == "system":
        out[0] = {"role": "system", "content": out[0]["content"] + listing}
    else:
        out.insert(0, {"role": "system", "content": listing.lstrip("\n")})
    return out


@dataclass(frozen=True)
class Piece:
    """Something the reader learned from new answer text.

    ``kind`` is ``content`` (``text`` is more of the answer in words), ``call`` (call ``index``
    begins: ``name``) or ``arguments`` (``text`` is more of call ``index``'s arguments).
    """

    kind: str
    text: str = ""
    index: int = 0
    name: str = ""


class AnswerReader:
    """Reads a generator's answer text as it grows: words, or tool calls and their arguments.

    ``feed(text)`` takes the whole answer so far and returns what it adds; ``finish(text)``
    the rest once the answer is complete. Without tools offered every character is content.
    With tools, the answer is read in the format of the module docstring; an answer in neither
    form (a generator that ignored the constraint) is content as it stands.
    """

    def __init__(self, constraint: ChatConstraint | None) -> None:
        self.names = {str(f["name"]) for f in constraint.callable} if constraint else set()
        self.mode = "decide" if self.names else "content"
        self.pos = 0  # where unread text starts
        self.calls: list[list[str]] = []  # [name, arguments] per call
        self.args_start: int | None = None  # where the current call's arguments begin
        self.content = ""

    def _content(self, text: str, upto: int) -> list[Piece]:
        piece = text[self.pos : upto]
        self.pos = max(self.pos, upto)
        self.content += piece
        return [Piece("content", piece)] if piece else []

    def _decide(self, text: str, final: bool) -> bool:
        """Settle the mode once the text shows it; False while it could still be either."""
        head = text.lstrip()
        skipped = len(text) - len(head)
        if head.startswith(MESSAGE_PREFIX):
            self.mode, self.pos = "content", skipped + len(MESSAGE_PREFIX)
            return True
        if head.startswith(CALL_PREFIX):
            self.mode, self.pos = "calls", skipped
            return True
        if not final and (MESSAGE_PREFIX.startswith(head) or CALL_PREFIX.startswith(head)):
            return False
        self.mode, self.pos = "content", 0
        return True

    def _call_head(self, text: str) -> tuple[str, int] | None:
        """``(name, arguments start)`` of a call beginning at ``self.pos``, once complete."""
        rest = text[self.pos :]
        stripped = rest.lstrip()
        start = self.pos + len(rest) - len(stripped)
        if not stripped.startswith(CALL_PREFIX):
            return None
        colon = stripped.find(":", len(CALL_PREFIX))
        if colon < 0:
            return None
        name = stripped[len(CALL_PREFIX) : colon]
        after = start + colon + 1
        tail = text[after:]
        if not tail.strip():
            return None  # the arguments have not begun
        return name, after + len(tail) - len(tail.lstrip())

    def _calls(self, text: str) -> list[Piece]:
        out: list[Piece] = []
        while True:
            if self.args_start is None:
                found = self._call_head(text)
                if found is None:
                    return out
                name, self.args_start = found
                self.pos = self.args_start
                self.calls.append([name, ""])
                out.append(Piece("call", index=len(self.calls) - 1, name=name))
            index = len(self.calls) - 1
            try:
                _, end = json.JSONDecoder().raw_decode(text, self.args_start)
            except ValueError:  # not complete yet: everything so far is arguments
                end = len(text)
                complete = False
            else:
                complete = True
            piece = text[self.pos : end]
            self.pos = max(self.pos, end)
            self.calls[index][1] += piece
            if piece:
                out.append(Piece("arguments", piece, index))
            if not complete:
                return out
            self.args_start = None  # another call may follow

    def feed(self, text: str, final: bool = False) -> list[Piece]:
        """What ``text`` (the whole answer so far) adds to what was read."""
        if self.mode == "decide" and not self._decide(text, final):
            return []
        if self.mode == "content":
            return self._content(text, len(text))
        return self._calls(text)

    def finish(self, text: str) -> list[Piece]:
        """The rest of the complete answer ``text``."""
        return self.feed(text, final=True)

    @property
    def tool_calls(self) -> list[tuple[str, str]]:
        """``(name, arguments)`` of every call read (arguments as the model wrote them)."""
        return [(name, args) for name, args in self.calls]
