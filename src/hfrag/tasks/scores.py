"""Checking and shaping rerank responses: whatever the server sent becomes one score per document.

Four answer shapes, one per wire form:

- TEI ``/rerank``: ``[{"index", "score", "text"?}]``, sorted by score: mapped back by ``index``.
- Cohere/Jina ``/v1/rerank``: ``{"results": [{"index", "relevance_score", "document"?}]}``,
  also sorted by score.
- HF pipeline text-classification: one ``[{"label", "score"}, ...]`` per pair, in input order (a
  bare ``{"label", "score"}`` per pair is accepted too); the score of the relevant label is taken
  (:func:`relevant_label`). The pipeline is asked for every label; an answer of one label per
  pair is a one-label cross-encoder's, unless the model shows it has more (another label seen in
  any batch of the client, or a ``LABEL_k`` with k >= 1): then only the top label came back,
  and that is refused, as is a label given twice in one answer.
- HF pipeline sentence-similarity: one number per sentence, in input order (the cosine
  similarity of a bi-encoder's vectors).

Everything else (a missing, repeated or out-of-range index, a count that does not match, a score
that is not a finite number, a wrong type anywhere) is a
:class:`~hfrag.errors.MalformedResponseError` naming the batch's documents.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hfrag.errors import ConfigurationError, MalformedResponseError
from hfrag.transport.urls import redact_url

__all__ = [
    "RELEVANT_LABELS",
    "Scores",
    "from_indexed",
    "from_labels",
    "from_similarities",
    "relevant_label",
]

Scores = NDArray[np.float32]

#: Label names that mean "relevant" in multi-label classifiers, tried in this order.
RELEVANT_LABELS = ("relevant", "entailment", "positive", "yes", "true")


_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: ``LABEL_k`` with k >= 1: the default name of a model's second (third...) label.
_LATER_LABEL = re.compile(r"LABEL_[1-9][0-9]*")


class _Bad(Exception):
    pass


def _number(value: Any, what: str) -> float:
    # JSON true/false decode to bool, which Python counts as an int: not a score.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"{what} is {type(value).__name__} {value!r:.40}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise _Bad(f"{what} is {number}, not a finite number")
    if abs(number) > _FLOAT32_MAX:
        raise _Bad(f"{what} is {number}, which overflows float32")
    return number


def _indexed(items: Any, n: int, score_key: str) -> list[float]:
    if not isinstance(items, list):
        raise _Bad(f"expected a JSON array of results, got {type(items).__name__}")
    scores: list[float | None] = [None] * n
    for item in items:
        if not isinstance(item, dict):
            raise _Bad(f"a result is {type(item).__name__}, not an object")
        index = item.get("index")
        if isinstance(index, bool) or not isinstance(index, int):
            raise _Bad(f"a result has index {index!r:.40}, not an integer")
        if not 0 <= index < n:
            raise _Bad(f"index {index} is out of range for {n} documents")
        if scores[index] is not None:
            raise _Bad(f"index {index} appears twice")
        if score_key not in item:
            raise _Bad(f"the result for index {index} has no {score_key!r}")
        scores[index] = _number(item[score_key], f"the {score_key!r} of index {index}")
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing:
        raise _Bad(f"{len(items)} results for {n} documents (no result for index {missing[0]})")
    return [float(s) for s in scores if s is not None]


def relevant_label(labels: Sequence[str], label: str | None) -> str:
    """The label whose score means "relevant" among the ``labels`` of one answer.

    ``label`` when given. Otherwise: the only label of a one-label cross-encoder; else the first
    of :data:`RELEVANT_LABELS` present (case-insensitive); else ``LABEL_1`` of a two-label model
    (``LABEL_0``/``LABEL_1``). Any other model must be told with ``label=...``.
    """
    if label is not None:
        return label
    if len(labels) == 1:
        return labels[0]
    folded = {name.lower(): name for name in labels}
    for name in RELEVANT_LABELS:
        if name in folded:
            return folded[name]
    if sorted(folded) == ["label_0", "label_1"]:
        return folded["label_1"]
    raise ConfigurationError(
        f"the model answers with labels {sorted(labels)}; say which one means relevant with "
        "label=..."
    )


def _labelled(payload: Any, n: int, label: str | None, seen: set[str]) -> list[float]:
    if not isinstance(payload, list):
        raise _Bad(f"expected a JSON array, got {type(payload).__name__}")
    if len(payload) != n:
        raise _Bad(f"{len(payload)} answers for {n} documents")
    answers: list[dict[str, float]] = []
    for i, item in enumerate(payload):
        entries = [item] if isinstance(item, dict) else item
        if not isinstance(entries, list) or not entries:
            raise _Bad(f"answer {i} is {type(item).__name__}, not a list of labels")
        scores: dict[str, float] = {}
        for entry in entries:
            name = entry.get("label") if isinstance(entry, dict) else None
            if not isinstance(name, str):
                raise _Bad(f"answer {i} has an entry without a string 'label'")
            if name in scores:
                raise _Bad(f"answer {i} gives label {name!r} twice")
            scores[name] = _number(entry.get("score"), f"the score of {name!r} in answer {i}")
        answers.append(scores)
        seen.update(scores)
    singles = {name for scores in answers if len(scores) == 1 for name in scores}
    if singles and (len(seen) > 1 or any(_LATER_LABEL.fullmatch(s) for s in singles)):
        # One label per answer from a model that has more: only the top label was returned,
        # whose score says nothing about relevance.
        raise _Bad(
            f"an answer has only label {sorted(singles)[0]!r} of a model with labels "
            f"{sorted(seen) if len(seen) > 1 else 'LABEL_0 and more'}: only the top label of a "
            "multi-label model was returned (the server ignored top_k)"
        )
    out: list[float] = []
    for i, scores in enumerate(answers):
        chosen = relevant_label(list(scores), label)
        if chosen not in scores:
            raise _Bad(f"answer {i} has no label {chosen!r} (labels: {sorted(scores)})")
        out.append(scores[chosen])
    return out


def _similarities(payload: Any, n: int) -> list[float]:
    if not isinstance(payload, list):
        raise _Bad(f"expected a JSON array of scores, got {type(payload).__name__}")
    if len(payload) != n:
        raise _Bad(f"{len(payload)} scores for {n} documents")
    return [_number(value, f"score {i}") for i, value in enumerate(payload)]


def _decode(where: str, url: str, decode: Callable[..., list[float]], *args: Any) -> Scores:
    try:
        scores: list[float] = decode(*args)
    except _Bad as bad:
        raise MalformedResponseError(
            f"rerank response for {where} is malformed: {bad}", status=200, url=redact_url(url)
        ) from None
    return np.asarray(scores, dtype=np.float32)


def from_indexed(payload: Any, n: int, *, cohere: bool, where: str, url: str) -> Scores:
    """Scores in input order from a TEI (``cohere=False``) or Cohere-style answer."""
    if not cohere:
        return _decode(where, url, _indexed, payload, n, "score")
    if not isinstance(payload, dict) or "results" not in payload:
        got = type(payload).__name__ if not isinstance(payload, dict) else "an object without it"
        return _decode(where, url, _raise, f"expected an object with 'results', got {got}")
    return _decode(where, url, _indexed, payload["results"], n, "relevance_score")


def from_labels(
    payload: Any, n: int, *, label: str | None, where: str, url: str, seen: set[str] | None = None
) -> Scores:
    """Scores in input order from a text-classification answer (see :func:`relevant_label`).

    ``seen`` collects the labels of every answer (a client's, across batches and calls), so a
    top-label-only answer is refused whatever the batching.
    """
    return _decode(where, url, _labelled, payload, n, label, set() if seen is None else seen)


def from_similarities(payload: Any, n: int, *, where: str, url: str) -> Scores:
    """Scores in input order from a sentence-similarity answer (one number per sentence)."""
    return _decode(where, url, _similarities, payload, n)


def _raise(message: str) -> list[float]:
    raise _Bad(message)
