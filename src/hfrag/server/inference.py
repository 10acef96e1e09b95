"""Inference steps shared by the TEI, router and TGI layouts.

Handlers parse and validate a request, then call these to pick the model, spend the simulated
latency, compute the answer through the model's backend and count the result. Keeping them here
means the three layouts differ only in request and response shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from aiohttp import web

from hfrag.server.backends import normalize_rows, sigmoid
from hfrag.server.config import ModelSpec
from hfrag.server.faults import Fault, FaultRuntime
from hfrag.server.generation import GenRequest, GenResult, Step, generate_steps
from hfrag.server.runtime import ModelRuntime
from hfrag.server.state import Counters, ServerState
from hfrag.server.validation import ApiError, EmbedOptions, tei_error

__all__ = [
    "STATE_KEY",
    "RequestContext",
    "Service",
    "admit",
    "classification_scores",
    "current",
    "embed_output",
    "generation_steps",
    "json_response",
    "label_logits",
    "model_or_404",
    "raw_body",
    "rerank_scores",
    "run_generation",
    "state_of",
    "succeeded",
]

STATE_KEY = web.AppKey("hfrag_state", ServerState)


@dataclass
class RequestContext:
    """What the middleware learned about the request being handled."""

    raw: bytes = b""
    fault: Fault = Fault.NONE
    runtime: FaultRuntime | None = None
    dropped: bool = False
    cut: bool = False
    ok_items: int = 0
    ok_texts: list[str] = field(default_factory=list)
    models: ModelRuntime | None = None
    counters: Counters | None = None
    #: When the simulated service time of the request ends (``admit``); None: no such time.
    deadline: float | None = None

    async def spend(self) -> None:
        """Sleep until the simulated service time has passed (once; later calls return)."""
        deadline, self.deadline = self.deadline, None
        left = 0.0 if deadline is None else deadline - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)


# Handlers run in the middleware's task, so a context variable carries the per-request state
# without storing custom keys on the aiohttp request (whose key type changed across versions).
_CONTEXT: ContextVar[RequestContext] = ContextVar("hfrag_request_context")


def current() -> RequestContext:
    """The context of the request being handled (an empty one outside a request)."""
    try:
        return _CONTEXT.get()
    except LookupError:
        return RequestContext()


def begin(context: RequestContext) -> Token[RequestContext]:
    """Make ``context`` the current request's context."""
    return _CONTEXT.set(context)


def end(token: Token[RequestContext]) -> None:
    """Restore the context from before ``begin``."""
    _CONTEXT.reset(token)


def state_of(request: web.Request) -> ServerState:
    """The server state of the app answering ``request``."""
    return request.app[STATE_KEY]


def succeeded(items: int, texts: Sequence[str]) -> None:
    """Note the inputs of a successful answer; counted once the answer is delivered whole."""
    context = current()
    context.ok_items += items
    context.ok_texts.extend(texts)


def raw_body(request: web.Request) -> bytes:
    """The request body the middleware read."""
    return current().raw


