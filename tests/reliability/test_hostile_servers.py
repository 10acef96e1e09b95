"""What a hostile or broken server cannot make hfrag do: hang, swallow unbounded memory, follow
a redirect, take a non-answer for an answer, or leak a credential it echoes back."""

from __future__ import annotations

import asyncio
import functools
import gzip
import logging
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from hfrag.errors import (
    InferenceError,
    InferenceTimeoutError,
    MalformedResponseError,
    RedirectError,
)
from hfrag.tasks import EmbeddingsClient
from hfrag.transport import Request, RetryPolicy, Secret, TransportConfig
from tests.reliability.rawserver import (
    RawServer,
    drip,
    echo_credentials,
    embeddings,
    endless,
    head,
    raw,
    respond,
)
from tests.transport.conftest import Driver

pytestmark = pytest.mark.timeout(30)

BODY = {"inputs": ["a"]}
#: Far more than any bound a test expects: an old hfrag would hang well past it.
BOUND = 4.0


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[Driver] = []

    def make(**kwargs: Any) -> Driver:
        kwargs.setdefault("retry", RetryPolicy(max_retries=0))
        kwargs.setdefault("timeout", 10.0)
        driver = Driver(request.param, TransportConfig(**kwargs))
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()


def _call(mode: str, client: EmbeddingsClient, texts: list[str]) -> Any:
    if mode == "sync":
        return client.embed(texts)
    return asyncio.run(client.aembed(texts))


# --- time: a body that drips or never ends ---


def test_dripping_body_times_out(raw_server: RawServer, drive: Any) -> None:
    raw_server.route("/embed", drip(b"[[" + b"1.0," * 200 + b"1.0]]", interval=0.05))
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError):
        drive(timeout=0.5).request(Request(raw_server.url + "/embed", json=BODY))
    assert time.monotonic() - start < BOUND


def test_endless_slow_body_times_out(raw_server: RawServer, drive: Any) -> None:
    raw_server.route("/embed", endless(b"[1.0,", interval=0.05))
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError):
        drive(timeout=0.5).request(Request(raw_server.url + "/embed", json=BODY))
    assert time.monotonic() - start < BOUND


def test_dripping_body_ends_at_the_deadline_without_a_timeout(
    raw_server: RawServer, drive: Any
) -> None:
    raw_server.route("/embed", drip(b"[[" + b"1.0," * 200 + b"1.0]]", interval=0.05))
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError, match="deadline"):
        drive(timeout=None, retry=RetryPolicy(max_retries=3, deadline=0.6)).request(
            Request(raw_server.url + "/embed", json=BODY)
        )
    assert time.monotonic() - start < BOUND


# --- size: a body past the cap is refused while it streams in ---


def test_endless_fast_body_is_cut_at_the_cap(raw_server: RawServer, drive: Any) -> None:
    raw_server.route("/embed", endless())
    with pytest.raises(MalformedResponseError, match="cap of 1000000 bytes"):
        drive(max_response_bytes=1_000_000).request(Request(raw_server.url + "/embed", json=BODY))
    # Read and counted, not read whole first: the server got to send little more than the cap
    # (plus what the socket buffers hold).
    assert raw_server.stats.bytes_sent < 40_000_000


def test_declared_huge_body_is_refused_before_reading(raw_server: RawServer, drive: Any) -> None:
    raw_server.route(
        "/embed",
        raw(head(200, {"Content-Length": str(10**12), "Content-Type": "application/json"})),
    )
    with pytest.raises(MalformedResponseError, match="declares 1000000000000 bytes"):
        drive().request(Request(raw_server.url + "/embed", json=BODY))


def test_request_may_raise_the_automatic_cap_but_not_the_users(
    raw_server: RawServer, drive: Any
) -> None:
    big = b"[[" + b"1.0," * 300_000 + b"1.0]]"  # 1.2 MB
    raw_server.route("/embed", respond(200, big))
    url = raw_server.url + "/embed"
    assert drive().request(Request(url, json=BODY, max_response_bytes=10))  # default cap holds
    with pytest.raises(MalformedResponseError):
        drive(max_response_bytes=1_000_000).request(
            Request(url, json=BODY, max_response_bytes=10**9)
        )


