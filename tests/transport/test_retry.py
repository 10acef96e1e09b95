"""Retry decisions (pure) and the waits they cause over HTTP."""

from __future__ import annotations

import email.utils
import logging
import random
import socket
import time
from typing import Any

import httpx
import pytest

from hfrag.errors import (
    AuthenticationError,
    BackendError,
    BatchTooLargeError,
    ConfigurationError,
    InferenceConnectionError,
    InferenceError,
    InferenceTimeoutError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    UnavailableError,
)
from hfrag.server.config import ServerConfig
from hfrag.server.faults import FaultConfig
from hfrag.server.testing import CannedResponse
from hfrag.transport import Request, RetryPolicy, backoff, retry_after, should_retry
from tests.transport.conftest import FAST_RETRY

MAX_RETRIES = FAST_RETRY.max_retries
OVERLOADED = {"error": "Model is overloaded", "error_type": "Overloaded"}

NOW = 1_700_000_000.0


# --- should_retry ---


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InferenceTimeoutError("x", status=408), True),
        (RateLimitError("x", status=429), True),
        (BackendError("x", status=500), True),
        (BackendError("x", status=502), True),
        (UnavailableError("x", status=503), True),
        (InferenceTimeoutError("x", status=504), True),
        (BackendError("x", status=507), True),
        (InferenceConnectionError("refused"), True),
        (InferenceTimeoutError("read timeout"), True),
        (InvalidRequestError("x", status=400), False),
        (AuthenticationError("x", status=401), False),
        (PaymentRequiredError("x", status=402), False),
        (AuthenticationError("x", status=403), False),
        (NotFoundError("x", status=404), False),
        (NotFoundError("x", status=410), False),
        (BatchTooLargeError("x", status=413), False),
        (InvalidRequestError("x", status=422), False),
        (BackendError("x", status=424), False),
        (BackendError("generation failed", status=200), False),  # error event in a stream
        (MalformedResponseError("x", status=200), False),
    ],
)
def test_should_retry(error: InferenceError, expected: bool) -> None:
    assert should_retry(error) is expected


# --- retry_after: every hint the servers give ---


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"retry-after": "3"}, None, 3.0),
        ({"retry-after": "0.25"}, None, 0.25),
        ({"retry-after": "0"}, None, 0.0),
        ({"retry-after-ms": "250"}, None, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, None, 0.25),  # ms is more precise
        ({"retry-after-ms": "oops", "retry-after": "2"}, None, 2.0),
        ({"retry-after-ms": "-5", "retry-after": "2"}, None, 2.0),
        ({"ratelimit": '"api";r=0;t=55'}, None, 55.0),
        ({"ratelimit": '"api";r=0;t=0.5'}, None, 0.5),
        ({"ratelimit": "limit=10, t=7"}, None, 7.0),
        ({"ratelimit": '"api";r=0'}, None, None),
        ({"retry-after": "1", "ratelimit": '"api";r=0;t=55'}, None, 1.0),
        ({}, {"error": "Model x is currently loading", "estimated_time": 20.0}, 20.0),
        ({}, {"error": "loading", "estimated_time": 3}, 3.0),
        ({"retry-after": "2"}, {"estimated_time": 20.0}, 2.0),  # the header is the firmer hint
        ({}, {"estimated_time": True}, None),
        ({}, {"estimated_time": "20"}, None),
        ({}, {"estimated_time": -1.0}, None),
        ({}, {"estimated_time": float("nan")}, None),
        ({}, ["not", "a", "dict"], None),
        ({}, "plain text", None),
        ({}, None, None),
        ({"retry-after": "-3"}, None, None),
        ({"retry-after": "inf"}, None, None),
        ({"retry-after": "nan"}, None, None),
        ({"retry-after": "soon"}, None, None),
        ({"retry-after": ""}, None, None),
    ],
)
def test_retry_after(headers: dict[str, str], body: object, expected: float | None) -> None:
    assert retry_after(headers, body, now=NOW) == expected


