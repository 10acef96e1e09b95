"""Running one job as many batches: bounded concurrency, adaptive batch size, nothing lost.

:func:`run_batches` cuts ``n`` inputs into slices of at most ``batch_size`` inputs (and, when
``weights`` are given, at most ``max_weight`` in weight: the estimated tokens of TEI's
``max_batch_tokens``), sends them through ``send(start, stop)`` and hands each result to
``collect`` with its slice, so results land in input order whatever order batches finish in.
This is the one batching loop of hfrag: texts in, one call per batch, results placed by
position; any task with a list input (embeddings, sparse embeddings, rerank) runs on it.

How many go at once:

- ``max_concurrency`` alone: at most that many batches of this job in flight (fixed);
- with a ``budget`` (:mod:`hfrag.tasks.budget`): ``max_concurrency`` workers, each admitted by
  the endpoint's shared, adaptive budget before it sends. An overload answer (429, 503; the
  sender asks the transport not to retry those, ``Request(paced=True)``) cuts the budget's limit
  and puts the batch back at the front of the queue; the server's wait hint pauses the
  endpoint. Overloads with no good answer in between are retried up to ``retry.max_retries``
  times, with the transport's backoff once the limit is at 1, then the error is raised.

What can go wrong:

- a batch the server rejects as too large is split (to the size the server named, else in half)
  and the smaller size is kept for the rest of the job;
- with a ``rate_limiter``, every request (a resent one too) first takes its ``aacquire()``;
- with ``isolate``, a batch rejected for its input (400/422, a too-long input...) is split in
  halves down to the one input that causes it; that input's error goes to ``isolate(position,
  error)`` and every other input is still sent (coalesced queries: only the caller whose input
  failed gets the error);
- when a batch fails for good, the other batches are cancelled and the error names every input
  position that was not processed.

It runs on hfrag's private loop; sync callers reach it through ``run_sync`` (never
``asyncio.run``), so sync and async share this one loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import numpy as np

from hfrag.errors import (
    BatchTooLargeError,
    InferenceError,
    InvalidRequestError,
    RateLimitError,
    UnavailableError,
)
from hfrag.tasks.budget import Budget
from hfrag.tasks.engine import RateLimiter
from hfrag.transport.retry import RetryPolicy, backoff

T = TypeVar("T")
logger = logging.getLogger("hfrag.tasks")

#: The answers that mean "the endpoint is at capacity": they steer a budget, not the transport.
OVERLOAD = (RateLimitError, UnavailableError)


def slices(
    start: int,
    stop: int,
    size: int,
    weights: Sequence[int] | None = None,
    max_weight: int | None = None,
) -> list[tuple[int, int]]:
    """``[start, stop)`` cut into consecutive slices of at most ``size`` inputs and, with
    ``weights``, at most ``max_weight`` in total weight (an input heavier than that alone)."""
    if weights is None or max_weight is None:
        return [(i, min(i + size, stop)) for i in range(start, stop, size)]
    out: list[tuple[int, int]] = []
    first, total = start, 0
    for i in range(start, stop):
        weight = weights[i]
        if i > first and (i - first >= size or total + weight > max_weight):
            out.append((first, i))
            first, total = i, 0
        total += weight
    if first < stop:
        out.append((first, stop))
    return out


class _Plan:
    """The shared state of one job: pending slices, the current batch limit, what is done."""

    def __init__(
        self, n: int, batch_size: int, weights: Sequence[int] | None, max_weight: int | None
    ) -> None:
        self.limit = batch_size
        self.weights, self.max_weight = weights, max_weight
        self.pending: deque[tuple[int, int]] = deque(self.cut(0, n))
        self.done = np.zeros(n, dtype=bool)
        self.in_flight = 0
        self.changed = asyncio.Condition()

    def cut(self, start: int, stop: int, size: int | None = None) -> list[tuple[int, int]]:
        return slices(start, stop, size or self.limit, self.weights, self.max_weight)

    def requeue(self, slices: list[tuple[int, int]]) -> None:
        self.pending.extendleft(reversed(slices))

    def shrink(self, start: int, stop: int, error: BatchTooLargeError) -> None:
        size = stop - start
        if size <= 1:
            raise InvalidRequestError(
                f"the server rejects even a single input as too large: {error.message}",
                status=error.status,
                error_type=error.error_type,
                url=error.url,
                body=error.body,
            ) from error
        limit = error.max_batch_size or size // 2
        self.limit = max(1, min(self.limit, limit, size - 1))
        logger.debug("batch of %d rejected as too large; batch size now %d", size, self.limit)
        self.requeue(self.cut(start, stop))

    def missing(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self.done)]


async def run_batches(
    n: int,
    batch_size: int,
    max_concurrency: int,
    send: Callable[[int, int], Awaitable[T]],
    collect: Callable[[int, int, T], None],
    progress: Callable[[int], None] | None = None,
    *,
    budget: Budget | None = None,
    retry: RetryPolicy | None = None,
    weights: Sequence[int] | None = None,
    max_weight: int | None = None,
    isolate: Callable[[int, InferenceError], None] | None = None,
    rate_limiter: RateLimiter | None = None,
) -> None:
    """Send inputs ``[0, n)`` in batches through ``send(start, stop)``; ``collect`` each result.

    See the module docstring for ``budget``, ``weights``/``max_weight``, ``isolate`` and
    ``rate_limiter``.
    """
    if n == 0:
        return
    plan = _Plan(n, batch_size, weights, max_weight)
    policy = retry or RetryPolicy()

    async def attempt(start: int, stop: int) -> T | None:
        """One batch through the budget: its result, or None when it was put back."""
        if rate_limiter is not None:
            await rate_limiter.aacquire(blocking=True)
        if budget is None:
            return await send(start, stop)
        ticket = await budget.acquire()
        try:
            result = await send(start, stop)
        except OVERLOAD as error:
            strikes = budget.strikes + (budget.allowed == 1)
            wait = error.retry_after
            if wait is None and strikes:  # refused even alone: wait as the transport would
                wait = backoff(strikes - 1, policy.backoff_base, policy.backoff_max)
            budget.overloaded(ticket, None if wait is None else min(wait, policy.max_wait))
            if strikes > policy.max_retries:
                raise
            logger.debug(
                "retrying inputs %d-%d when %s admits them, after %s",
                start,
                stop - 1,
                budget,
                error.args[0],
            )
            plan.pending.appendleft((start, stop))
            return None
        except BaseException:
            budget.failed(ticket)
            raise
        budget.succeeded(ticket)
        return result

    def place(start: int, stop: int) -> None:
        plan.done[start:stop] = True
        if progress is not None:
            progress(stop - start)

    async def worker() -> None:
        while True:
            async with plan.changed:
                while not plan.pending and plan.in_flight:
                    await plan.changed.wait()
                if not plan.pending:
                    return
                start, stop = plan.pending.popleft()
                plan.in_flight += 1
            try:
                if stop - start > plan.limit:  # queued before the limit shrank
                    plan.requeue(plan.cut(start, stop))
                    continue
                try:
                    result = await attempt(start, stop)
                except BatchTooLargeError as error:
                    plan.shrink(start, stop, error)
                    continue
                except InvalidRequestError as error:
                    if isolate is None:
                        raise
                    if stop - start > 1:  # find the input that causes it
                        middle = (start + stop) // 2
                        plan.requeue([(start, middle), (middle, stop)])
                    else:
                        isolate(start, error.with_positions([start]))
                        place(start, stop)
                    continue
                if result is None:
                    continue
                collect(start, stop, result)
                place(start, stop)
            finally:
                async with plan.changed:
                    plan.in_flight -= 1
                    plan.changed.notify_all()

    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, min(max_concurrency, n)))]
    try:
        await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in workers:
            task.cancel()
        outcomes = await asyncio.gather(*workers, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, InferenceError):
            raise outcome.with_positions(plan.missing()) from outcome
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            raise outcome