def test_embeddings_default_cap_is_sized_from_the_batch(raw_server: RawServer) -> None:
    declared = 40 * 1024 * 1024  # above the 32 MiB floor: refused before a byte is read
    raw_server.route(
        "/embed",
        raw(head(200, {"Content-Length": str(declared), "Content-Type": "application/json"})),
    )
    client = EmbeddingsClient(endpoint_url=raw_server.url + "/embed", max_retries=0)
    with pytest.raises(MalformedResponseError, match="cap of") as info:
        client.embed(["a", "b"])
    assert info.value.positions == (0, 1)
    assert str(32 * 1024 * 1024) in str(info.value)
    # Twenty inputs in one batch may need more: the cap grows with the batch (4 MiB each).
    config = client.config
    assert config.response_cap(Request("http://h", max_response_bytes=20 * 4 * 2**20)) == 80 * 2**20
    assert config.response_cap(Request("http://h")) == 32 * 2**20


def test_error_bodies_are_cut_not_refused(raw_server: RawServer, drive: Any) -> None:
    raw_server.route("/embed", respond(400, b'{"error": "' + b"x" * 500_000 + b'"}'))
    from hfrag.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError) as info:
        drive().request(Request(raw_server.url + "/embed", json=BODY))
    assert len(str(info.value)) < 2000


# --- redirects: never followed, never a success, never carry a credential ---


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(raw_server: RawServer, drive: Any, status: int) -> None:
    port = raw_server.url.rsplit(":", 1)[1]
    target = f"http://user:pw-SECRET-1@localhost:{port}/stolen?api_key=SECRET-2&x=1"
    raw_server.route("/embed", respond(status, b"", {"Location": target}))
    raw_server.route("/stolen", respond(200, [[1.0]]))
    with pytest.raises(RedirectError) as info:
        drive(token=Secret("hf_TOKEN-SECRET-3")).request(
            Request(raw_server.url + "/embed", json=BODY)
        )
    error = info.value
    assert error.status == status
    assert f"localhost:{port}/stolen" in str(error)  # where it points...
    for secret in ("SECRET-1", "SECRET-2", "SECRET-3", "pw-"):
        assert secret not in str(error)  # ...without what the location or request held
    assert raw_server.stats.paths() == ["/embed"]  # nothing went to the new location


def test_relative_redirect_names_the_full_location(raw_server: RawServer, drive: Any) -> None:
    raw_server.route("/embed", respond(308, b"", {"Location": "/embed/"}))
    with pytest.raises(RedirectError, match=r"127\.0\.0\.1:\d+/embed/"):
        drive().request(Request(raw_server.url + "/embed", json=BODY))


def test_redirect_from_an_embeddings_call(raw_server: RawServer) -> None:
    raw_server.route("/", respond(302, b"", {"Location": "http://elsewhere.example/login"}))
    client = EmbeddingsClient(endpoint_url=raw_server.url, max_retries=3)
    with pytest.raises(RedirectError, match=r"elsewhere\.example/login"):
        client.embed(["a"])
    assert raw_server.stats.paths().count("/") == 1  # not retried


# --- status lines of every kind: only a 2xx with content is an answer ---


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (head(204), MalformedResponseError),
        (head(205, {"Content-Length": "0"}), MalformedResponseError),
        (head(600, {"Content-Length": "7"}) + b"[[1.0]]", MalformedResponseError),
        (head(999, {"Content-Length": "7"}) + b"[[1.0]]", MalformedResponseError),
        (head(304), RedirectError),
        (head(101, {"Upgrade": "websocket"}), InferenceError),
        (b"HTTP/1.1 2OO OK\r\nContent-Length: 7\r\n\r\n[[1.0]]", InferenceError),
        (b"garbage\r\n\r\n", InferenceError),
    ],
    ids=["204", "205", "600", "999", "304", "101", "bad-code", "garbage"],
)
def test_non_answers_are_errors(
    raw_server: RawServer, drive: Any, wire: bytes, error: type[Exception]
) -> None:
    raw_server.route("/embed", raw(wire))
    with pytest.raises(error):
        drive().request(Request(raw_server.url + "/embed", json=BODY))


