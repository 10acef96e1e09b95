"""Checking and shaping embedding responses: whatever the server sent becomes an (n, dim) array.

Accepted: 2-D ``[[f, ...], ...]`` (TEI, router for lists), 1-D for a single input (router), and
token-level 3-D ``[batch][tokens][dim]`` from models without a pooling head, ragged across the
batch, pooled here by ``mean`` or ``cls``. Everything else (wrong count, wrong or inconsistent
dimension, NaN or infinity, non-numeric values, empty vectors) is a
:class:`~hfrag.errors.MalformedResponseError` naming the batch's input positions.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from hfrag.errors import MalformedResponseError
from hfrag.transport.urls import redact_url

Pooling = Literal["mean", "cls"]
Matrix = NDArray[np.float32]


class _Bad(Exception):
    pass


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
        if array.ndim == 3:
            return np.stack([_pool(item, pooling) for item in array]), True
        raise _Bad(f"an array of {array.ndim} dimensions")
    # Ragged: token-level items of different lengths, or broken content; check item by item.
    if len(payload) != n:
        raise _Bad(f"{len(payload)} items for {n} inputs")
    items = [_numeric(item) for item in payload]
    if not all(item.ndim == 2 for item in items) or len({item.shape[1] for item in items}) > 1:
        raise _Bad("items of different shapes (not a consistent 2-D or 3-D array)")
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
        if rows.shape[1] == 0:
            raise _Bad("empty vectors")
        if dim is not None and rows.shape[1] != dim:
            raise _Bad(f"dimension {rows.shape[1]}, but earlier batches had {dim}")
        matrix = rows.astype(np.float32, copy=False)
        if not np.isfinite(matrix).all():
            raise _Bad("NaN or infinite values")
    except _Bad as bad:
        raise MalformedResponseError(
            f"embedding response for {where} is malformed: {bad}", status=200, url=redact_url(url)
        ) from None
    if pooled and normalize_pooled:
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = (matrix / np.where(norms == 0, 1, norms)).astype(np.float32, copy=False)
    return matrix