@pytest.mark.parametrize(("offset", "expected"), [(30, 30.0), (1, 1.0), (-60, 0.0)])
def test_retry_after_http_date(offset: int, expected: float) -> None:
    date = email.utils.formatdate(NOW + offset, usegmt=True)
    assert retry_after({"retry-after": date}, now=NOW) == pytest.approx(expected)


def test_retry_after_headers_are_case_insensitive() -> None:
    headers = httpx.Headers({"Retry-After-Ms": "1500", "RateLimit": '"api";r=0;t=9'})
    assert retry_after(headers) == 1.5
    assert retry_after(httpx.Headers({"RATELIMIT": '"api";r=0;t=9'})) == 9.0


# --- backoff ---


def test_backoff_grows_exponentially_and_is_capped() -> None:
    rng = random.Random(0)
    nominal = [min(8.0, 0.5 * 2**a) for a in range(8)]
    waits = [backoff(a, 0.5, 8.0, rng) for a in range(8)]
    for wait, top in zip(waits, nominal, strict=True):
        assert 0.75 * top <= wait <= top
    assert waits[3] > waits[0] * 4  # 4.0*[0.75, 1] vs 0.5*[0.75, 1]
    assert max(waits) <= 8.0


@pytest.mark.parametrize("seed", range(20))
def test_backoff_jitter_only_shortens(seed: int) -> None:
    rng = random.Random(seed)
    for attempt in range(10):
        top = min(2.0, 0.1 * 2**attempt)
        assert 0.75 * top <= backoff(attempt, 0.1, 2.0, rng) <= top


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [backoff(a, 0.5, 8.0, random.Random(42)) for a in range(5)]
    second = [backoff(a, 0.5, 8.0, random.Random(42)) for a in range(5)]
    assert first == second
    assert len({backoff(1, 0.5, 8.0, random.Random(s)) for s in range(10)}) > 1  # jittered


@pytest.mark.parametrize("attempt", [100, 1100, 10_000])
def test_backoff_of_a_late_attempt_is_the_cap(attempt: int) -> None:
    # 2.0**1024 overflows a float: a long-running retry loop must not crash on it.
    assert 0.75 * 8.0 <= backoff(attempt, 0.5, 8.0, random.Random(0)) <= 8.0


# --- RetryPolicy ---


@pytest.mark.parametrize(
    "kwargs", [{"max_retries": -1}, {"max_wait": -0.1}, {"deadline": 0}, {"deadline": -1.0}]
)
def test_retry_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_next_wait_gives_up_on_non_retryable_errors() -> None:
    policy = RetryPolicy(max_retries=5)
    assert policy.next_wait(0, InvalidRequestError("bad", status=422), 0.0) is None
    assert policy.next_wait(0, BackendError("no", status=424), 0.0) is None


def test_next_wait_gives_up_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=2, backoff_base=0.01)
    error = BackendError("x", status=500)
    assert policy.next_wait(0, error, 0.0) is not None
    assert policy.next_wait(1, error, 0.0) is not None
    assert policy.next_wait(2, error, 0.0) is None
    assert RetryPolicy(max_retries=0).next_wait(0, error, 0.0) is None


@pytest.mark.parametrize("hint", [0.0, 0.2, 3.0, 59.0])
def test_next_wait_honours_the_server_hint(hint: float) -> None:
    error = RateLimitError("slow down", status=429, retry_after=hint)
    assert RetryPolicy().next_wait(0, error, 0.0) == hint


def test_next_wait_caps_the_server_hint() -> None:
    error = UnavailableError("loading", status=503, retry_after=600.0)
    assert RetryPolicy(max_wait=2.5).next_wait(0, error, 0.0) == 2.5


def test_next_wait_without_hint_is_backoff() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=8.0)
    error = BackendError("x", status=502)
    wait = policy.next_wait(2, error, 0.0, random.Random(3))
    assert wait == backoff(2, 0.5, 8.0, random.Random(3))
    assert 1.5 <= wait <= 2.0  # type: ignore[operator]


