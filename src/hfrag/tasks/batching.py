"""Running one job as many batches: bounded concurrency, adaptive batch size, nothing lost.

:func:`run_batches` cuts ``n`` inputs into slices of at most ``batch_size``, sends at most
``max_concurrency`` at once, and hands each result to ``collect`` with its slice, so results land
in input order whatever order batches finish in. A batch the server rejects as too large is split
(to the size the server named, else in half) and the smaller size is kept for the rest of the job.
When a batch fails for good, the other batches are cancelled and the error names every input
position that was not processed.

It runs on hfrag's private loop; sync callers reach it through ``run_sync`` (never
``asyncio.run``), so sync and async share this one loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np

from hfrag.errors import BatchTooLargeError, InferenceError, InvalidRequestError

T = TypeVar("T")
logger = logging.getLogger("hfrag.tasks")


def slices(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut into consecutive slices of at most ``size``."""
    return [(i, min(i + size, stop)) for i in range(start, stop, size)]


class _Plan:
    """The shared state of one job: pending slices, the current batch limit, what is done."""

    def __init__(self, n: int, batch_size: int) -> None:
        self.limit = batch_size
        self.pending: deque[tuple[int, int]] = deque(slices(0, n, batch_size))
        self.done = np.zeros(n, dtype=bool)
        self.in_flight = 0
        self.changed = asyncio.Condition()

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
        self.pending.extendleft(reversed(slices(start, stop, self.limit)))

    def missing(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self.done)]


async def run_batches(
    n: int,
    batch_size: int,
    max_concurrency: int,
    send: Callable[[int, int], Awaitable[T]],
    collect: Callable[[int, int, T], None],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Send inputs ``[0, n)`` in batches through ``send(start, stop)``; ``collect`` each result."""
    if n == 0:
        return
    plan = _Plan(n, batch_size)

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
                    plan.pending.extendleft(reversed(slices(start, stop, plan.limit)))
                    continue
                try:
                    result = await send(start, stop)
                except BatchTooLargeError as error:
                    plan.shrink(start, stop, error)
                    continue
                collect(start, stop, result)
                plan.done[start:stop] = True
                if progress is not None:
                    progress(stop - start)
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
