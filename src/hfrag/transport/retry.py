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
        deadline: overall seconds for one call, every batch, attempt, wait and body read included
            (None: no limit beyond ``max_retries``). A call is one public method of a task client
            (``embed`` of 10,000 texts is one call), or one ``request``/``stream`` of a driver
            used directly.
        refused_budget: seconds during which a refused connection is retried.
    """

    max_retries: int = 4
    max_wait: float = 60.0
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    deadline: float | None = None
    refused_budget: float = REFUSED_BUDGET

    def __post_init__(self) -> None:
        from hfrag._checks import check_int, check_number

        check_int("max_retries", self.max_retries, minimum=0)
        check_number("max_retry_wait", self.max_wait, minimum=0, unit="seconds")
        check_number("backoff_base", self.backoff_base, minimum=0, unit="seconds")
        check_number("backoff_max", self.backoff_max, minimum=0, unit="seconds")
        check_number("deadline", self.deadline, positive=True, optional=True, unit="seconds")

    def next_wait(
        self,
        attempt: int,
        error: InferenceError,
        elapsed: float,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up now."""
        left = None if self.deadline is None else self.deadline - elapsed
        return self.wait_within(attempt, error, left, rng, elapsed=elapsed)

    def wait_within(
        self,
        attempt: int,
        error: InferenceError,
        remaining: float | None,
        rng: random.Random | None = None,
        max_retries: int | None = None,
        *,
        elapsed: float = 0.0,
    ) -> float | None:
        """Like :meth:`next_wait`, given the seconds ``remaining`` before the call's end and
        the seconds ``elapsed`` since the first attempt (for the refused-connection budget)."""
        limit = self.max_retries if max_retries is None else max_retries
        if not should_retry(error) or attempt >= limit:
            return None
        hinted = error.retry_after
        wait = (
            hinted
            if hinted is not None
            else backoff(attempt, self.backoff_base, self.backoff_max, rng)
        )
        wait = min(max(wait, 0.0), self.max_wait)
        if remaining is not None and wait >= remaining:
            return None  # waking up after the deadline would only fail later
        if error.error_type == CONNECTION_REFUSED and elapsed + wait > self.refused_budget:
            return None
        return wait

    def attempt_timeout(self, timeout: float | None, elapsed: float) -> float | None:
        """The timeout for the next attempt: the request timeout, shortened to fit the deadline."""
        left = None if self.deadline is None else max(self.deadline - elapsed, 0.001)
        return timeout_within(timeout, left)


def timeout_within(timeout: float | None, remaining: float | None) -> float | None:
    """``timeout`` shortened to the seconds ``remaining`` before the call's end."""
    if remaining is None:
        return timeout
    return remaining if timeout is None else min(timeout, remaining)
