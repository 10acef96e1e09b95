"""Live state of a running server: request counters, scripted answers, faults.

The server's event loop writes this state and test threads read it, so every mutation takes a
lock; readers get plain ``collections.Counter``, ``list`` and ``int`` attributes.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hfrag.server.config import ServerConfig
from hfrag.server.faults import FaultState
from hfrag.server.runtime import ModelRuntime

__all__ = ["CannedResponse", "Counters", "Scripts", "ServerState"]


@dataclass(frozen=True)
class CannedResponse:
    """An answer to send instead of handling a request (see ``ServerHandle.script``).

    Attributes:
        status: HTTP status.
        body: a dict or list (sent as JSON), a str (``text/plain``) or bytes (as given).
        headers: extra response headers.
        content_type: overrides the content type chosen from ``body``.
        sse: raw SSE lines to stream (``text/event-stream``); each is sent followed by ``\\n``,
            so include ``""`` entries for the blank lines that end events.
        drop: close the connection without any response.
    """

    status: int = 200
    body: dict[str, Any] | list[Any] | str | bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    sse: list[str] | None = None
    drop: bool = False


class Counters:
    """What the server saw and answered; safe to read from any thread.

    Attributes:
        requests: ``(path, status)`` of every answered request; status -1 for dropped ones and
            for answers whose client had left before they were sent.
        faults: how many times each fault (``Fault`` value: "none", "stall", "drop", ...) was
            drawn for a POST request.
        texts_ok: each input text of a 200 inference answer (embedded texts, rerank documents,
            ``text_pair`` of classified pairs, similarity ``sentences``), counted per answer.
        items_ok: input items in 200 inference answers.
        batch_sizes: input items of each inference request received (valid or not).
        max_in_flight: peak number of inference requests being handled at once (inside the
            ``max_concurrency`` queue of the faults, so never above that cap).
        max_open: peak number of POST requests open at once, from arrival to answer, queued and
            fault-answered ones included: what clients had in flight, whatever the server's cap.
        headers: request headers (lower-cased names) of every request, in order.
        bodies: decoded JSON bodies of every request with a body, in order (the raw text when
            the body is not JSON).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()
        self.texts_ok: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.items_ok = 0
        self.batch_sizes: list[int] = []
        self.max_in_flight = 0
        self.in_flight = 0
        self.max_open = 0
        self.open = 0
        self.headers: list[dict[str, str]] = []
        self.bodies: list[Any] = []

    def total(self, path: str | None = None, status: int | None = None) -> int:
        """Answered requests, optionally only those to ``path`` and/or with ``status``."""
        with self._lock:
            return sum(
                n
                for (p, s), n in self.requests.items()
                if (path is None or p == path) and (status is None or s == status)
            )

    def reset(self) -> None:
        """Forget everything (the object stays the same, so references remain valid)."""
        with self._lock:
            self.requests.clear()
            self.texts_ok.clear()
            self.faults.clear()
            self.items_ok = 0
            self.batch_sizes.clear()
            self.max_in_flight = 0
            self.max_open = 0
            self.headers.clear()
            self.bodies.clear()

    # -- written by the server ------------------------------------------------------------------

    def record_received(self, headers: dict[str, str], body: Any, has_body: bool) -> None:
        """Note a request's headers and body."""
        with self._lock:
            self.headers.append(headers)
            if has_body:
                self.bodies.append(body)

    def record_answer(self, path: str, status: int) -> None:
        """Note the status a request was answered with (-1: dropped)."""
        with self._lock:
            self.requests[(path, status)] += 1

    def record_fault(self, fault: str) -> None:
        """Note the fault drawn for a POST request."""
        with self._lock:
            self.faults[fault] += 1

    def record_batch(self, size: int) -> None:
        """Note the number of input items of an inference request."""
        with self._lock:
            self.batch_sizes.append(size)

    def record_ok(self, items: int, texts: Iterable[str]) -> None:
        """Note the inputs of a successful inference answer."""
        with self._lock:
            self.items_ok += items
            self.texts_ok.update(texts)

    def enter(self) -> None:
        """An inference request starts being handled."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        """An inference request is done."""
        with self._lock:
            self.in_flight -= 1

    def arrive(self) -> None:
        """A POST request arrives (before any queue or fault)."""
        with self._lock:
            self.open += 1
            self.max_open = max(self.max_open, self.open)

    def depart(self) -> None:
        """A POST request has its answer (or was dropped)."""
        with self._lock:
            self.open -= 1


class Scripts:
    """Queues of canned answers per exact path (None: any path)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str | None, collections.deque[CannedResponse]] = {}

    def add(self, route: str | None, responses: Iterable[CannedResponse]) -> None:
        """Append ``responses`` to the queue of ``route``."""
        with self._lock:
            self._queues.setdefault(route, collections.deque()).extend(responses)

    def pop(self, path: str) -> CannedResponse | None:
        """The next canned answer for ``path``: its own queue first, then the any-path one."""
        with self._lock:
            for key in (path, None):
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
            return None

    def clear(self) -> None:
        """Drop every queued answer."""
        with self._lock:
            self._queues.clear()


class ServerState:
    """Everything the request handlers share."""

    def __init__(self, config: ServerConfig, models: ModelRuntime | None = None) -> None:
        """``models``: the model threads to run on; several listeners serving the same model
        objects share one (a llama.cpp model must never run on two threads at once)."""
        self.config = config
        self.counters = Counters()
        self.scripts = Scripts()
        self.faults = FaultState(config.faults)
        self.models = models or ModelRuntime(
            max_queue=config.max_concurrent_requests,
            batch_window=config.batch_window,
            max_batch_tokens=config.max_batch_tokens,
        )
