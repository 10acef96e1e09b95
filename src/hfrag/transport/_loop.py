"""hfrag's private event loop, on a daemon thread: why the async driver works from any loop.

An ``httpx.AsyncClient`` belongs to the event loop its connections were opened on. Callers bring
many loops: ``asyncio.run`` twice in a row, Jupyter's running loop, a framework's worker threads.
So all async I/O runs on one loop that hfrag owns, and coroutines from any caller's loop await it
through :func:`run_async` (a thread-safe future); blocking callers use :func:`run_sync`. Sync
methods therefore never call ``asyncio.run`` and work inside a running loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        # A forked child's copies of the parent's loops: never closed or touched there (their
        # epoll set is shared with the parent), only kept from being garbage-collected.
        self._orphans: list[asyncio.AbstractEventLoop] = []

    def after_fork_in_child(self) -> None:
        """Forget the parent's loop thread (it does not exist here) and its lock's state."""
        self._lock = threading.Lock()
        if self._loop is not None:
            self._orphans.append(self._loop)
        self._loop, self._thread, self._pid = None, None, os.getpid()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid():  # forked without the fork hook (should not happen)
                self.after_fork_in_child()
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(loop, ready), name="hfrag-io", daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def is_current(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread


_IO = _LoopThread()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_IO.after_fork_in_child)


def io_loop() -> asyncio.AbstractEventLoop:
    """The private loop (started on first use)."""
    return _IO.loop()


def on_io_loop() -> bool:
    """True when called from the private loop's thread."""
    return _IO.is_current()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the private loop and block until it is done.

    Safe from any thread, including one with a running event loop (Jupyter). Interrupting the
    wait (Ctrl-C) cancels the coroutine.
    """
    if on_io_loop():
        coro.close()
        raise RuntimeError(
            "a blocking hfrag call was made from hfrag's own I/O loop; use the async method"
        )
    future = asyncio.run_coroutine_threadsafe(coro, io_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


async def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on the private loop from any event loop; cancellation propagates."""
    if on_io_loop():
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, io_loop()))