def test_informational_status_before_the_answer_is_skipped(
    raw_server: RawServer, drive: Any
) -> None:
    raw_server.route(
        "/embed",
        raw(b"HTTP/1.1 100 Continue\r\n\r\n" + head(200, {"Content-Length": "7"}) + b"[[1.0]]"),
    )
    assert drive().request(Request(raw_server.url + "/embed", json=BODY)) == [[1.0]]


def test_invalid_status_is_not_retried(raw_server: RawServer, drive: Any) -> None:
    raw_server.route("/embed", raw(head(600, {"Content-Length": "2"}) + b"{}"))
    with pytest.raises(MalformedResponseError, match="600"):
        drive(retry=RetryPolicy(max_retries=3, backoff_base=0.01)).request(
            Request(raw_server.url + "/embed", json=BODY)
        )
    assert len(raw_server.stats.requests) == 1


# --- credentials echoed back by a server: never in an error, traceback or log ---

TOKEN = "hf_PLANTEDtokenVALUE0001"
API_KEY = "key-PLANTED-header-0002"
URL_KEY = "PLANTED-query-0003"
URL_PASSWORD = "PLANTED-password-0004"


def _texts(error: BaseException) -> list[str]:
    return [
        str(error),
        repr(error),
        "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        repr(getattr(error, "body", "")),
        str(getattr(error, "url", "")),
    ]


@pytest.mark.parametrize("token", [TOKEN, Secret(TOKEN)])
def test_echoed_credentials_are_scrubbed_everywhere(
    raw_server: RawServer, drive: Any, caplog: pytest.LogCaptureFixture, token: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    raw_server.route("/embed", echo_credentials(500))
    driver = drive(
        token=Secret(TOKEN) if isinstance(token, str) else token, headers={"X-Api-Key": API_KEY}
    )
    url = raw_server.url.replace("//", f"//me:{URL_PASSWORD}@") + f"/embed?api_key={URL_KEY}"
    with pytest.raises(InferenceError) as info:
        driver.request(Request(url, json=BODY))
    seen = raw_server.stats.requests[0].headers
    assert seen["x-api-key"] == API_KEY  # it was sent, and echoed back
    texts = [*_texts(info.value), caplog.text]
    assert any("/embed" in record.getMessage() for record in caplog.records)  # httpx did log
    for text in texts:
        for secret in (TOKEN, API_KEY, URL_KEY, URL_PASSWORD):
            assert secret not in text


def test_echoed_credentials_are_scrubbed_from_an_embeddings_call(
    raw_server: RawServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    raw_server.route("/", echo_credentials(400))
    client = EmbeddingsClient(
        endpoint_url=raw_server.url, token=TOKEN, headers={"X-Api-Key": API_KEY}, max_retries=0
    )
    with pytest.raises(InferenceError) as info:
        client.embed(["a", "b"])
    for text in [*_texts(info.value), caplog.text]:
        assert TOKEN not in text
        assert API_KEY not in text


def test_stream_error_event_echoing_the_token_is_scrubbed(
    raw_server: RawServer, drive: Any
) -> None:
    event = b'data: {"error": "bad token ' + TOKEN.encode() + b'"}\n\n'
    raw_server.route(
        "/generate_stream",
        raw(head(200, {"Content-Type": "text/event-stream"}) + event),
    )
    with pytest.raises(InferenceError) as info:
        drive(token=Secret(TOKEN)).stream(
            Request(raw_server.url + "/generate_stream", json=BODY, stream=True)
        )
    for text in _texts(info.value):
        assert TOKEN not in text


# --- streams: the deadline covers opening and reading; one event has a size cap ---


def test_stream_that_never_ends_stops_at_the_deadline(raw_server: RawServer, drive: Any) -> None:
    raw_server.route(
        "/generate_stream",
        endless(b'data: {"token": "x"}\n\n', interval=0.05, content_type="text/event-stream"),
    )
    got: list[Any] = []
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError, match="deadline"):
        drive(retry=RetryPolicy(max_retries=0, deadline=0.8)).stream(
            Request(raw_server.url + "/generate_stream", json=BODY, stream=True), into=got
        )
    assert time.monotonic() - start < BOUND
    assert got  # events did arrive before the deadline


def test_stream_event_past_the_cap_is_refused(raw_server: RawServer, drive: Any) -> None:
    raw_server.route(
        "/generate_stream",
        endless(b"x" * 10_000, content_type="text/event-stream"),  # one line that never ends
    )
    with pytest.raises(MalformedResponseError, match="stream event"):
        drive(max_event_bytes=100_000).stream(
            Request(raw_server.url + "/generate_stream", json=BODY, stream=True)
        )
    assert raw_server.stats.bytes_sent < 40_000_000


# --- the whole-call deadline of a task client: batches, retries and waits together ---


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_deadline_bounds_a_whole_embed_call(raw_server: RawServer, mode: str) -> None:
    raw_server.route("/embed", embeddings(delay=0.3))
    client = EmbeddingsClient(
        endpoint_url=raw_server.url + "/embed",
        deadline=1.0,
        timeout=5.0,
        options=_options(batch_size=1, max_concurrency=1),
    )
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError, match="deadline") as info:
        _call(mode, client, [f"t{i}" for i in range(10)])  # 10 batches of 0.3 s each
    assert time.monotonic() - start < 1.0 + 1.5
    assert info.value.positions
    assert 9 in info.value.positions


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_deadline_bounds_retry_waits_of_a_call(raw_server: RawServer, mode: str) -> None:
    raw_server.route("/embed", respond(503, {"error": "loading"}, {"Retry-After": "0.3"}))
    client = EmbeddingsClient(endpoint_url=raw_server.url + "/embed", deadline=1.0, max_retries=50)
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError, match="deadline"):
        _call(mode, client, ["a", "b"])
    assert time.monotonic() - start < 1.0 + 1.5
    assert 2 <= len(raw_server.stats.requests) <= 5


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_deadline_bounds_a_dripping_answer_of_a_call(raw_server: RawServer, mode: str) -> None:
    raw_server.route("/embed", drip(b"[[" + b"1.0," * 200 + b"1.0]]", interval=0.05))
    client = EmbeddingsClient(endpoint_url=raw_server.url + "/embed", deadline=0.8, timeout=None)
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError):
        _call(mode, client, ["a"])
    assert time.monotonic() - start < BOUND


