"""Checking and shaping embedding responses: whatever the server sent becomes an (n, dim) array.

Two wire forms. The HF form (:func:`to_matrix`): 2-D ``[[f, ...], ...]`` (TEI, router for
lists), 1-D for a single input (router), and token-level output of models without a pooling
head, pooled here by ``mean`` or ``cls``: ``[n][1][tokens][dim]`` for a list of n texts (the
router's hf-inference pipeline keeps each input's tokenizer batch of one), ``[1][tokens][dim]``
for a single string, ``[n][tokens][dim]`` from other servers; token counts may differ between
inputs (ragged). The
OpenAI form (:func:`openai_matrix`): ``{"data": [{"index", "embedding"}]}``, placed by ``index``
(never by position), each embedding a list of floats or the base64 of its little-endian float32
bytes, decoded (pybase64's SIMD decoder, strict: a character outside the alphabet is an error)
straight into the batch's array (no Python float per value); a list of token vectors (llama.cpp
with a model without pooling) is pooled as in the HF form.
Everything else (wrong count, wrong or inconsistent dimension, NaN or infinity, non-numeric
values, empty vectors, bad base64) is a :class:`~hfrag.errors.MalformedResponseError` naming the
batch's input positions.
"""

from __future__ import annotations

import binascii
import sys
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from hfrag.errors import MalformedResponseError
from hfrag.transport.urls import redact_url

Pooling = Literal["mean", "cls"]
Matrix = NDArray[np.float32]


class _Bad(Exception):
    pass


def _strict_b64decode() -> Callable[[str], bytes]:
    """Strict base64 decoding: pybase64 (SIMD, about 4x binascii), else binascii's strict mode."""
    try:
        import pybase64
    except ImportError:  # pragma: no cover - pybase64 is a dependency; binascii still works

        def decode(text: str) -> bytes:
            if sys.version_info >= (3, 11):
                return binascii.a2b_base64(text, strict_mode=True)
            return binascii.a2b_base64(text)  # pragma: no cover - 3.10 has no strict mode

        return decode

    def fast(text: str) -> bytes:
        return pybase64.b64decode(text, validate=True)

    return fast


_b64decode = _strict_b64decode()


def _numeric(value: Any) -> NDArray[Any]:
    """``value`` as a numeric array; ragged, non-numeric or non-finite content raises ``_Bad``."""
    try:
        array = np.asarray(value)
    except ValueError as exc:  # inhomogeneous nesting
        raise _Bad("ragged") from exc
    if array.dtype.kind not in "fiu":
        raise _Bad(f"non-numeric values (array of {array.dtype})")
    return array


def _pool(tokens: NDArray[Any], pooling: Pooling) -> NDArray[Any]:
    if tokens.ndim == 3 and tokens.shape[0] == 1:
        tokens = tokens[0]  # [1][tokens][dim]: one input's tokenizer batch of one
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise _Bad(f"a token-level item has shape {tokens.shape}, expected (tokens, dim)")
    pooled: NDArray[Any] = tokens.mean(axis=0) if pooling == "mean" else tokens[0]
    return pooled


def _rows(payload: Any, n: int, pooling: Pooling) -> tuple[NDArray[Any], bool]:
    """The (n, dim) array, and whether it was pooled from token-level output."""
    if not isinstance(payload, list):
        raise _Bad(f"expected a JSON array, got {type(payload).__name__}")
    try:
        array = _numeric(payload)
    except _Bad:
        array = None
    if array is not None:
        if array.ndim == 1 and n == 1:
            return array.reshape(1, -1), False
        if array.ndim == 2:
            return array, False
        if array.ndim in (3, 4):
            return np.stack([_pool(item, pooling) for item in array]), True
        raise _Bad(f"an array of {array.ndim} dimensions")
    # Ragged: token-level items of different lengths, or broken content; check item by item.
    if len(payload) != n:
        raise _Bad(f"{len(payload)} items for {n} inputs")
    items = [_numeric(item) for item in payload]
    # Each item one input's tokens: (tokens, dim), or (1, tokens, dim) from the hf-inference
    # pipeline; the same form and dimension throughout.
    kinds = {
        (i.ndim, i.shape[0] if i.ndim == 3 else 1, i.shape[-1] if i.ndim else 0) for i in items
    }
    if len(kinds) != 1 or next(iter(kinds))[:2] not in ((2, 1), (3, 1)):
        raise _Bad("items of different shapes (not a consistent 2-D, 3-D or 4-D array)")
    return np.stack([_pool(item, pooling) for item in items]), True


