"""Checking input texts before anything is sent: the one input rule of every task client.

A job is refused whole, before the first request, when its texts could not all be sent or
would not mean what the caller thinks:

- not an ordered sequence (a ``set`` or ``dict`` has no order to match vectors to; a generator
  or other one-shot iterable is refused too: pass ``list(...)``): ``TypeError``;
- an item that is not a ``str``: ``TypeError`` naming its position;
- empty or whitespace-only texts (servers reject them): ``InputError`` naming the positions;
- texts that cannot be encoded as UTF-8 (lone surrogates, e.g. from a bad decode with
  ``errors="surrogateescape"``): ``InputError`` naming the positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from hfrag.errors import InputError

__all__ = ["check_objects", "check_text", "check_texts"]

_SHOWN = 20


def _positions(items: list[int]) -> str:
    return ", ".join(map(str, items[:_SHOWN])) + (" ..." if len(items) > _SHOWN else "")


def _is_ordered(texts: Any) -> bool:
    if isinstance(texts, Sequence):
        return True
    # A 1-D NumPy array of strings is ordered too (without importing NumPy to find out).
    return type(texts).__name__ == "ndarray" and getattr(texts, "ndim", None) == 1


def check_texts(texts: Sequence[Any]) -> list[str]:
    """The texts as a list, or a clear error naming the first bad positions; nothing is sent."""
    if isinstance(texts, (str, bytes)):
        raise TypeError("expected a list of strings, got a single string; wrap it in a list")
    if isinstance(texts, (Mapping, AbstractSet)) or not _is_ordered(texts):
        kind = type(texts).__name__
        why = (
            "it has no order to match the results to"
            if isinstance(texts, (Mapping, AbstractSet))
            else "it is not a sequence"
        )
        raise TypeError(
            f"expected a list of strings, got {kind}: {why}; pass a list, e.g. list(...) or "
            "sorted(...) of it"
        )
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"input {i} is {type(text).__name__}, not str: {text!r:.80}")
    empty = [i for i, text in enumerate(items) if not text.strip()]
    if empty:
        raise InputError(
            f"{len(empty)} input(s) are empty or whitespace only, at positions "
            f"{_positions(empty)}; embedding servers reject them: drop or fill them first",
            positions=empty,
        )
    unsendable = [i for i, text in enumerate(items) if not _encodable(text)]
    if unsendable:
        raise InputError(
            f"{len(unsendable)} input(s) cannot be encoded as UTF-8 (they hold lone surrogate "
            f"characters, often from decoding bytes with errors='surrogateescape'), at positions "
            f"{_positions(unsendable)}; clean them, e.g. text.encode('utf-8', 'replace')"
            ".decode('utf-8')",
            positions=unsendable,
        )
    return [str(text) for text in items]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(text: Any, what: str = "text") -> str:
    """One text (a query, a prompt): a non-empty string that can be encoded as UTF-8."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise InputError(f"{what} is empty or whitespace only", positions=[0])
    if not _encodable(text):
        raise InputError(f"{what} cannot be encoded as UTF-8 (it holds lone surrogates)", [0])
    return text


def check_objects(items: Any, kind: type[Any] | tuple[type[Any], ...], what: str) -> list[Any]:
    """Framework objects (LangChain documents, LlamaIndex nodes) as a list, or a ``TypeError``
    naming the first item of another type (a bare string, a list of strings, ``None``...)."""
    if isinstance(items, (str, bytes, Mapping)) or not hasattr(items, "__iter__"):
        raise TypeError(f"expected a list of {what}, got {type(items).__name__}")
    out = list(items)
    for i, item in enumerate(out):
        if not isinstance(item, kind):
            raise TypeError(
                f"expected a list of {what}; item {i} is {type(item).__name__}: {item!r:.80}"
            )
    return out