def test_next_wait_backoff_is_capped_by_max_wait() -> None:
    policy = RetryPolicy(backoff_base=10.0, backoff_max=100.0, max_wait=1.0)
    assert policy.next_wait(3, BackendError("x", status=500), 0.0) == 1.0


def test_next_wait_respects_the_deadline() -> None:
    policy = RetryPolicy(deadline=10.0)
    error = UnavailableError("loading", status=503, retry_after=3.0)
    assert policy.next_wait(0, error, 6.0) == 3.0
    assert policy.next_wait(0, error, 7.5) is None  # would wake up after the deadline
    assert policy.next_wait(0, error, 11.0) is None


@pytest.mark.parametrize(
    ("deadline", "timeout", "elapsed", "expected"),
    [
        (None, 30.0, 100.0, 30.0),
        (None, None, 0.0, None),
        (10.0, 30.0, 4.0, 6.0),
        (10.0, 2.0, 4.0, 2.0),
        (10.0, None, 4.0, 6.0),
        (10.0, 5.0, 12.0, 0.001),  # never zero or negative
    ],
)
def test_attempt_timeout_fits_the_deadline(
    deadline: float | None, timeout: float | None, elapsed: float, expected: float | None
) -> None:
    result = RetryPolicy(deadline=deadline).attempt_timeout(timeout, elapsed)
    assert result == (None if expected is None else pytest.approx(expected))


# --- the waits, measured over HTTP ---

PATH = "/embed"
BODY = {"inputs": ["a"]}
OK = CannedResponse(200, {"ok": True})
HINT = 0.2
SLACK = 0.5  # scheduling noise on a loaded CI machine


def _timed(driver: Any, url: str) -> tuple[Any, float]:
    start = time.monotonic()
    result = driver.request(Request(url, json=BODY))
    return result, time.monotonic() - start


HINTED = {
    "retry-after-seconds": CannedResponse(429, OVERLOADED, headers={"Retry-After": f"{HINT}"}),
    "retry-after-ms": CannedResponse(
        429, OVERLOADED, headers={"retry-after-ms": f"{HINT * 1000:.0f}"}
    ),
    "ratelimit": CannedResponse(
        429, {"error": "Rate limit reached"}, headers={"ratelimit": f'"api";r=0;t={HINT}'}
    ),
    "estimated-time": CannedResponse(
        503, {"error": "Model m is currently loading", "estimated_time": HINT}
    ),
}


@pytest.mark.parametrize("answer", list(HINTED.values()), ids=list(HINTED))
def test_retry_waits_for_the_hint(server: Any, drive: Any, answer: CannedResponse) -> None:
    server.script(PATH, answer, OK)
    # backoff alone would wait ~0.01 s: a wait of HINT proves the hint was read
    result, elapsed = _timed(drive(), server.url + PATH)
    assert result == {"ok": True}
    assert HINT <= elapsed < HINT + SLACK
    assert server.counters.total(PATH, answer.status) == 1
    assert server.counters.total(PATH, 200) == 1


def test_retry_waits_for_an_http_date(server: Any, drive: Any) -> None:
    # An HTTP date has whole seconds: one 1.5 s ahead is between 0.5 s and 1.5 s ahead.
    date = email.utils.formatdate(time.time() + 1.5, usegmt=True)
    server.script(PATH, CannedResponse(503, {"error": "busy"}, headers={"Retry-After": date}), OK)
    result, elapsed = _timed(drive(), server.url + PATH)
    assert result == {"ok": True}
    assert 0.4 <= elapsed < 1.5 + SLACK


def test_server_wait_is_capped_by_max_wait(server: Any, drive: Any) -> None:
    server.script(PATH, CannedResponse(429, OVERLOADED, headers={"Retry-After": "30"}), OK)
    retry = RetryPolicy(max_retries=1, max_wait=0.15, backoff_base=0.01)
    result, elapsed = _timed(drive(retry=retry), server.url + PATH)
    assert result == {"ok": True}
    assert 0.15 <= elapsed < 0.15 + SLACK


