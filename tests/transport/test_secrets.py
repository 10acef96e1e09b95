"""A credential never shows: not in reprs, error messages, or log records."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest

from hfrag.errors import (
    AuthenticationError,
    BackendError,
    ConfigurationError,
    InferenceConnectionError,
    MalformedResponseError,
)
from hfrag.server.testing import CannedResponse
from hfrag.transport import (
    AsyncTransport,
    Request,
    RetryPolicy,
    Secret,
    SyncTransport,
    TransportConfig,
)
from hfrag.transport.responses import error_from_exception
from hfrag.transport.urls import chat_url, check_model_id, check_url

TOKEN = "hf_PLANTEDsecretTOKEN123"


def test_secret_never_shows_itself() -> None:
    secret = Secret(TOKEN)
    shown = [repr(secret), str(secret), f"{secret}", format(secret), repr([secret])]
    for text in [*shown, repr({"t": secret})]:
        assert TOKEN not in text
        assert "*" in text
    assert secret.get_secret_value() == TOKEN


def test_secret_equality_and_truth() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert bool(Secret("a"))
    assert not Secret("")


@pytest.mark.parametrize(
    "config",
    [
        TransportConfig(token=Secret(TOKEN)),
        TransportConfig(token=Secret(TOKEN), retry=RetryPolicy(max_retries=1), bill_to="org"),
        # Setting Authorization by hand is documented ("unless these headers set it").
        TransportConfig(headers={"Authorization": f"Bearer {TOKEN}"}),
        TransportConfig(headers={"X-Api-Key": TOKEN}),
    ],
    ids=["token", "token+options", "authorization-header", "api-key-header"],
)
def test_config_and_transport_reprs_hide_the_token(config: TransportConfig) -> None:
    for obj in (config, SyncTransport(config), AsyncTransport(config)):
        assert TOKEN not in repr(obj)
        assert TOKEN not in str(obj)


def test_explicit_token_never_in_the_log_of_building_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = TransportConfig(token=Secret(TOKEN)).headers_for(Request("http://127.0.0.1:1/x"))
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in caplog.text


URL_WITH_SECRETS = f"https://user:{TOKEN}@my-ep.example/embed?api_key={TOKEN}"


@pytest.mark.parametrize(
    "call",
    [
        lambda: check_url(URL_WITH_SECRETS.replace("https", "ftp")),
        lambda: chat_url(URL_WITH_SECRETS.replace("https://", "")),
        lambda: check_model_id(URL_WITH_SECRETS),  # a URL passed as model=...
    ],
    ids=["check_url", "chat_url", "check_model_id"],
)
def test_configuration_errors_hide_url_credentials(call: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        call()  # type: ignore[operator]
    assert TOKEN not in str(info.value)


def test_connection_error_hides_url_credentials() -> None:
    import httpx

    error = error_from_exception(httpx.ConnectError("refused"), URL_WITH_SECRETS)
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    back = pickle.loads(pickle.dumps(error))
    assert TOKEN not in str(back)


# --- over HTTP, through both drivers ---


def _assert_hidden(error: BaseException) -> None:
    texts = [str(error), repr(error), *map(str, error.args)]
    texts += [str(getattr(error, name, "")) for name in ("url", "message", "body")]
    for text in texts:
        assert TOKEN not in text


@pytest.mark.parametrize("body", [b"", {"error": "Invalid credentials in Authorization header"}])
def test_401_message_hides_the_token(server: Any, drive: Any, body: Any) -> None:
    server.script("/embed", CannedResponse(401, body))
    with pytest.raises(AuthenticationError) as info:
        drive(token=Secret(TOKEN)).request(Request(server.url + "/embed", json={"inputs": "a"}))
    assert server.counters.headers[-1]["authorization"] == f"Bearer {TOKEN}"  # it was sent
    _assert_hidden(info.value)
    assert "HTTP 401" in str(info.value)


def _secret_url(server: Any, path: str) -> str:
    return server.url.replace("http://", f"http://user:{TOKEN}@") + f"{path}?api_key={TOKEN}"


@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        (CannedResponse(403, {"error": "forbidden"}), AuthenticationError),
        (CannedResponse(200, "not json"), MalformedResponseError),
    ],
    ids=["403", "malformed-200"],
)
def test_errors_hide_credentials_in_the_url(
    server: Any, drive: Any, answer: CannedResponse, cls: type[Exception]
) -> None:
    server.script("/embed", answer)
    with pytest.raises(cls) as info:
        drive().request(Request(_secret_url(server, "/embed"), json={"inputs": "a"}))
    _assert_hidden(info.value)
    assert info.value.url == f"{server.url}/embed?api_key=***"  # type: ignore[attr-defined]


def test_malformed_stream_event_hides_credentials_in_the_url(server: Any, drive: Any) -> None:
    server.script("/generate_stream", CannedResponse(200, sse=["data: oops", ""]))
    with pytest.raises(MalformedResponseError) as info:
        drive().stream(Request(_secret_url(server, "/generate_stream"), json={}, stream=True))
    _assert_hidden(info.value)


def test_stream_error_event_hides_credentials_in_the_url(server: Any, drive: Any) -> None:
    event = 'data: {"error": "boom", "error_type": "generation"}'
    server.script("/generate_stream", CannedResponse(200, sse=[event, ""]))
    with pytest.raises(BackendError) as info:
        drive().stream(Request(_secret_url(server, "/generate_stream"), json={}, stream=True))
    _assert_hidden(info.value)


def test_connection_errors_hide_credentials_in_the_url(server: Any, drive: Any) -> None:
    server.script("/embed", *[CannedResponse(drop=True)] * 3)
    with pytest.raises(InferenceConnectionError) as info:
        drive().request(Request(_secret_url(server, "/embed"), json={"inputs": "a"}))
    _assert_hidden(info.value)


def test_retry_logs_hide_the_token(
    server: Any, drive: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: hfrag's, httpx's, httpcore's
    loading = CannedResponse(503, {"error": "loading", "estimated_time": 0.01})
    server.script("/embed", loading, CannedResponse(drop=True), CannedResponse(200, [[0.0]]))
    driver = drive(token=Secret(TOKEN), retry=RetryPolicy(max_retries=3, backoff_base=0.01))
    driver.request(Request(server.url + "/embed", json={"inputs": "a"}))
    retries = [r for r in caplog.records if r.name == "hfrag.transport"]
    assert len(retries) == 2  # the test saw the retries it is about
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    assert TOKEN not in caplog.text


def test_retry_logs_hide_credentials_in_the_url(
    server: Any, drive: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hfrag")
    loading = CannedResponse(503, {"error": "loading", "estimated_time": 0.01})
    server.script("/embed", loading, CannedResponse(200, [[0.0]]))
    drive().request(Request(_secret_url(server, "/embed"), json={"inputs": "a"}))
    hfrag_records = [r for r in caplog.records if r.name.startswith("hfrag")]
    assert hfrag_records
    for record in hfrag_records:
        assert TOKEN not in record.getMessage()
    # The client's retry log names the URL, redacted (the server's access log logs the path only).
    retries = [r for r in hfrag_records if r.name == "hfrag.transport"]
    assert retries
    for record in retries:
        assert f"{server.url}/embed?api_key=***" in record.getMessage()
