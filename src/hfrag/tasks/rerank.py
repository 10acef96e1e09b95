"""The rerank task: a query and documents in, one relevance score per document out, in input order.

One client serves both frameworks' adapters. It checks the input before anything is sent, picks
its wire form once (:mod:`hfrag.tasks.rerank_forms`: hf-inference pairs, TEI ``/rerank``, the
Cohere-style ``/v1/rerank`` or hf-inference sentence-similarity; ``protocol="auto"`` probes an
endpoint's ``GET /info`` once and remembers), cuts the documents into batches run with bounded
concurrency (:mod:`hfrag.tasks.batching`, at most ``batch_size`` and the server's
``max_client_batch_size``; a batch rejected as too large is split), and validates every answer
(:mod:`hfrag.tasks.scores`).

Empty documents: a document that is empty or whitespace only is not sent (servers disagree about
it, and some reject the whole batch). Its score is ``-inf``, it is left out of :meth:`rerank`'s
ranking, and a warning on the ``hfrag.tasks`` logger names its position. An empty query is an
:class:`~hfrag.errors.InputError`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from typing_extensions import Unpack

from hfrag.errors import ConfigurationError, InferenceError, InputError
from hfrag.tasks.base import Connection, TaskClient, connect
from hfrag.tasks.batching import run_batches
from hfrag.tasks.embeddings import check_texts
from hfrag.tasks.engine import RateLimiter
from hfrag.tasks.rerank_forms import (
    WIRE_FORMS,
    RerankOptions,
    WireForm,
    form_from_info,
    refuse_non_rerankers,
)
from hfrag.tasks.scores import Scores
from hfrag.transport import Request

__all__ = ["RerankClient", "RerankOptions", "RerankResult"]

logger = logging.getLogger("hfrag.tasks")


class RerankResult(NamedTuple):
    """One ranked document: its position in the input and its score."""

    index: int  # type: ignore[assignment]  # shadows tuple.index, as (index, score) reads best
    score: float


def check_query(query: Any) -> str:
    """The query, or a clear error; nothing is sent."""
    if not isinstance(query, str):
        raise TypeError(f"the query must be a string, got {type(query).__name__}: {query!r:.80}")
    try:
        check_texts([query])
    except InputError:
        if query.strip():
            raise
        raise InputError(
            "the query is empty or whitespace only: there is nothing to rank documents against",
            positions=[],
        ) from None
    return query


def check_documents(texts: Sequence[Any]) -> tuple[list[str], list[int]]:
    """The documents as a list, and the positions of those to send (not empty or whitespace).

    Types and every other input rule are :func:`~hfrag.tasks.embeddings.check_texts`'s; only
    emptiness is relaxed: empty documents are skipped, with a warning.
    """
    try:
        items = check_texts(texts)  # its TypeErrors: a bare string, a set, a generator...
        return items, list(range(len(items)))
    except InputError as error:
        items = list(texts)
        if not error.positions or any(items[i].strip() for i in error.positions):
            raise  # not (only) about empty documents
        skipped = set(error.positions)
    kept = [i for i in range(len(items)) if i not in skipped]
    try:
        check_texts([items[i] for i in kept])
    except InputError as error:
        positions = [kept[i] for i in error.positions]
        message = f"documents at positions {positions} are refused: {error}"
        raise InputError(message, positions) from None
    shown = ", ".join(map(str, sorted(skipped)[:20])) + (" ..." if len(skipped) > 20 else "")
    logger.warning(
        "%d empty or whitespace-only document(s) not sent and left out of the ranking "
        "(score -inf), at positions %s",
        len(skipped),
        shown,
    )
    return items, kept


Group = tuple[str, list[int], list[str], list[int]]


def group_pairs(pairs: Sequence[Any]) -> list[Group]:
    """``(query, text)`` pairs grouped by query: ``(query, positions, texts, kept)`` each, where
    ``kept`` are the texts to send (see :func:`check_documents`)."""
    if isinstance(pairs, (str, bytes)):
        raise TypeError("expected a list of (query, text) pairs, got a single string")
    by_query: dict[str, list[int]] = {}
    items = list(pairs)
    for i, pair in enumerate(items):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"pair {i} is not a (query, text) pair: {pair!r:.80}")
        for part, value in zip(("query", "text"), pair, strict=True):
            if not isinstance(value, str):
                raise TypeError(f"the {part} of pair {i} is {type(value).__name__}, not str")
        by_query.setdefault(pair[0], []).append(i)
    groups = []
    for query, positions in by_query.items():
        texts, kept = check_documents([items[i][1] for i in positions])
        groups.append((check_query(query), positions, texts, kept))
    return groups


def rank(
    scores: Scores, kept: Sequence[int], top_n: int | None, score_threshold: float | None
) -> list[RerankResult]:
    """Kept positions by score, highest first, ties by position; threshold, then ``top_n``."""
    order = sorted(kept, key=lambda i: (-float(scores[i]), i))
    results = [RerankResult(i, float(scores[i])) for i in order]
    if score_threshold is not None:
        results = [r for r in results if r.score >= score_threshold]
    return results if top_n is None else results[:top_n]


def check_cut(top_n: Any, score_threshold: Any) -> None:
    """``top_n`` (an integer >= 1, or None) and ``score_threshold`` (a finite number, or None)."""
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise ConfigurationError(f"top_n must be an integer >= 1 or None, got {top_n!r:.40}")
    if score_threshold is not None and (
        isinstance(score_threshold, bool)
        or not isinstance(score_threshold, (int, float))
        or not math.isfinite(score_threshold)
    ):
        raise ConfigurationError(
            f"score_threshold must be a finite number or None, got {score_threshold!r:.40}"
        )


#: The routes an endpoint URL may end with, and the wire form each names (the user's word).
_ROUTES = {"/rerank": "tei", "/v1/rerank": "cohere", "/v2/rerank": "cohere", "/v1": "cohere"}


class RerankClient(TaskClient):
    """Framework-free reranking over the router or any re-ranker endpoint, sync and async.

    Example::

        client = RerankClient(endpoint_url="http://127.0.0.1:8081")    # a TEI re-ranker
        client.score("where is paris?", ["Paris is in France.", "Bananas"])  # float32, (2,)
        client.rerank("where is paris?", docs, top_n=3)    # [RerankResult(index, score), ...]
    """

    task_kind = "reranking"

    # The chosen wire form and the probe it came from belong to this object: a copy decides anew.
    _transient = (*TaskClient._transient, "_info", "_form", "rate_limiter")

    def __init__(
        self,
        model: str | None = None,
        endpoint_url: str | None = None,
        *,
        options: RerankOptions | None = None,
        **connection: Unpack[Connection],
    ) -> None:
        self.options = options or RerankOptions()
        if not isinstance(self.options, RerankOptions):
            raise ConfigurationError(
                f"options must be a RerankOptions, got {type(self.options).__name__}"
            )
        max_connections = max(16, self.options.max_concurrency * 2)
        target, config = connect(model, endpoint_url, connection, max_connections=max_connections)
        if not target.is_endpoint and self.options.protocol in ("tei", "cohere"):
            raise ConfigurationError(
                f"protocol={self.options.protocol!r} needs endpoint_url=...: a model id on the "
                "router is served by text classification (protocol='hf-inference' or 'auto')"
            )
        super().__init__(target, config)
        self._form: tuple[WireForm, str] | None = None
        self._labels: set[str] = set()  # every label the server's answers named
        #: Acquired before every request (LangChain's ``BaseRateLimiter``); not copied.
        self.rate_limiter: RateLimiter | None = None

    @property
    def protocol(self) -> str | None:
        """The wire form in use: the one asked for, or what ``auto`` chose (None before that)."""
        if self.options.protocol != "auto":
            return self.options.protocol
        return None if self._form is None else self._form[0].name

    # -- public calls ---------------------------------------------------------------------------

    def score(self, query: str, texts: Sequence[str], *, batch_size: int | None = None) -> Scores:
        """float32 scores of ``texts`` for ``query``, in input order (``-inf`` for empty ones)."""
        query, items, kept = check_query(query), *check_documents(texts)
        return self.run(self._score(query, items, kept, batch_size))

    async def ascore(
        self, query: str, texts: Sequence[str], *, batch_size: int | None = None
    ) -> Scores:
        """Async :meth:`score`; safe from any event loop."""
        query, items, kept = check_query(query), *check_documents(texts)
        return await self.arun(self._score(query, items, kept, batch_size))

    def rerank(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        batch_size: int | None = None,
    ) -> list[RerankResult]:
        """``(index, score)`` of ``texts`` by score, highest first, ties by position.

        ``score_threshold`` drops results scored below it, then ``top_n`` keeps the first ones
        (None: all). Empty documents are left out.
        """
        check_cut(top_n, score_threshold)
        query, items, kept = check_query(query), *check_documents(texts)
        scores = self.run(self._score(query, items, kept, batch_size))
        return rank(scores, kept, top_n, score_threshold)

    async def arerank(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        batch_size: int | None = None,
    ) -> list[RerankResult]:
        """Async :meth:`rerank`; safe from any event loop."""
        check_cut(top_n, score_threshold)
        query, items, kept = check_query(query), *check_documents(texts)
        scores = await self.arun(self._score(query, items, kept, batch_size))
        return rank(scores, kept, top_n, score_threshold)

    def score_pairs(
        self, pairs: Sequence[tuple[str, str]], *, batch_size: int | None = None
    ) -> Scores:
        """float32 scores of ``(query, text)`` pairs, in input order; any number of queries."""
        return self.run(self._score_groups(len(pairs), group_pairs(pairs), batch_size))

    async def ascore_pairs(
        self, pairs: Sequence[tuple[str, str]], *, batch_size: int | None = None
    ) -> Scores:
        """Async :meth:`score_pairs`; safe from any event loop."""
        return await self.arun(self._score_groups(len(pairs), group_pairs(pairs), batch_size))

    # -- the job --------------------------------------------------------------------------------

    async def _wire_form(self) -> tuple[WireForm, str]:
        """The wire form and URL of this client (see :meth:`TaskClient.choose_wire`): an
        explicit ``protocol``, else the route the URL ends with, else ``GET /info``."""
        routes = _ROUTES if self.options.protocol == "auto" else None
        name = await self.choose_wire(self._decide_form, routes)
        self.options.check_form(name)
        form = WIRE_FORMS[name]
        self._form = (form, form.route(self.target))
        return self._form

    async def _decide_form(self) -> str:
        name: str = self.options.protocol
        if name != "auto":
            return name  # an explicit protocol is trusted: the server will say no
        if not self.target.is_endpoint:
            return "hf-inference"
        info, where = await self._endpoint_info(), self.target.describe()
        refuse_non_rerankers(info, where)
        return form_from_info(info, where)

    async def _batch_limit(self, batch_size: int | None) -> int:
        limit = self.options.batch_size if batch_size is None else batch_size
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"batch_size must be an integer >= 1, got {limit!r:.40}")
        server_max = (await self._endpoint_info()).get("max_client_batch_size")
        if isinstance(server_max, int) and not isinstance(server_max, bool) and server_max > 0:
            limit = min(limit, server_max)
        return limit

    async def _score_groups(self, n: int, groups: list[Group], batch_size: int | None) -> Scores:
        out = np.full(n, -np.inf, dtype=np.float32)
        for k, (query, positions, texts, kept) in enumerate(groups):  # each query batched
            try:
                out[positions] = await self._score(query, texts, kept, batch_size)
            except InferenceError as error:
                missing = [positions[i] for i in error.positions or ()]
                later = [i for group in groups[k + 1 :] for i in group[1]]
                raise error.with_positions(sorted(missing + later)) from error
        return out

    async def _score(
        self, query: str, items: list[str], kept: list[int], batch_size: int | None
    ) -> Scores:
        out = np.full(len(items), -np.inf, dtype=np.float32)
        if not kept:
            return out
        form, url = await self._wire_form()
        limit = await self._batch_limit(batch_size)
        docs = [items[i] for i in kept]
        scores = np.empty(len(docs), dtype=np.float32)

        async def send(start: int, stop: int) -> Scores:
            body = form.build(query, docs[start:stop], self.options)
            payload = await self.async_transport.request(Request(url, json=body))
            first, last = kept[start], kept[stop - 1]
            where = f"documents {first}-{last}" if stop - start > 1 else f"document {first}"
            return form.decode(payload, stop - start, self.options, where, url, self._labels)

        def collect(start: int, stop: int, batch: Scores) -> None:
            scores[start:stop] = batch

        try:
            await run_batches(
                len(docs),
                limit,
                self.options.max_concurrency,
                send,
                collect,
                rate_limiter=self.rate_limiter,
            )
        except InferenceError as error:
            # Positions among the documents sent, mapped back to the caller's.
            raise error.with_positions([kept[i] for i in error.positions or ()]) from error
        out[kept] = scores
        return out