def request_fault(request: web.Request) -> Fault:
    """The fault drawn for ``request`` (``Fault.NONE`` outside POST routes)."""
    return current().fault


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A compact JSON answer (orjson: vector answers are most of the server's own CPU)."""
    return web.Response(
        status=status, body=_dumps(data), content_type="application/json", headers=headers
    )


def _dumps(data: Any) -> bytes:
    """``data`` as compact JSON; NaN and infinity refused (orjson would write ``null``)."""
    try:
        body = orjson.dumps(data)
    except TypeError:  # what orjson does not take (non-str keys, big ints): json decides
        return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    if b"null" in body and _has_non_finite(data):
        raise ValueError("Out of range float values are not JSON compliant")
    return body


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    return False


def model_or_404(state: ServerState, name: str) -> ModelSpec:
    """The model called ``name``, or the HF router's 404."""
    spec = state.config.model(name)
    if spec is None:
        raise ApiError(404, {"error": f"Model {name} does not exist"})
    return spec


def first_of_kind(state: ServerState, kind: str) -> ModelSpec:
    """The first model of ``kind`` for the TEI/TGI routes, or TEI's 424 when there is none."""
    spec = state.config.first_of(kind)
    if spec is None:
        what = {"embed": "an embedding", "rerank": "a re-ranker", "generate": "a generation"}[kind]
        raise tei_error("Backend", f"Backend error: Inference error: model is not {what} model")
    return spec


def admit(items: int, texts: Sequence[str] = (), *, answered: int | None = None) -> None:
    """Say what the request being handled carries, once it is parsed: ``items`` inputs.

    This is all a handler tells the test machinery; the request pipeline (``app``) does the
    rest around the handler: ``items`` goes to ``Counters.batch_sizes`` now; the faults'
    simulated service time (``latency + latency_per_item * items``, counted from now, the
    compute included) is spent before a 200 answer is sent (before a stream's first event);
    ``answered`` inputs (default ``items``) and ``texts`` go to ``Counters.items_ok`` and
    ``texts_ok`` once the answer has reached its client whole.
    """
    context = current()
    if context.counters is not None:
        context.counters.record_batch(items)
    runtime = context.runtime
    delay = 0.0
    if runtime is not None:
        delay = runtime.config.latency + runtime.config.latency_per_item * items
    context.deadline = time.monotonic() + delay
    context.ok_items += items if answered is None else answered
    context.ok_texts.extend(texts)


class Service:
    """The simulated service time of one request: ``latency + latency_per_item * items``.

    ``admit`` does this (and the counting) for a handler; this class stays for handlers that
    spend the time themselves.

    Start it when the request is valid, compute the answer, then ``await done()``: the compute
    time counts toward the service time, as it does on a real server, so a request takes
    ``max(simulated, compute)`` and the latency model stays predictable under load.
    """

    def __init__(self, items: int) -> None:
        runtime = current().runtime
        delay = 0.0
        if runtime is not None:
            delay = runtime.config.latency + runtime.config.latency_per_item * items
        self.deadline = time.monotonic() + delay

    async def done(self) -> None:
        """Sleep until the service time has passed."""
        left = self.deadline - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)