def to_matrix(
    payload: Any,
    n: int,
    *,
    first: int,
    url: str,
    pooling: Pooling = "mean",
    normalize_pooled: bool = True,
    dim: int | None = None,
) -> Matrix:
    """Validate one batch's response for inputs ``first .. first+n-1`` into float32 ``(n, dim)``.

    ``dim``, when known from earlier batches, must match. Vectors pooled from token-level output
    are L2-normalised when ``normalize_pooled`` (as a pooling model would have done).
    """
    where = f"inputs {first}-{first + n - 1}" if n > 1 else f"input {first}"
    try:
        rows, pooled = _rows(payload, n, pooling)
        if rows.shape[0] != n:
            raise _Bad(f"{rows.shape[0]} vectors for {n} inputs")
        matrix = _checked(rows.astype(np.float32, copy=False), dim)
    except _Bad as bad:
        raise _malformed(where, url, bad) from None
    return unit_rows(matrix) if pooled and normalize_pooled else matrix


def _checked(matrix: Matrix, dim: int | None) -> Matrix:
    """``matrix`` if its vectors are non-empty, of dimension ``dim`` (when known) and finite."""
    if matrix.shape[1] == 0:
        raise _Bad("empty vectors")
    if dim is not None and matrix.shape[1] != dim:
        raise _Bad(f"dimension {matrix.shape[1]}, but earlier batches had {dim}")
    if not np.isfinite(matrix).all():
        raise _Bad("NaN or infinite values")
    return matrix


def _malformed(where: str, url: str, bad: _Bad) -> MalformedResponseError:
    return MalformedResponseError(
        f"embedding response for {where} is malformed: {bad}", status=200, url=redact_url(url)
    )


def unit_rows(matrix: Matrix) -> Matrix:
    """Rows scaled to unit L2 norm (zero rows left as they are)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32, copy=False)


def _from_base64(items: list[Any]) -> Matrix:
    """Base64 vectors (little-endian float32 bytes) into one ``(n, dim)`` float32 array."""
    rows: Matrix | None = None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _Bad("a mix of base64 and other embeddings")
        try:
            raw = _b64decode(item)
        except (binascii.Error, ValueError) as exc:
            raise _Bad(f"embedding {i} is not valid base64 ({exc})") from None
        if rows is None:
            if not raw or len(raw) % 4:
                raise _Bad(f"base64 embedding of {len(raw)} bytes is not whole float32 values")
            rows = np.empty((len(items), len(raw) // 4), dtype=np.float32)
        if len(raw) != rows.shape[1] * 4:
            raise _Bad(
                f"base64 embedding {i} has {len(raw)} bytes, expected {rows.shape[1] * 4} "
                f"({rows.shape[1]} float32 values)"
            )
        rows[i] = np.frombuffer(raw, dtype="<f4")
    assert rows is not None
    return rows


def _by_index(payload: Any, n: int) -> list[Any]:
    """The ``embedding`` of each ``data`` item, placed by its ``index``; all of 0..n-1 once."""
    if not isinstance(payload, dict):
        raise _Bad(f"expected a JSON object with 'data', got {type(payload).__name__}")
    data = payload.get("data")
    if not isinstance(data, list):
        raise _Bad("no 'data' list in the answer")
    if len(data) != n:
        raise _Bad(f"{len(data)} vectors for {n} inputs")
    slots: list[Any] = [None] * n
    for item in data:
        if not isinstance(item, dict):
            raise _Bad(f"a data item is {type(item).__name__}, not an object")
        index, embedding = item.get("index"), item.get("embedding")
        if type(index) is not int or not 0 <= index < n:
            raise _Bad(f"index {index!r} is not one of 0-{n - 1}")
        if slots[index] is not None:
            raise _Bad(f"index {index} appears twice (and another is missing)")
        if embedding is None:
            raise _Bad(f"item {index} has no embedding")
        slots[index] = embedding
    return slots


def _token_level(slots: list[Any]) -> bool:
    """Some embedding is a list of lists: one vector per token (llama.cpp without pooling)."""
    return any(isinstance(v, list) and v and isinstance(v[0], list) for v in slots)


def openai_matrix(
    payload: Any,
    n: int,
    *,
    first: int,
    url: str,
    pooling: Pooling = "mean",
    dim: int | None = None,
) -> Matrix:
    """Validate one OpenAI-form answer for inputs ``first .. first+n-1`` into float32 ``(n, dim)``.

    Float lists and base64 strings are both accepted, whichever the server sent. An embedding
    that is a list of token vectors (llama.cpp's server with a model that has no pooling) is
    pooled as in the HF form, then L2-normalised.
    """
    where = f"inputs {first}-{first + n - 1}" if n > 1 else f"input {first}"
    pooled = False
    try:
        slots = _by_index(payload, n)
        if isinstance(slots[0], str):
            matrix = _from_base64(slots)
        elif _token_level(slots):
            rows, pooled = _rows(slots, n, pooling)
            matrix = rows.astype(np.float32, copy=False)
        else:
            if len({len(v) if isinstance(v, list) else -1 for v in slots} - {-1}) > 1:
                raise _Bad("embeddings of different lengths")
            array = _numeric(slots)
            if array.ndim != 2:
                raise _Bad("embeddings of different lengths, or not lists of numbers")
            matrix = array.astype(np.float32, copy=False)
        matrix = _checked(matrix, dim)
    except _Bad as bad:
        raise _malformed(where, url, bad) from None
    return unit_rows(matrix) if pooled else matrix
