"""Which wire form a task client speaks: one rule for every task (embeddings, rerank, generation).

- An explicit route at the end of the endpoint URL is the user's word and wins over any probe:
  ``.../rerank`` is TEI's re-ranker even when the server's ``GET /info`` describes another model
  (an all-in-one server), ``/v1/rerank`` Cohere's form, ``/generate`` TGI's. Each task gives its
  table of routes.
- Otherwise the task's own decision runs (it may read ``GET /info``, ``GET /v1/models``, the
  Hub's provider mapping), once: concurrent first calls share it, later calls reuse it.
- A probe that failed (a waking endpoint's 503, a timeout, a refused connection; not a 404,
  which says the server has no ``/info``) is remembered for :data:`PROBE_MEMORY` seconds only,
  and so is any decision made while it was failing: the first call after that asks again. A
  cached framework adapter therefore recovers once its endpoint is up.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

__all__ = ["PROBE_MEMORY", "WireChoice", "explicit_route"]

T = TypeVar("T")

#: Seconds a failed probe (and a choice made without it) is remembered before asking again.
PROBE_MEMORY = 30.0


def explicit_route(url: str | None, routes: Mapping[str, T]) -> T | None:
    """What the route the endpoint URL ends with names in ``routes`` (the longest match wins:
    ``/v1/rerank`` before ``/rerank``), or None for a URL that names none of them."""
    if url is None:
        return None
    path = urlsplit(url).path.rstrip("/")
    for route in sorted(routes, key=len, reverse=True):
        if path.endswith(route.rstrip("/")):
            return routes[route]
    return None


def expiry_after(failed: bool) -> float | None:
    """When a remembered outcome expires: never for an answer, soon for a failed probe."""
    return time.monotonic() + PROBE_MEMORY if failed else None


def fresh(expires: float | None) -> bool:
    """Whether an outcome remembered until ``expires`` (None: for good) still holds."""
    return expires is None or time.monotonic() < expires


class WireChoice(Generic[T]):
    """One client's remembered choice (see the module docstring). Not copied with its client:
    a copy or a forked child decides anew."""

    def __init__(self) -> None:
        self._value: T | None = None
        self._expires: float | None = None
        self._lock: asyncio.Lock | None = None
        self._pid = os.getpid()

    @property
    def value(self) -> T | None:
        """The choice made so far, if it still holds (None: not decided, or expired)."""
        return self._value if self._value is not None and fresh(self._expires) else None

    def set(self, value: T, expires: float | None = None) -> None:
        """Remember ``value`` (a choice the task learned by other means, e.g. a fallback)."""
        self._value, self._expires = value, expires

    async def get(
        self,
        url: str | None,
        routes: Mapping[str, T],
        decide: Callable[[], Awaitable[T]],
        probe_failed: Callable[[], bool],
    ) -> T:
        """The choice: told by ``url``'s route, else ``decide()`` once; ``probe_failed()``
        says, after deciding, whether the decision rested on a failed probe."""
        value = self.value
        if value is not None:
            return value
        told = explicit_route(url, routes)
        if told is not None:
            self.set(told)
            return told
        if self._lock is None or self._pid != os.getpid():  # a fork's copy may be held
            self._lock, self._pid = asyncio.Lock(), os.getpid()
        async with self._lock:
            value = self.value
            if value is None:
                value = await decide()
                self.set(value, expiry_after(probe_failed()))
            return value

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def __deepcopy__(self, memo: dict[int, Any]) -> WireChoice[T]:
        return WireChoice()
