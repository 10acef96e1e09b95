"""401, 402, 403, 404 and a server that is down: every public class raises hfrag's typed error,
after exactly one request (none of these is retried), and a down server ends within the call's
deadline."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from hfrag.errors import (
    AuthenticationError,
    InferenceConnectionError,
    InferenceError,
    InferenceTimeoutError,
    NotFoundError,
    PaymentRequiredError,
)
from hfrag.server.state import CannedResponse
from hfrag.server.testing import ServerHandle
from tests.reliability.classes import INPUTS, SUBJECTS, Subject, close

pytestmark = pytest.mark.timeout(60)

HARD = [
    (401, AuthenticationError),
    (402, PaymentRequiredError),
    (403, AuthenticationError),
    (404, NotFoundError),
]


@pytest.mark.parametrize(("status", "error"), HARD, ids=[str(s) for s, _ in HARD])
@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_a_hard_status_raises_its_typed_error_after_one_request(
    server: ServerHandle, subject: Subject, status: int, error: type[Exception]
) -> None:
    obj = subject.build(server.url, max_retry_wait=0.01)
    try:
        body = {"error": f"scripted {status}"}
        server.script(None, *[CannedResponse(status=status, body=body)] * 10)
        with pytest.raises(error) as info:
            subject.call(obj, INPUTS[subject.kind])
        assert info.value.status == status  # type: ignore[attr-defined]
        assert server.counters.total(status=status) == 1, server.counters.requests
    finally:
        close(obj)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_a_server_that_is_down_raises_a_connection_error_within_the_deadline(
    subject: Subject,
) -> None:
    obj = subject.build(f"http://127.0.0.1:{_closed_port()}", deadline=3.0, max_retry_wait=0.05)
    try:
        start = time.monotonic()
        with pytest.raises(InferenceError) as info:
            subject.call(obj, INPUTS[subject.kind])
        # The deadline (3 s), plus slack for a loaded machine; without a bound a retry loop on a
        # refused connection would run until the test's own timeout.
        assert time.monotonic() - start < 6.0
        assert isinstance(info.value, InferenceConnectionError | InferenceTimeoutError)
        assert "refused" in str(info.value).lower() or "deadline" in str(info.value).lower()
    finally:
        close(obj)


def test_every_kind_is_covered() -> None:
    kinds: dict[str, list[Any]] = {}
    for subject in SUBJECTS:
        kinds.setdefault(subject.kind, []).append(subject)
    assert sorted(kinds) == ["embed", "generate", "rerank"]
    assert len(SUBJECTS) == 13