def _options(**kwargs: Any) -> Any:
    from hfrag.tasks import EmbeddingOptions

    return EmbeddingOptions(**kwargs)


# --- more of what a hostile server can send ---


@functools.lru_cache(maxsize=1)
def _bomb() -> bytes:
    return gzip.compress(b"[" + b"0" * 20_000_000, compresslevel=6)  # ~20 KB on the wire


def test_compressed_bomb_is_cut_at_the_cap(raw_server: RawServer, drive: Any) -> None:
    bomb = _bomb()
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Content-Length": str(len(bomb)),
    }
    raw_server.route("/embed", raw(head(200, headers) + bomb))
    with pytest.raises(MalformedResponseError, match="cap of 1000000 bytes"):
        drive(max_response_bytes=1_000_000).request(Request(raw_server.url + "/embed", json=BODY))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_dripping_headers_end_at_the_deadline(raw_server: RawServer, mode: str) -> None:
    async def behaviour(request: Any, writer: Any) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(1000):
            await asyncio.sleep(0.05)
            writer.write(b"X: y\r\n")
            await writer.drain()

    raw_server.route("/embed", behaviour)
    client = EmbeddingsClient(endpoint_url=raw_server.url + "/embed", deadline=0.8, timeout=0.5)
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError):
        _call(mode, client, ["a"])
    assert time.monotonic() - start < BOUND


def test_an_inner_call_keeps_the_outer_deadline(raw_server: RawServer) -> None:
    raw_server.route("/embed", embeddings(delay=3.0))
    url = raw_server.url + "/embed"
    outer = EmbeddingsClient(endpoint_url=url, deadline=0.5)
    inner = EmbeddingsClient(endpoint_url=url, timeout=None)  # no limit of its own
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError, match="deadline"):
        outer.run(inner.aembed(["a"]))
    assert time.monotonic() - start < BOUND
