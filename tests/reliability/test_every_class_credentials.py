"""A planted token never shows up, for every public class: not in repr or str, not in any log
record (hfrag, httpx, httpcore at DEBUG), not in the exception or its traceback when the server
refuses it, and it is not sent after a redirect."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import pytest

from hfrag.errors import AuthenticationError, RedirectError
from hfrag.server.state import CannedResponse
from hfrag.server.testing import ServerHandle
from tests.adapters import PLANTED
from tests.reliability.classes import INPUTS, SUBJECTS, Subject, close
from tests.reliability.rawserver import RawServer, respond

pytestmark = pytest.mark.timeout(60)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage() + repr(record.__dict__))


@pytest.fixture
def records() -> Iterator[_Records]:
    handler = _Records()
    loggers = [logging.getLogger(n) for n in ("hfrag", "httpx", "httpcore")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield handler
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_a_refused_token_shows_nowhere(
    server: ServerHandle, subject: Subject, records: _Records
) -> None:
    obj = subject.build(server.url, token=PLANTED, max_retries=0)
    try:
        assert PLANTED not in repr(obj)
        assert PLANTED not in str(obj)
        body = {"error": f"token {PLANTED} is invalid", "token": PLANTED}
        server.script(None, *[CannedResponse(status=401, body=body)] * 5)
        with pytest.raises(AuthenticationError) as info:
            subject.call(obj, INPUTS[subject.kind])
        # The server did receive it (so the test can fail), yet nothing the caller sees has it.
        assert any(PLANTED in str(h) for h in server.counters.headers)
        shown = "".join(traceback.format_exception(info.value)) + repr(info.value)
        assert PLANTED not in shown
        assert records.texts, "nothing was logged: the log check proves nothing"
        assert not [t for t in records.texts if PLANTED in t]
    finally:
        close(obj)


@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_a_redirect_to_another_host_is_not_followed(
    server: ServerHandle, raw_server: RawServer, subject: Subject
) -> None:
    raw_server.route("/elsewhere", respond(200, {}))
    moved = CannedResponse(307, b"", headers={"Location": raw_server.url + "/elsewhere"})
    server.script(None, *[moved] * 5)
    obj = subject.build(server.url, token=PLANTED, max_retries=0)
    try:
        with pytest.raises(RedirectError) as info:
            subject.call(obj, INPUTS[subject.kind])
        assert PLANTED not in str(info.value)
        assert server.counters.total(status=307) == 1
        assert raw_server.stats.requests == [], "the redirect was followed"
    finally:
        close(obj)