def test_backoff_without_hint(server: Any, drive: Any) -> None:
    error = CannedResponse(500, {"error": "Internal Server Error"})
    server.script(PATH, error, error, OK)
    retry = RetryPolicy(max_retries=3, backoff_base=0.1, backoff_max=5.0)
    result, elapsed = _timed(drive(retry=retry), server.url + PATH)
    assert result == {"ok": True}
    # 0.1 and 0.2 s nominal, jitter shortens each by at most a quarter
    assert 0.75 * 0.3 <= elapsed < 0.3 + SLACK
    assert server.counters.total(PATH, 500) == 2


def test_retries_are_logged_at_debug_with_the_attempt_number(
    server: Any, drive: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hfrag")
    loading = CannedResponse(503, {"error": "loading", "estimated_time": 0.01})
    server.script(PATH, loading, loading, OK)
    retry = RetryPolicy(max_retries=4, backoff_base=0.01)
    assert drive(retry=retry).request(Request(server.url + PATH, json=BODY)) == {"ok": True}
    messages = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("hfrag") and r.levelno == logging.DEBUG
    ]
    assert len(messages) == 2
    for attempt, message in zip((2, 3), messages, strict=True):
        assert f"attempt {attempt} of 5" in message
        assert "HTTP 503" in message
        assert server.url + PATH in message


def test_give_up_after_max_retries(server: Any, drive: Any) -> None:
    server.set_faults(FaultConfig(p_500=1.0), route=PATH)
    with pytest.raises(BackendError) as info:
        drive(retry=RetryPolicy(max_retries=3, backoff_base=0.01)).request(
            Request(server.url + PATH, json=BODY)
        )
    assert info.value.status == 500
    assert server.counters.total(PATH, 500) == 4


@pytest.mark.parametrize("wait_for_model", [False, True])
def test_cold_start(make_server: Any, drive: Any, wait_for_model: bool) -> None:
    """Loading answers are retried after ``estimated_time``; ``x-wait-for-model`` is held."""
    srv = make_server(ServerConfig(faults=FaultConfig(cold_start=0.3)))
    start = time.monotonic()
    driver = drive(wait_for_model=wait_for_model, retry=RetryPolicy(max_retries=3))
    vectors = driver.request(Request(srv.url + PATH, json={"inputs": ["hi"]}))
    elapsed = time.monotonic() - start
    assert len(vectors[0]) == 384
    assert 0.25 <= elapsed < 0.3 + SLACK
    assert srv.counters.total(PATH, 503) == (0 if wait_for_model else 1)
    assert srv.counters.total(PATH, 200) == 1


# --- the deadline ---


def test_deadline_ends_a_loading_loop(server: Any, drive: Any) -> None:
    # Attempts at 0, 0.35 and 0.7 s; the next would start past the deadline, so the call ends
    # after the third 503 (the third attempt has 0.3 s left: room for a loaded machine).
    server.set_faults(FaultConfig(p_loading=1.0, estimated_time=0.35), route=PATH)
    retry = RetryPolicy(max_retries=100, deadline=1.0)
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError) as info:
        drive(retry=retry).request(Request(server.url + PATH, json=BODY))
    elapsed = time.monotonic() - start
    assert elapsed < 1.0 + 0.3
    assert "deadline" in str(info.value)
    assert "HTTP 503" in str(info.value)  # what the last attempt got
    assert 3 <= server.counters.total(PATH, 503) <= 4


