"""Fault injection: what can go wrong on a request, decided reproducibly.

A ``FaultConfig`` applies to the whole server or to one exact request path. Each POST request
makes exactly one draw from its config's ``random.Random(seed)``; the draw picks at most one fault
kind by walking the probabilities in this order::

    loading, rate_limit, 500, 502, drop, stall, truncate, stream_error

so the same seed and the same request order give the same faults. ``cold_start``, ``latency``,
``latency_per_item``, ``token_delay``, ``max_concurrency``, ``max_queue`` and ``rate_limit`` are
not drawn: they apply to every request under the config. Setting a config (or starting the
server) restarts its cold-start clock and its random sequence. GET routes (``/info``,
``/health``) never see faults.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass
from enum import Enum

__all__ = ["Fault", "FaultConfig", "FaultRuntime", "FaultState"]


class Fault(str, Enum):
    """A fault kind picked by one draw."""

    NONE = "none"
    LOADING = "loading"
    RATE_LIMIT = "rate_limit"
    ERROR_500 = "500"
    ERROR_502 = "502"
    DROP = "drop"
    STALL = "stall"
    TRUNCATE = "truncate"
    STREAM_ERROR = "stream_error"


@dataclass(frozen=True)
class FaultConfig:
    """Faults and load behaviour of the server or of one route.

    Attributes:
        seed: seed of the per-config ``random.Random``; one draw per POST request.
        p_loading: probability of 503 ``{"error": "Model X is currently loading",
            "estimated_time": estimated_time}``.
        estimated_time: the ``estimated_time`` of injected loading answers.
        p_rate_limit: probability of 429 with ``Retry-After: retry_after``.
        retry_after: seconds in the ``Retry-After`` header (fractions allowed, e.g. ``0.05``).
        p_500: probability of a 500 JSON error.
        p_502: probability of a 502 HTML page, like a gateway in front of the model.
        p_drop: probability of closing the connection without any response.
        p_stall: probability of answering normally but only after ``stall_seconds``.
        stall_seconds: the delay of a stalled request.
        p_truncate: probability of sending the headers with the full ``Content-Length``, then
            half of the body, then closing the connection; a stream is cut after its first
            event (before its last, for a one-token answer).
        p_stream_error: probability that a streaming answer carries an error event after its
            first event, or before its last for a one-token answer (TGI ``{"error",
            "error_type": "generation"}``, chat ``{"error": {"message"}}``), and ends there; a
            non-streaming request that draws it is answered normally.
        cold_start: seconds after the config was set during which every POST gets 503 loading
            (with ``estimated_time`` = the seconds left); a request with ``x-wait-for-model:
            true`` is held until the model is "loaded" instead, as the HF API does.
        latency: seconds added to every valid inference request.
        latency_per_item: seconds added per input item (texts, pairs, or 1 for a generation).
        max_concurrency: requests handled at once; further requests wait in a FIFO queue.
        max_queue: requests that may wait for one of the ``max_concurrency`` slots; one more is
            refused at once with TEI's 429 ``Model is overloaded`` (TEI refuses requests beyond
            ``max_concurrent_requests`` so). ``0`` makes ``max_concurrency`` a hard capacity;
            None (default) queues without bound.
        rate_limit: POST requests allowed per fixed window of ``rate_window`` seconds; further
            ones get 429 with the Hub's ``ratelimit: "api";r=R;t=T`` and ``ratelimit-policy:
            "fixed window";"api";q=Q;w=W`` headers (sent on every answer under the limit too,
            as the Hub does). 0 (default): no limit.
        rate_window: the window of ``rate_limit``, in seconds.
        token_delay: seconds between the events of a streamed answer (TGI and chat streams),
            like a generator producing one token at a time.
    """

    seed: int = 0
    p_loading: float = 0.0
    estimated_time: float = 20.0
    p_rate_limit: float = 0.0
    retry_after: float = 1.0
    p_500: float = 0.0
    p_502: float = 0.0
    p_drop: float = 0.0
    p_stall: float = 0.0
    stall_seconds: float = 5.0
    p_truncate: float = 0.0
    p_stream_error: float = 0.0
    cold_start: float = 0.0
    latency: float = 0.0
    latency_per_item: float = 0.0
    max_concurrency: int | None = None
    token_delay: float = 0.0
    max_queue: int | None = None
    rate_limit: int = 0
    rate_window: float = 1.0

    def __post_init__(self) -> None:
        probs = self._probabilities()
        for kind, p in probs:
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"probability of {kind.value} must be in [0, 1], got {p}")
        total = sum(p for _, p in probs)
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {total:g} > 1")
        for name in (
            "estimated_time",
            "retry_after",
            "stall_seconds",
            "cold_start",
            "latency",
            "token_delay",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.latency_per_item < 0:
            raise ValueError("latency_per_item must not be negative")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1 (or None for no cap)")
        if self.max_queue is not None and self.max_queue < 0:
            raise ValueError("max_queue must not be negative (or None for no bound)")
        if self.rate_limit < 0 or self.rate_window <= 0:
            raise ValueError("rate_limit must not be negative and rate_window must be positive")

    def _probabilities(self) -> list[tuple[Fault, float]]:
        return [
            (Fault.LOADING, self.p_loading),
            (Fault.RATE_LIMIT, self.p_rate_limit),
            (Fault.ERROR_500, self.p_500),
            (Fault.ERROR_502, self.p_502),
            (Fault.DROP, self.p_drop),
            (Fault.STALL, self.p_stall),
            (Fault.TRUNCATE, self.p_truncate),
            (Fault.STREAM_ERROR, self.p_stream_error),
        ]

    def pick(self, u: float) -> Fault:
        """The fault that a uniform draw ``u`` in [0, 1) selects."""
        edge = 0.0
        for kind, p in self._probabilities():
            edge += p
            if u < edge:
                return kind
        return Fault.NONE


class FaultRuntime:
    """The live state of one ``FaultConfig``: its random sequence, clock and queue."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.started = time.monotonic()
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._semaphore: asyncio.Semaphore | None = None
        self._admitted = 0  # requests holding or waiting for a max_concurrency slot
        self._window = (self.started, 0)  # (window start, requests counted in it)

    def admit(self) -> bool:
        """Take a place among the served or queued requests; False when ``max_queue`` is full."""
        config = self.config
        with self._lock:
            capped = config.max_queue is not None and config.max_concurrency is not None
            if capped and self._admitted >= (config.max_concurrency or 0) + (config.max_queue or 0):
                return False
            self._admitted += 1
            return True

    def leave(self) -> None:
        """Give back the place :meth:`admit` took."""
        with self._lock:
            self._admitted -= 1

    def rate(self) -> tuple[bool, dict[str, str]]:
        """Count one request in the current window: whether it is allowed, and the headers."""
        config = self.config
        if not config.rate_limit:
            return True, {}
        now = time.monotonic()
        with self._lock:
            start, used = self._window
            if now - start >= config.rate_window:
                start, used = start + config.rate_window * ((now - start) // config.rate_window), 0
            allowed = used < config.rate_limit
            used += allowed
            self._window = (start, used)
        left = max(0.0, start + config.rate_window - now)
        return allowed, {
            "ratelimit": f'"api";r={config.rate_limit - used};t={left:.3f}',
            "ratelimit-policy": (
                f'"fixed window";"api";q={config.rate_limit};w={config.rate_window:g}'
            ),
        }

    def draw(self) -> Fault:
        """Make this request's one draw."""
        with self._lock:
            u = self._rng.random()
        return self.config.pick(u)

    def cold_left(self) -> float:
        """Seconds of cold start left (0 when the model is "loaded")."""
        return max(0.0, self.config.cold_start - (time.monotonic() - self.started))

    def semaphore(self) -> asyncio.Semaphore | None:
        """The queue that caps concurrency, created in the server's loop on first use."""
        if self.config.max_concurrency is None:
            return None
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
        return self._semaphore


class FaultState:
    """Fault configs of a server: one for all routes plus overrides for exact paths."""

    def __init__(self, default: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._initial = default or FaultConfig()
        self._global = FaultRuntime(self._initial)
        self._routes: dict[str, FaultRuntime] = {}

    def set(self, config: FaultConfig | None, route: str | None = None) -> None:
        """Install ``config`` for ``route`` (an exact path) or, with None, for all routes.

        ``config=None`` removes a route override (or resets the server-wide config).
        """
        with self._lock:
            if route is None:
                self._global = FaultRuntime(config or FaultConfig())
            elif config is None:
                self._routes.pop(route, None)
            else:
                self._routes[route] = FaultRuntime(config)

    def reset(self) -> None:
        """Back to the faults the server was started with, with fresh clocks and seeds."""
        with self._lock:
            self._global = FaultRuntime(self._initial)
            self._routes.clear()

    def for_path(self, path: str) -> FaultRuntime:
        """The runtime that governs ``path``."""
        with self._lock:
            return self._routes.get(path, self._global)
