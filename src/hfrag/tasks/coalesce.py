"""Coalesced single-input calls: many concurrent ``embed_query`` calls sent as one request.

A web app answering many users calls ``embed_query`` once per user, often at the same moment.
A :class:`Coalescer` joins such calls into one job, and each caller gets its own row back:

- a call that finds nothing of its kind in flight is sent at once (on the loop's next turn, so
  calls made in the same instant still join it): a lone call waits for nothing;
- a call that finds one in flight waits, with the others that arrive meanwhile, until that one
  is answered or ``window`` seconds have passed, whichever is first, and they go as one job (cut
  into batches by :func:`~hfrag.tasks.batching.run_batches` as any job is);
- a job's answer is placed by position: caller *i* gets row *i*;
- an error caused by one input (a 400/422 for it) reaches only that caller: the job is run with
  ``isolate``, which splits a rejected batch down to the input that causes it; an error of the
  endpoint (unreachable, overloaded past the retries) reaches every caller of that job, as it
  would have reached each of them alone;
- a caller that gives up (cancelled, its deadline) leaves; the others still get their rows.

Everything runs on hfrag's private loop (every public call goes through it), so no lock is
needed; a forked child starts with an empty coalescer. The job runs in a fresh context: it is
bounded by the client's own deadline, not by the first caller's.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from hfrag.errors import InferenceError

__all__ = ["Coalescer", "Outcome"]

R = TypeVar("R")


@dataclass
class Outcome(Generic[R]):
    """What a coalesced job gives back: a row per input, or the error of that input."""

    rows: list[R | None]
    errors: dict[int, Exception] = field(default_factory=dict)


#: ``run(inputs)``: one job of the joined inputs, errors of single inputs in ``errors``.
Runner = Callable[[list[str]], Awaitable[Outcome[R]]]


class Coalescer(Generic[R]):
    """Joins concurrent single-input calls into jobs of ``run`` (see the module docstring)."""

    def __init__(self, run: Runner[R], window: float, max_inputs: int) -> None:
        self.run = run
        self.window = window
        self.max_inputs = max_inputs
        self.jobs = 0  # jobs sent, for tests and benchmarks
        self._pid = os.getpid()
        self._pending: list[tuple[str, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._timer: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, text: str) -> R:
        """The row of ``text``, sent alone or joined with concurrent calls."""
        if self._pid != os.getpid():  # the parent's jobs and timers are not here
            self.__init__(self.run, self.window, self.max_inputs)  # type: ignore[misc]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((text, future))
        empty = contextvars.Context()  # the job is no caller's: see the module docstring
        if len(self._pending) >= self.max_inputs:
            self._flush()
        elif self._timer is None:
            delay = 0.0 if self._in_flight == 0 else self.window
            self._timer = loop.call_later(delay, self._flush, context=empty)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = [(text, future) for text, future in self._pending if not future.done()]
        self._pending = []
        if not batch:
            return
        self._in_flight += 1
        self.jobs += 1
        loop = asyncio.get_running_loop()
        task = contextvars.Context().run(loop.create_task, self._job(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _job(self, batch: list[tuple[str, asyncio.Future[R]]]) -> None:
        try:
            outcome = await self.run([text for text, _ in batch])
        except BaseException as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(_for_one(error))
            if not isinstance(error, Exception):
                raise
        else:
            for i, (_, future) in enumerate(batch):
                if future.done():
                    continue
                failure = outcome.errors.get(i)
                if failure is not None:
                    future.set_exception(_for_one(failure))
                else:
                    future.set_result(outcome.rows[i])  # type: ignore[arg-type]
        finally:
            self._in_flight -= 1
            if self._pending and self._in_flight == 0:
                self._flush()  # the endpoint answered: the waiting calls need not wait more


def _for_one(error: BaseException) -> BaseException:
    """The job's error as one caller's: its positions are its own input, 0."""
    if isinstance(error, InferenceError) and error.positions:
        return error.with_positions([0])
    return error