async def _run_model(group: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` on the server's model thread for ``group`` (inline outside a request)."""
    models = current().models
    if models is None:
        return fn(*args)
    return await models.run(group, fn, *args)


async def pooled_vectors(spec: ModelSpec, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """``backend.embed(texts, normalize=False)``, batched with concurrent requests by the
    server's ``ModelRuntime`` (inline outside a request)."""
    models = current().models
    if models is None:
        raw = spec.backend.embed(list(texts), normalize=False)
    else:
        raw = await models.embed(spec.backend, list(texts))
    return np.asarray(raw, dtype=np.float32)


async def embed_output(spec: ModelSpec, texts: Sequence[str], options: EmbedOptions) -> list[Any]:
    """Vectors as nested lists: ``[n][dim]`` pooled, or ``[n][tokens][dim]`` without pooling.

    Pooled: ``backend.embed(texts, normalize=False)`` (batched with concurrent requests by the
    server's ``ModelRuntime``), cut to ``dimensions``, then L2-normalised when ``normalize``.
    Token level: ``backend.token_embeddings(text)`` per text, cut to ``dimensions`` and returned
    as the model computes them (``normalize`` does not apply).
    """
    dims = options.dimensions
    if spec.pooling:
        vectors = await pooled_vectors(spec, texts)
        if dims is not None:
            vectors = vectors[:, :dims]
        if options.normalize:
            vectors = normalize_rows(vectors)
        out: list[Any] = vectors.tolist()
        return out

    def token_level() -> list[Any]:
        tokens: list[Any] = []
        for text in texts:
            matrix = np.asarray(spec.backend.token_embeddings(text), dtype=np.float32)
            if dims is not None:
                matrix = matrix[:, :dims]
            tokens.append(matrix.tolist())
        return tokens

    result: list[Any] = await _run_model("embed", token_level)
    return result


def _logits(spec: ModelSpec, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """The backend's logit per pair; ``score_pairs`` (one batched call) when it has one."""
    score_pairs = getattr(spec.backend, "score_pairs", None)
    if score_pairs is not None:
        return [float(s) for s in score_pairs(list(pairs))]
    return [float(spec.backend.score(query, text)) for query, text in pairs]


async def rerank_scores(
    spec: ModelSpec, pairs: Sequence[tuple[str, str]], raw_scores: bool
) -> list[float]:
    """One score per pair: the backend's logit, or its sigmoid (TEI's default)."""
    logits: list[float] = await _run_model("embed", _logits, spec, pairs)
    scores = []
    for logit in logits:
        if math.isnan(logit):
            raise tei_error("Backend", "score is NaN")
        scores.append(logit if raw_scores else sigmoid(logit))
    return scores


def label_logits(spec: ModelSpec, logit: float) -> list[float]:
    """The per-label logits of a pair whose one-label logit is ``logit``.

    A one-label cross-encoder has just ``logit``. A model with several labels stands in for a
    classifier whose last label means "relevant": it carries ``logit`` and the others 0, so the
    softmax of the last label equals the sigmoid of the one-label score.
    """
    return [0.0] * (len(spec.labels) - 1) + [logit]


def _softmax(logits: Sequence[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


async def classification_scores(
    spec: ModelSpec, pairs: Sequence[tuple[str, str]], function_to_apply: str | None
) -> list[list[dict[str, Any]]]:
    """Router text-classification output: one ``[{"label", "score"}]`` list per pair.

    As transformers' pipeline: the default function is ``sigmoid`` for one label and
    ``softmax`` for several; ``softmax`` of one label gives 1.0 and ``none`` returns the logits.
    Labels come sorted by score, highest first (see :func:`label_logits` for several labels).
    """
    default = "sigmoid" if len(spec.labels) == 1 else "softmax"
    fn = (function_to_apply or default).lower()
    if fn not in ("sigmoid", "softmax", "none"):
        raise ApiError(
            400,
            {
                "error": f"Invalid function_to_apply {function_to_apply!r}: "
                "expected 'sigmoid', 'softmax' or 'none'"
            },
        )
    out = []
    for logit in await rerank_scores(spec, pairs, raw_scores=True):
        logits = label_logits(spec, logit)
        if fn == "sigmoid":
            scores = [sigmoid(x) for x in logits]
        elif fn == "softmax":
            scores = _softmax(logits)
        else:
            scores = logits
        ranked = sorted(zip(spec.labels, scores, strict=True), key=lambda ls: -ls[1])
        out.append([{"label": label, "score": score} for label, score in ranked])
    return out


async def run_generation(
    spec: ModelSpec, request: GenRequest, alive: Callable[[], bool] | None = None
) -> GenResult:
    """The whole answer (``generation.generate``), collected on the loop from
    :func:`generation_steps`, so it can be stopped like a stream: cancelling the call (server
    shutdown) or ``alive()`` turning false (``ClientGone``) stops the model at its next token.
    """
    result = GenResult(input_length=request.input_length, seed=request.params.seed)
    steps = generation_steps(spec, request, alive)
    async with contextlib.aclosing(steps):
        async for step in steps:
            result.add(step)
    return result


async def generation_steps(
    spec: ModelSpec, request: GenRequest, alive: Callable[[], bool] | None = None
) -> AsyncGenerator[Step, None]:
    """``generation.generate_steps`` on the server's generation thread, each step as soon as
    the model makes it (inline outside a request).

    Leaving early stops the model at its next token; so does ``alive()`` turning false, which
    ends the iteration with ``ClientGone`` (see ``ModelRuntime.stream``).
    """
    models = current().models
    if models is None:
        for step in generate_steps(spec, request):
            yield step
        return
    steps = models.stream("generate", lambda: generate_steps(spec, request), alive=alive)
    async with contextlib.aclosing(steps):
        async for step in steps:
            yield step