@pytest.mark.parametrize(
    ("timeout", "deadline", "max_retries", "limit"),
    [(None, 0.6, 5, 0.6), (0.25, None, 1, 0.5), (0.25, 0.6, 10, 0.6)],
    ids=["deadline-only", "timeout-only", "timeout-and-deadline"],
)
def test_stalled_server_times_out_in_time(
    server: Any,
    drive: Any,
    timeout: float | None,
    deadline: float | None,
    max_retries: int,
    limit: float,
) -> None:
    server.set_faults(FaultConfig(p_stall=1.0, stall_seconds=3.0), route=PATH)
    retry = RetryPolicy(max_retries=max_retries, backoff_base=0.01, deadline=deadline)
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError) as info:
        drive(retry=retry, timeout=timeout).request(Request(server.url + PATH, json=BODY))
    elapsed = time.monotonic() - start
    assert limit * 0.9 <= elapsed < limit + 0.4
    assert info.value.status is None


def test_per_request_timeout_overrides_the_config(server: Any, drive: Any) -> None:
    server.set_faults(FaultConfig(p_stall=1.0, stall_seconds=3.0), route=PATH)
    driver = drive(retry=RetryPolicy(max_retries=0), timeout=30.0)
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError):
        driver.request(Request(server.url + PATH, json=BODY, timeout=0.2))
    assert time.monotonic() - start < 0.2 + SLACK


# --- connection failures ---


def test_dropped_connection_is_retried(server: Any, drive: Any) -> None:
    server.script(PATH, CannedResponse(drop=True), OK)
    assert drive().request(Request(server.url + PATH, json=BODY)) == {"ok": True}
    assert server.counters.total(PATH, -1) == 1
    assert server.counters.total(PATH, 200) == 1


def test_dropped_connections_give_a_connection_error(server: Any, drive: Any) -> None:
    server.script(PATH, *[CannedResponse(drop=True)] * 3)
    with pytest.raises(InferenceConnectionError) as info:
        drive().request(Request(server.url + PATH, json=BODY))
    assert info.value.status is None
    assert info.value.url == server.url + PATH
    assert server.counters.total(PATH, -1) == 3


def _fault_then_clean(p: float) -> int:
    """A seed whose first draw is a fault of probability ``p`` and whose second is not.

    The server makes one ``random.Random(seed).random()`` draw per POST (see ``FaultConfig``).
    """
    for seed in range(10_000):
        rng = random.Random(seed)
        if rng.random() < p <= rng.random():
            return seed
    raise AssertionError("no seed found")  # pragma: no cover


def test_timed_out_attempt_is_retried(server: Any, drive: Any) -> None:
    server.set_faults(
        FaultConfig(p_stall=0.5, stall_seconds=3.0, seed=_fault_then_clean(0.5)), route=PATH
    )
    start = time.monotonic()
    vectors = drive(timeout=0.2).request(Request(server.url + PATH, json={"inputs": ["hi"]}))
    assert len(vectors[0]) == 384
    assert 0.2 <= time.monotonic() - start < 0.2 + SLACK


def test_truncated_body_is_retried(server: Any, drive: Any) -> None:
    server.set_faults(FaultConfig(p_truncate=0.5, seed=_fault_then_clean(0.5)), route=PATH)
    vectors = drive().request(Request(server.url + PATH, json={"inputs": ["hello"]}))
    assert len(vectors) == 1
    assert len(vectors[0]) == 384
    assert server.counters.total(PATH, 200) == 2  # the truncated answer, then the whole one


def test_truncated_bodies_give_a_connection_error(server: Any, drive: Any) -> None:
    server.set_faults(FaultConfig(p_truncate=1.0), route=PATH)
    with pytest.raises(InferenceConnectionError):
        drive().request(Request(server.url + PATH, json={"inputs": ["hello"]}))
    assert server.counters.total(PATH) == MAX_RETRIES + 1


def test_refused_connection_is_retried(drive: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hfrag")
    with socket.socket() as sock:  # a port that was just free: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(InferenceConnectionError) as info:
        drive().request(Request(f"http://127.0.0.1:{port}/embed", json=BODY))
    assert info.value.status is None
    assert "connection failed" in info.value.message
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == MAX_RETRIES
