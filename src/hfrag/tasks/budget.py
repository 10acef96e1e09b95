"""One concurrency budget per endpoint, shared by every client, thread and event loop of a process.

A :class:`Budget` admits requests to one endpoint while fewer than its
:class:`~hfrag.tasks.adaptive.AdaptiveLimit` allows are in flight, and learns from each answer:
a good one is a latency sample, an overload (429, 503) cuts the limit, a server-requested wait
(``Retry-After``, the router's ``ratelimit: ...;t=N``) pauses every admission to the endpoint
until it has passed. :func:`budget_for` hands out the one budget of an endpoint, so two calls at
once, a LangChain and a LlamaIndex class, or a batch job and a query path on the same endpoint
share its capacity instead of each taking all of it.

An endpoint is the scheme and host of an endpoint URL (one TEI server, one Inference Endpoint:
its routes share its capacity) and the full URL of a router route (each model and provider is a
deployment of its own); see :func:`endpoint_key`.

It is thread-safe and loop-agnostic: state sits behind a ``threading.Lock``, and a waiter is a
future of its own event loop, resolved there with ``call_soon_threadsafe``. Waiters also re-check
on a short timer, so a wake-up can never be lost (a paused endpoint has no release to wake it).
After ``os.fork`` the child starts with no budgets: the parent's in-flight counts are not its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from hfrag.tasks.adaptive import AdaptiveLimit

__all__ = ["Budget", "Ticket", "budget_for", "endpoint_key", "forget_budgets"]

#: Seconds a waiter sleeps before it looks again by itself (a safety net, not the wake-up path).
RECHECK = 0.25


@dataclass(frozen=True)
class Ticket:
    """One admitted request: when it was sent and how many were in flight with it."""

    sent: float
    in_flight: int


_Handover = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Ticket]", Ticket]


class Budget:
    """The admission gate and adaptive limit of one endpoint (see the module docstring).

    Example::

        budget = budget_for(endpoint_key("http://127.0.0.1:8080/embed", True), ceiling=32)
        ticket = await budget.acquire()
        try:
            answer = await send(...)
        except RateLimitError as error:
            budget.overloaded(ticket, error.retry_after)
        else:
            budget.succeeded(ticket)
    """

    def __init__(self, key: str, ceiling: int) -> None:
        self.key = key
        self.limit = AdaptiveLimit(ceiling=ceiling)
        self.in_flight = 0
        self.paused_until = 0.0
        #: Overload answers at a limit of 1 since the last good answer: the endpoint refuses
        #: even one request (a job waits its backoff, and gives up past its ``max_retries``).
        self.strikes = 0
        #: Requests admitted, good answers and overload answers, since the budget was made.
        self.sent = self.answered = self.overloads = 0
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[Ticket]]] = deque()

    def __repr__(self) -> str:
        return f"Budget({self.key!r}, in_flight={self.in_flight}, {self.limit!r})"

    @property
    def allowed(self) -> int:
        """Requests the endpoint gets at once now."""
        return self.limit.allowed

    def lower_ceiling(self, ceiling: int) -> None:
        """Keep the ceiling at most ``ceiling`` (the lowest any client or ``/info`` set)."""
        with self._lock:
            if ceiling < self.limit.ceiling:
                self.limit.set_ceiling(ceiling)

    async def acquire(self) -> Ticket:
        """Wait for a free place (and for any pause to end); the caller must release it."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                now = time.monotonic()
                pause = self.paused_until - now
                if pause <= 0 and not self._waiters and self.in_flight < self.allowed:
                    return self._admit(now)
                future: asyncio.Future[Ticket] | None = None
                handed: list[_Handover] = []
                if pause <= 0:
                    future = loop.create_future()
                    self._waiters.append((loop, future))
                    handed = self._grant(now)  # places freed by a pause's end or a new limit
            self._hand(handed)
            if future is None:
                await asyncio.sleep(pause)
                continue
            try:
                await asyncio.wait({future}, timeout=RECHECK)
            except BaseException:
                self._abandon(loop, future)
                raise
            if future.done():
                return future.result()
            self._abandon(loop, future)

    def _admit(self, now: float) -> Ticket:
        self.in_flight += 1
        self.sent += 1
        return Ticket(now, self.in_flight)

    def _abandon(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Ticket]) -> None:
        """A waiter leaves: out of the queue, or, if it was handed a place already, give it back."""
        with self._lock, contextlib.suppress(ValueError):
            self._waiters.remove((loop, future))
            future.cancel()
            return
        if future.done() and not future.cancelled():
            self._release()
        else:
            future.cancel()  # the hand-over callback sees it and gives the place back

    def succeeded(self, ticket: Ticket) -> None:
        """A good answer: a latency sample for the limit."""
        now = time.monotonic()
        with self._lock:
            self.answered += 1
            self.strikes = 0
            self.limit.on_sample(now - ticket.sent, ticket.in_flight, now)
        self._release()

    def overloaded(self, ticket: Ticket, wait: float | None = None) -> None:
        """A 429 or 503: cut the limit; ``wait`` (the server's hint) pauses the endpoint."""
        now = time.monotonic()
        with self._lock:
            self.overloads += 1
            if self.limit.allowed == 1:
                self.strikes += 1
            self.limit.on_overload(self.in_flight - 1, now)
            if wait is not None and wait > 0:
                self.paused_until = max(self.paused_until, now + wait)
        self._release()

    def failed(self, ticket: Ticket) -> None:
        """Any other end (an error, a cancellation): the place is freed, nothing is learned."""
        self._release()

    def _release(self) -> None:
        with self._lock:
            self.in_flight -= 1
            handed = self._grant(time.monotonic())
        self._hand(handed)

    def _grant(self, now: float) -> list[_Handover]:
        """Places for the first waiters, as many as are free (called holding the lock)."""
        handed: list[_Handover] = []
        while self._waiters and self.in_flight < self.allowed and now >= self.paused_until:
            loop, future = self._waiters.popleft()
            handed.append((loop, future, self._admit(now)))
        return handed

    def _hand(self, handed: list[_Handover]) -> None:
        """Resolve each granted waiter on its own loop (called without the lock)."""
        for loop, future, ticket in handed:
            try:
                loop.call_soon_threadsafe(self._hand_over, future, ticket)
            except RuntimeError:  # that loop has closed: its waiter is gone
                self._release()

    def _hand_over(self, future: asyncio.Future[Ticket], ticket: Ticket) -> None:
        if future.done():  # the waiter left (cancelled, or timed out and went on)
            self._release()
        else:
            future.set_result(ticket)


def endpoint_key(url: str, is_endpoint: bool) -> str:
    """Which budget a request URL counts against (see the module docstring)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host  # never the URL's credentials
    if is_endpoint:
        return f"{parts.scheme}://{netloc}"
    return f"{parts.scheme}://{netloc}{parts.path}"


_REGISTRY: dict[str, Budget] = {}
_REGISTRY_LOCK = threading.Lock()


def budget_for(key: str, ceiling: int) -> Budget:
    """The process's budget for endpoint ``key``, made on first use; its ceiling is the lowest
    any caller asked for."""
    with _REGISTRY_LOCK:
        budget = _REGISTRY.get(key)
        if budget is None:
            budget = _REGISTRY[key] = Budget(key, ceiling)
    budget.lower_ceiling(ceiling)
    return budget


def forget_budgets() -> None:
    """Drop every budget (a forked child's start; tests that want a fresh endpoint)."""
    global _REGISTRY_LOCK
    _REGISTRY_LOCK = threading.Lock()
    _REGISTRY.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=forget_budgets)
