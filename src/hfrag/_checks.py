"""Checks of configuration values, shared by the transport and every task client.

Each function returns the value (normalised where that is safe) or raises
:class:`~hfrag.errors.ConfigurationError` naming the setting. They are strict on purpose:
``batch_size=2.5``, ``timeout=float("nan")``, ``max_retries=float("inf")``, ``normalize=1`` and a
``True`` given for a count are refused, since each would otherwise be sent or used as something
the user did not mean. Values of settings that may be credentials are never echoed.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from hfrag.errors import ConfigurationError

T = TypeVar("T")

__all__ = [
    "check_bool",
    "check_choice",
    "check_header_value",
    "check_headers",
    "check_int",
    "check_number",
    "check_str",
]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(name: str, value: Any, *, minimum: int | None = None, optional: bool = False) -> Any:
    """An integer (not a bool, not a float such as ``2.5`` or ``2.0``) of at least ``minimum``."""
    if value is None and optional:
        return None
    if isinstance(value, (bool, float)):
        raise ConfigurationError(f"{name} must be an integer, got {_shown(value)}")
    try:
        number = operator.index(value)  # int and numpy integers
    except TypeError:
        raise ConfigurationError(
            f"{name} must be an integer, got {type(value).__name__} {_shown(value)}"
        ) from None
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {number}")
    return number


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    positive: bool = False,
    optional: bool = False,
    unit: str = "",
) -> Any:
    """A finite real number (not a bool, not NaN or infinite); ``positive`` means ``> 0``."""
    if value is None and optional:
        return None
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    if not isinstance(value, (int, float)):
        try:
            value = float(operator.index(value))  # numpy integers
        except TypeError:
            kind = type(value).__name__
            raise ConfigurationError(
                f"{name} must be a number, got {kind} {_shown(value)}"
            ) from None
    number = float(value)
    suffix = f" {unit}" if unit else ""
    if not math.isfinite(number):
        advice = " or None" if optional else ""
        raise ConfigurationError(f"{name} must be a finite number{advice}, got {number}")
    if positive and number <= 0:
        raise ConfigurationError(f"{name} must be > 0{suffix}, got {value}")
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}{suffix}, got {value}")
    return value


def check_bool(name: str, value: Any, *, optional: bool = False) -> Any:
    """``True`` or ``False`` (``1``, ``0`` and ``"true"`` are refused: they would be sent as is)."""
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        allowed = "True, False or None" if optional else "True or False"
        raise ConfigurationError(f"{name} must be {allowed}, got {_shown(value)}")
    return value


def check_str(name: str, value: Any, *, optional: bool = False) -> Any:
    """A string (or None when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
    return value


def check_choice(name: str, value: T, choices: Iterable[Any]) -> T:
    """One of ``choices``."""
    allowed = tuple(choices)
    if not any(type(value) is type(c) and value == c for c in allowed):
        shown = ", ".join(repr(c) for c in allowed)
        raise ConfigurationError(f"{name} must be one of {shown}, got {_shown(value)}")
    return value


def _sendable(text: str) -> bool:
    # Visible ASCII, space and tab: what every HTTP stack sends unchanged. CR and LF would end the
    # header (a request-splitting hole); other control characters and non-ASCII are refused or
    # re-encoded differently by servers and proxies.
    return all(c == "\t" or " " <= c <= "~" for c in text)


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def check_header_value(what: str, value: Any) -> str:
    """A header value that can be sent as is; the error never echoes it (it may be a secret)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a string, got {type(value).__name__}")
    if not _sendable(value):
        bad = sorted({_describe(c) for c in value if not (c == "\t" or " " <= c <= "~")})
        raise ConfigurationError(
            f"{what} cannot be sent in an HTTP header: it contains {', '.join(bad[:4])} (only "
            "printable ASCII is allowed; a token read from a file may carry a stray line break "
            "or a non-ASCII character)"
        )
    return value


def _describe(char: str) -> str:
    names = {"\r": "a carriage return (CR)", "\n": "a line feed (LF)", "\x00": "a NUL byte"}
    if char in names:
        return names[char]
    return "a control character" if ord(char) < 0x80 else "a non-ASCII character"


def check_headers(name: str, headers: Any) -> dict[str, str]:
    """Extra headers as a plain dict of valid names and sendable values."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigurationError(
            f"{name} must be a mapping of header names to values, got {type(headers).__name__}"
        )
    out: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not key or not set(key) <= _TOKEN_CHARS:
            raise ConfigurationError(
                f"{name} has an invalid header name {_shown(key)} (letters, digits and "
                "!#$%&'*+-.^_`|~ only)"
            )
        out[key] = check_header_value(f"the value of header {key!r}", value)
    return out
