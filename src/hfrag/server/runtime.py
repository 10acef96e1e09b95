"""Running model code off the event loop: worker threads, bounded queues, dynamic batching.

A real model takes milliseconds to seconds per call; run on the event loop it would stall
``/health`` and every other request. ``ModelRuntime`` gives each group of work its own worker
thread (``embed`` for embedding and scoring, ``generate`` for generation, so a long answer never
holds up an embedding), and bounds what may wait for them: past ``max_queue`` waiting jobs a
request is refused with TEI's 429 ``Model is overloaded`` instead of growing an unbounded queue.

Generation streams through ``stream``: the worker thread hands each token to the event loop as
soon as the model produces it, through a channel of a few slots (a reader that falls behind
pauses the model rather than growing a queue), and stops at the next token once the reader
leaves (the client disconnected, the request was cancelled, or the answer ended early).

Embedding calls are batched as TEI does: requests that arrive while the worker is busy (or
within ``batch_window`` seconds of an idle worker) are joined into one ``backend.embed`` call,
up to ``max_batch_tokens`` estimated tokens, and each request gets its own rows back. Batching
never changes a vector beyond float rounding (padding is masked out of the mean).

The runtime is bound to the event loop that first uses it; ``close()`` stops its threads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from hfrag.server.validation import ApiError

__all__ = ["ClientGone", "ModelRuntime", "overloaded"]

T = TypeVar("T")
FloatArray = npt.NDArray[np.float32]
_END = object()


def overloaded() -> ApiError:
    """TEI's answer when its queue is full."""
    return ApiError(429, {"error": "Model is overloaded", "error_type": "overloaded"})


class ClientGone(Exception):
    """The reader of a stream went away (disconnected, or stopped reading).

    A class of its own, not ``ConnectionError``, so a model that raises ``ConnectionResetError``
    is reported as a failed generation rather than taken for a client that left.
    """


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


@dataclass(frozen=True)
class _Failure:
    error: Exception


class _Channel:
    """Items from one worker thread to the event loop, at most ``size`` in between.

    The thread takes a slot before handing an item over and the reader gives it back when it
    takes the item, so a thread ahead of its reader waits; ``stop()`` wakes it to quit.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        if size < 1:
            raise ValueError("buffer must be at least 1")
        self.loop = loop
        self.items: collections.deque[Any] = collections.deque()
        self.ready = asyncio.Event()
        self.slots = threading.Semaphore(size)
        self.stopped = threading.Event()

    # -- worker thread --------------------------------------------------------------------------

    def pump(self, produce: Callable[[], Iterable[Any]]) -> None:
        """Run ``produce()`` and hand its items over until it ends or the reader stops."""
        if self.stopped.is_set():
            return
        iterator: Iterator[Any] | None = None
        try:
            iterator = iter(produce())
            for item in iterator:
                self.slots.acquire()
                if self.stopped.is_set():
                    return
                self._send(item)
                if self.stopped.is_set():  # don't start a token nobody will read
                    return
            self._send(_END)
        except Exception as exc:
            self._send(_Failure(exc))
        except BaseException as exc:  # never leave the reader waiting for an item
            self._send(_Failure(RuntimeError(f"model thread stopped: {exc!r}")))
            raise
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _send(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.put, item)
        except RuntimeError:  # the loop is closed: nobody reads any more
            self.stopped.set()

    # -- event loop -----------------------------------------------------------------------------

    def put(self, item: Any) -> None:
        """Queue ``item`` for the reader (on the loop)."""
        self.items.append(item)
        self.ready.set()

    async def get(self, alive: Callable[[], bool] | None, poll: float) -> Any:
        """The next item; ``ClientGone`` once ``alive()`` says the reader is gone."""
        if alive is not None and not alive():
            raise ClientGone("the client went away")
        while not self.items:
            self.ready.clear()
            if alive is None:
                await self.ready.wait()
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.ready.wait(), poll)
            if not self.items and not alive():
                raise ClientGone("the client went away")
        item = self.items.popleft()
        self.slots.release()
        return item

    def stop(self) -> None:
        """Tell the thread to stop before its next item (and wake it if it waits for room)."""
        self.stopped.set()
        self.slots.release()


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

    async def stream(
        self,
        group: str,
        produce: Callable[[], Iterable[T]],
        *,
        buffer: int = 8,
        alive: Callable[[], bool] | None = None,
        poll: float = 0.1,
    ) -> AsyncGenerator[T, None]:
        """The items of ``produce()``, iterated on the worker thread of ``group``, as they come.

        - At most ``buffer`` items wait between the thread and the loop; past that the thread
          pauses, so a slow reader holds the model back instead of growing a queue.
        - Leaving the ``async for`` early (``break``, an exception, cancellation, ``aclose()``)
          stops the thread before its next item and closes ``produce()``'s iterator; a stream
          left while still queued behind another job never starts.
        - ``alive()`` is checked before each item and every ``poll`` seconds while waiting for
          one: once it is false (the client went away) the stream raises
          ``ClientGone`` and stops the thread likewise.
        - An exception raised by ``produce`` on the thread is raised here.

        Consume it with ``contextlib.aclosing`` so an abandoned stream stops its thread at once.
        """
        self._admit(group)
        loop = asyncio.get_running_loop()
        channel = _Channel(loop, buffer)
        try:
            job = self._executor(group).submit(channel.pump, produce)
            done = asyncio.wrap_future(job, loop=loop)
        except BaseException:
            self._release(group)
            raise

        def finished(future: asyncio.Future[None]) -> None:
            # Counted as waiting until the thread has really left the job.
            self._release(group)
            if future.cancelled():  # dropped by close() before it started
                channel.put(_Failure(RuntimeError("the model runtime was closed")))
            else:
                future.exception()  # observed: the failure, if any, was sent to the reader

        done.add_done_callback(finished)
        try:
            while True:
                item = await channel.get(alive, poll)
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            channel.stop()
            # A job still queued never starts, and gives its queue slot back now (through
            # ``finished``); one already running is not cancelled and keeps its slot until
            # the thread leaves it.
            job.cancel()

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
