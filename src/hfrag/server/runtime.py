"""Running model code off the event loop: worker threads, bounded queues, dynamic batching.

A real model takes milliseconds to seconds per call; run on the event loop it would stall
``/health`` and every other request. ``ModelRuntime`` gives each group of work its own worker
thread (``embed`` for embedding and scoring, ``generate`` for generation, so a long answer never
holds up an embedding), and bounds what may wait for them: past ``max_queue`` waiting jobs a
request is refused with TEI's 429 ``Model is overloaded`` instead of growing an unbounded queue.

Embedding calls are batched as TEI does: requests that arrive while the worker is busy (or
within ``batch_window`` seconds of an idle worker) are joined into one ``backend.embed`` call,
up to ``max_batch_tokens`` estimated tokens, and each request gets its own rows back. Batching
never changes a vector beyond float rounding (padding is masked out of the mean).

The runtime is bound to the event loop that first uses it; ``close()`` stops its threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from hfrag.server.validation import ApiError

__all__ = ["ModelRuntime", "overloaded"]

T = TypeVar("T")
FloatArray = npt.NDArray[np.float32]
_END = object()


def overloaded() -> ApiError:
    """TEI's answer when its queue is full."""
    return ApiError(429, {"error": "Model is overloaded", "error_type": "overloaded"})


@dataclass
class _Job:
    texts: list[str]
    cost: int
    future: asyncio.Future[FloatArray]


@dataclass
class _Batcher:
    backend: Any
    jobs: list[_Job] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class ModelRuntime:
    """Worker threads and an embedding batcher shared by every request of one server.

    Args:
        max_queue: jobs (requests) that may wait per worker before 429.
        batch_window: seconds an idle embedding worker waits for more requests to batch.
        max_batch_tokens: estimated tokens per embedding batch (TEI's ``max_batch_tokens``).
        max_batch_requests: requests per embedding batch.
    """

    def __init__(
        self,
        *,
        max_queue: int = 512,
        batch_window: float = 0.002,
        max_batch_tokens: int = 16384,
        max_batch_requests: int = 64,
    ) -> None:
        self.max_queue = max_queue
        self.batch_window = batch_window
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_requests = max_batch_requests
        self._lock = threading.Lock()
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._waiting: dict[str, int] = {}
        self._batchers: dict[int, _Batcher] = {}
        self.batches: list[int] = []  # requests per embedding batch, for tests and benchmarks

    def _executor(self, group: str) -> ThreadPoolExecutor:
        with self._lock:
            executor = self._executors.get(group)
            if executor is None:
                executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hfrag-{group}")
                self._executors[group] = executor
            return executor

    def _admit(self, group: str) -> None:
        with self._lock:
            waiting = self._waiting.get(group, 0)
            if waiting >= self.max_queue:
                raise overloaded()
            self._waiting[group] = waiting + 1

    def _release(self, group: str) -> None:
        with self._lock:
            self._waiting[group] -= 1

    def waiting(self, group: str) -> int:
        """Jobs of ``group`` queued or running."""
        with self._lock:
            return self._waiting.get(group, 0)

    async def run(self, group: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the worker thread of ``group`` (429 when its queue is full)."""
        self._admit(group)
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor(group), fn, *args)
        finally:
            self._release(group)

    async def stream(self, group: str, produce: Callable[[], Iterable[T]]) -> AsyncIterator[T]:
        """The items of ``produce()``, iterated on the worker thread, as they come.

        Leaving the ``async for`` early tells the worker to stop after its current item.
        """
        self._admit(group)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def work() -> None:
            try:
                for item in produce():
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                    if stop.is_set():
                        break
                loop.call_soon_threadsafe(queue.put_nowait, _END)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        done = loop.run_in_executor(self._executor(group), work)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            self._release(group)
            if not done.done():
                # The worker finishes its current token and stops; don't leave it unobserved.
                done.add_done_callback(lambda f: f.exception())

    # -- embedding batches ----------------------------------------------------------------------

    async def embed(self, backend: Any, texts: Sequence[str]) -> FloatArray:
        """``backend.embed(texts, normalize=False)``, batched with concurrent requests."""
        if not texts:
            return np.zeros((0, int(backend.dim)), dtype=np.float32)
        batcher = self._batchers.get(id(backend))
        if batcher is None or batcher.backend is not backend:
            batcher = self._batchers[id(backend)] = _Batcher(backend)
        self._admit("embed")
        try:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[FloatArray] = loop.create_future()
            cost = sum(min(len(t) // 3 + 2, 512) for t in texts)
            batcher.jobs.append(_Job(list(texts), cost, future))
            if batcher.task is None or batcher.task.done():
                batcher.task = loop.create_task(self._drain(batcher))
            return await future
        finally:
            self._release("embed")

    def _take(self, batcher: _Batcher) -> list[_Job]:
        batch: list[_Job] = []
        tokens = 0
        while batcher.jobs and len(batch) < self.max_batch_requests:
            job = batcher.jobs[0]
            if batch and tokens + job.cost > self.max_batch_tokens:
                break
            batcher.jobs.pop(0)
            if job.future.done():  # its request was cancelled while waiting
                continue
            batch.append(job)
            tokens += job.cost
        return batch

    async def _drain(self, batcher: _Batcher) -> None:
        loop = asyncio.get_running_loop()
        executor = self._executor("embed")
        if self.batch_window > 0:
            await asyncio.sleep(self.batch_window)
        while batcher.jobs:
            batch = self._take(batcher)
            if not batch:
                continue
            texts = [t for job in batch for t in job.texts]
            self.batches.append(len(batch))
            try:
                vectors = await loop.run_in_executor(executor, batcher.backend.embed, texts, False)
                matrix = np.asarray(vectors, dtype=np.float32)
            except Exception as exc:
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in batch:
                rows = matrix[start : start + len(job.texts)]
                start += len(job.texts)
                if not job.future.done():
                    job.future.set_result(rows)

    def close(self) -> None:
        """Stop the worker threads once their running jobs end (queued ones are dropped)."""
        with self._lock:
            executors = list(self._executors.values())
            self._executors.clear()
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)
