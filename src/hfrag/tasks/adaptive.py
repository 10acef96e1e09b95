"""How many requests an endpoint gets at once, learned from its answers (adaptive concurrency).

:class:`AdaptiveLimit` is AIMD (additive increase, multiplicative decrease: TCP's congestion
control, and ``AIMDLimit`` of Netflix's concurrency-limits) with the latency gradient of that
library's ``Gradient2Limit`` as a second back-off signal. By Little's law the throughput of an
endpoint is ``requests in flight / latency``: while latency holds, raising the number in flight
raises the throughput; once the endpoint is saturated, more in flight only queues, the latency
rises and nothing is gained. So the limit rises while latency holds and falls when latency rises
or the endpoint says it is overloaded, and settles near the knee where throughput is highest.

The rules, applied to every answered request (a *sample*):

- **start small**: the limit starts at ``initial`` (2) and, in *slow start*, rises by 1 per
  good sample (it doubles every round trip, as TCP's slow start) until the first back-off, or
  until latency is halfway to the back-off point (``(1 + tolerance) / 2`` times the baseline:
  TCP Vegas leaves slow start early the same way, so doubling does not overshoot far);
- **then additively**: +1/limit per good sample, about +1 per round trip;
- **only when used**: a sample raises the limit only if at least half the limit was in flight
  when it was sent (an idle client learns nothing about the endpoint: ``AIMDLimit``'s rule);
- **back off on overload** (TEI's 429 "Model is overloaded", a 503, the router's 429): each such
  answer multiplies the limit by ``backoff`` (0.9, ``AIMDLimit``'s default: a gentle cut, since
  an endpoint answers an overload at once and the next probe is cheap), and lowers it to the
  number of other requests still out when it came, if fewer: those are at least what the
  endpoint was serving when it refused this one. A burst of refusals thus brings the limit down
  to about the endpoint's capacity, not to 0.9 to the power of the burst;
- **back off on rising latency**: ``gradient = tolerance * baseline / recent``, where
  ``recent`` is an exponential average of the latencies (weight ``smoothing``) and ``baseline``
  the lowest value ``recent`` took in the last ``window`` to ``2 * window`` samples (a minimum
  with expiry, as TCP Vegas and BBR keep one: an endpoint that became slower is re-learned within
  a window; the minimum of the average, not of single answers, so one lucky answer does not make
  every later one look slow); when
  the gradient is below 1 the limit is multiplied by it, never by less than 0.5
  (``Gradient2Limit``'s clamp). ``tolerance`` is 2: latency may double before it counts as
  rising, since a CPU-bound server doubles its latency between one and two requests in flight
  while the second one is what keeps it busy between answers;
- **one latency cut per round trip**: requests sent together see the same queue; only the first
  of their answers cuts the limit, the others arrive within ``recent`` seconds of it;
- **ceiling and floor**: the limit stays within ``[1, ceiling]``.

The limit is a float; :attr:`AdaptiveLimit.allowed` is the whole number of requests it admits.
Nothing here does I/O or reads a clock it is not handed: :mod:`hfrag.tasks.budget` feeds it.
"""

from __future__ import annotations

import math
import time

from hfrag._checks import check_int, check_number
from hfrag.errors import ConfigurationError

__all__ = ["AdaptiveLimit"]


class AdaptiveLimit:
    """The AIMD-with-latency-gradient controller described in the module docstring.

    Example::

        limit = AdaptiveLimit(ceiling=32)
        limit.on_sample(latency=0.02, in_flight=2)   # good answer: the limit rises
        limit.on_overload(others=3)                  # 429: the limit falls
        limit.allowed                                # requests admitted now
    """

    def __init__(
        self,
        *,
        ceiling: int = 64,
        initial: int = 2,
        backoff: float = 0.9,
        tolerance: float = 2.0,
        smoothing: float = 0.3,
        window: int = 250,
    ) -> None:
        check_int("ceiling", ceiling, minimum=1)
        check_int("initial", initial, minimum=1)
        check_int("window", window, minimum=1)
        for name, value in (("backoff", backoff), ("smoothing", smoothing)):
            check_number(name, value, positive=True)
            if value >= 1:
                raise ConfigurationError(f"{name} must be below 1, got {value}")
        check_number("tolerance", tolerance, minimum=1)
        self.ceiling = ceiling
        self.limit = float(min(initial, ceiling))
        self.backoff = backoff
        self.tolerance = tolerance
        self.smoothing = smoothing
        self.window = window
        self.slow_start = True
        self.recent: float | None = None
        self._minima = [math.inf, math.inf]  # the current and the previous window's minimum
        self._samples = 0
        self._last_cut = -math.inf

    @property
    def allowed(self) -> int:
        """Requests admitted at once: the limit's whole part, within ``[1, ceiling]``."""
        return max(1, min(self.ceiling, int(self.limit)))

    @property
    def baseline(self) -> float | None:
        """The lowest recent latency (None before the first sample)."""
        low = min(self._minima)
        return None if math.isinf(low) else low

    def set_ceiling(self, ceiling: int) -> None:
        """Lower (or raise) the ceiling; the limit is clamped to it."""
        check_int("ceiling", ceiling, minimum=1)
        self.ceiling = ceiling
        self.limit = min(self.limit, float(ceiling))

    def on_sample(self, latency: float, in_flight: int, now: float | None = None) -> None:
        """A good answer that took ``latency`` seconds, sent with ``in_flight`` requests out."""
        now = time.monotonic() if now is None else now
        latency = max(latency, 1e-6)
        self.recent = (
            latency
            if self.recent is None
            else self.smoothing * latency + (1 - self.smoothing) * self.recent
        )
        self._minima[0] = min(self._minima[0], self.recent)
        self._samples += 1
        if self._samples % self.window == 0:
            self._minima = [math.inf, self._minima[0]]
        baseline = self.baseline
        assert baseline is not None
        gradient = self.tolerance * baseline / self.recent
        if gradient < 1.0:
            self._cut(max(gradient, 0.5), now)
            return
        if self.slow_start and self.recent > baseline * (1 + self.tolerance) / 2:
            self.slow_start = False  # latency is rising: from here on, additively
        if in_flight * 2 < self.allowed:
            return  # the limit was not used: no evidence it can go higher
        self.limit += 1.0 if self.slow_start else 1.0 / self.limit
        self.limit = min(self.limit, float(self.ceiling))

    def on_overload(self, others: int | None = None, now: float | None = None) -> None:
        """The endpoint answered 429 or 503 while ``others`` more requests were out."""
        self.slow_start = False
        limit = self.limit * self.backoff
        if others is not None:
            limit = min(limit, float(others))
        self.limit = max(1.0, limit)

    def _new_round(self, now: float) -> bool:
        """Whether ``now`` is a round trip or more after the last cut (and if so, mark it)."""
        if now - self._last_cut < (self.recent or 0.0):
            return False
        self._last_cut = now
        return True

    def _cut(self, factor: float, now: float) -> None:
        if self._new_round(now):
            self.slow_start = False
            self.limit = max(1.0, self.limit * factor)

    def __repr__(self) -> str:
        return f"AdaptiveLimit(limit={self.limit:.2f}, ceiling={self.ceiling})"
