"""When to retry and how long to wait: small pure functions, shared by both drivers.

- :func:`should_retry` decides from the error alone (408, 429, 500, 502, 503, 504, connection
  failures and timeouts are retried; 400, 401, 402, 403, 404, 410, 422 and 424 never are).
- :func:`retry_after` reads the server's hint: ``retry-after-ms``, ``Retry-After`` (seconds or an
  HTTP date), the ``ratelimit: ...;t=N`` header, or a 503 body's ``estimated_time``.
- :func:`backoff` is exponential with jitter that only shortens the wait.
- :class:`RetryPolicy` combines them with ``max_retries``, a cap on any single wait and an overall
  deadline. A refused connection (nothing listens at the address) is retried only while the
  call is younger than ``refused_budget`` (3 s): long enough for a server that is restarting,
  short enough that a wrong port fails at once. A host name that does not resolve is never
  retried.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hfrag.errors import CONNECTION_REFUSED, InferenceError

#: Seconds during which a refused connection is retried (see :class:`RetryPolicy`).
REFUSED_BUDGET = 3.0

_RATELIMIT_T = re.compile(r"(?:^|[;,\s])t\s*=\s*(\d+(?:\.\d+)?)")


def should_retry(error: InferenceError) -> bool:
    """Whether a failed attempt may succeed if sent again."""
    return error.retryable


def _non_negative(value: float) -> float | None:
    return value if math.isfinite(value) and value >= 0 else None


def retry_after(
    headers: Mapping[str, str], body: Any = None, *, now: float | None = None
) -> float | None:
    """Seconds the server asked us to wait, or None when it gave no usable hint.

    ``headers`` must be case-insensitive (``httpx.Headers``) or use lower-case names.
    """
    value = headers.get("retry-after-ms")
    if value:
        try:
            ms = _non_negative(float(value))
        except ValueError:
            ms = None
        if ms is not None:
            return ms / 1000.0
    value = headers.get("retry-after")
    if value:
        try:
            secs = _non_negative(float(value))
        except ValueError:
            secs = _http_date_delay(value, now)
        if secs is not None:
            return secs
    value = headers.get("ratelimit")
    if value:
        match = _RATELIMIT_T.search(value)
        if match:
            return float(match.group(1))
    if isinstance(body, dict):
        estimated = body.get("estimated_time")
        if isinstance(estimated, (int, float)) and not isinstance(estimated, bool):
            return _non_negative(float(estimated))
    return None


def _http_date_delay(value: str, now: float | None) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    delay = when.timestamp() - (time.time() if now is None else now)
    return max(delay, 0.0)


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff for retry ``attempt`` (0-based), capped; jitter only shortens it."""
    wait = min(cap, base * 2.0 ** min(attempt, 64))
    jitter = (rng or random).random() * 0.25
    return wait * (1.0 - jitter)


@dataclass(frozen=True)
class RetryPolicy:
    """How persistent one call is.

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        max_wait: cap on any single wait, including one the server asked for.
        backoff_base: first backoff wait in seconds when the server gives no hint.
        backoff_max: cap on the backoff wait.
        deadline: overall seconds for one call, retries and waits included (None: no limit
            beyond ``max_retries``).
        refused_budget: seconds during which a refused connection is retried.
    """

    max_retries: int = 4
    max_wait: float = 60.0
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    deadline: float | None = None
    refused_budget: float = REFUSED_BUDGET

    def __post_init__(self) -> None:
        from hfrag.errors import ConfigurationError

        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.max_wait < 0:
            raise ConfigurationError(f"max_retry_wait must be >= 0 seconds, got {self.max_wait}")
        if self.deadline is not None and self.deadline <= 0:
            raise ConfigurationError(f"deadline must be > 0 seconds, got {self.deadline}")

    def next_wait(
        self,
        attempt: int,
        error: InferenceError,
        elapsed: float,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up now."""
        if not should_retry(error) or attempt >= self.max_retries:
            return None
        hinted = error.retry_after
        wait = (
            hinted
            if hinted is not None
            else backoff(attempt, self.backoff_base, self.backoff_max, rng)
        )
        wait = min(max(wait, 0.0), self.max_wait)
        if self.deadline is not None and elapsed + wait >= self.deadline:
            return None
        if error.error_type == CONNECTION_REFUSED and elapsed + wait > self.refused_budget:
            return None
        return wait

    def attempt_timeout(self, timeout: float | None, elapsed: float) -> float | None:
        """The timeout for the next attempt: the request timeout, shortened to fit the deadline."""
        if self.deadline is None:
            return timeout
        remaining = max(self.deadline - elapsed, 0.001)
        return remaining if timeout is None else min(timeout, remaining)
