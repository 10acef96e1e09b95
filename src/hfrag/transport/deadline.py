"""The whole-call deadline: one absolute end time shared by every request, wait and read of a call.

A task client opens a scope around one public call (``TaskClient.run``/``arun``); the drivers read
it to bound each attempt's timeout, each retry wait and each body read, so one ``embed`` of many
batches ends by its deadline whatever the server does. The end time lives in a context variable,
so concurrent calls on the same client each keep their own. A driver used without a scope treats
each ``request``/``stream`` as one call and applies its own ``RetryPolicy.deadline``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from hfrag.errors import InferenceTimeoutError

_CALL_END: ContextVar[float | None] = ContextVar("hfrag_call_end", default=None)


def call_end() -> float | None:
    """The current call's end, in ``time.monotonic()`` seconds; None when no deadline applies."""
    return _CALL_END.get()


def earliest(*ends: float | None) -> float | None:
    """The earliest of several optional end times."""
    known = [end for end in ends if end is not None]
    return min(known) if known else None


def end_after(seconds: float | None) -> float | None:
    """The end time ``seconds`` from now, capped by the current call's end."""
    own = None if seconds is None else time.monotonic() + seconds
    return earliest(own, call_end())


@contextmanager
def deadline_scope(seconds: float | None) -> Iterator[float | None]:
    """Run the body as one call that must end within ``seconds`` (nested scopes only shorten it)."""
    token = _CALL_END.set(end_after(seconds))
    try:
        yield _CALL_END.get()
    finally:
        _CALL_END.reset(token)


def remaining(end: float | None) -> float | None:
    """Seconds left until ``end`` (may be negative); None without an end."""
    return None if end is None else end - time.monotonic()


def deadline_error(
    url: str | None = None, detail: str = "", *, error_type: str | None = None
) -> InferenceTimeoutError:
    """The error of a call that ran out of time (``error_type``: that of the failure it ended)."""
    message = "the call's deadline passed before it could finish"
    return InferenceTimeoutError(
        message + (f" ({detail})" if detail else ""), url=url, error_type=error_type
    )
