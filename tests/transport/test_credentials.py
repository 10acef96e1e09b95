"""The credential rule: resolution order, and an implicit token only for Hugging Face hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import hfrag
from hfrag.errors import AuthenticationError
from hfrag.server.config import ServerConfig
from hfrag.server.testing import CannedResponse
from hfrag.transport import Request, Secret, TransportConfig, is_hf_host, token_for
from hfrag.transport.credentials import implicit_token

pytestmark = pytest.mark.usefixtures("saved_token_path")

ROUTER = "https://router.huggingface.co/hf-inference/models/BAAI/bge-small-en-v1.5"
HF_ENDPOINT = "https://abc123.us-east-1.aws.endpoints.huggingface.cloud"

HF_URLS = [
    "https://huggingface.co/api/models",
    "https://hf.co/x",
    "https://router.huggingface.co/v1/chat/completions",
    ROUTER,
    HF_ENDPOINT,
    HF_ENDPOINT + "/embed",
    "https://HuggingFace.CO/x",
    "https://huggingface.co./x",
    "https://huggingface.co:443/x",
]
NOT_HF_URLS = [
    "http://huggingface.co/x",  # plain http: the token would travel in clear
    "http://router.huggingface.co/v1/chat/completions",
    "http://abc.endpoints.huggingface.cloud",
    "https://evil-huggingface.co/x",
    "https://huggingface.co.evil.com/x",
    "https://hf.co.evil.com/x",
    "https://evilhf.co/x",
    "https://huggingface.cloud.evil.com/x",
    "https://hf.space.evil.com/x",
    # Spaces run their owner's code: the ambient token is not theirs to see.
    "https://my-space.hf.space/run",
    "https://a.b.hf.space",
    "https://huggingface.co@evil.com/x",
    "https://evil.com/huggingface.co",
    "https://evil.com/?u=https://huggingface.co",
    "http://127.0.0.1:8080/embed",
    "http://localhost:3000/v1/chat/completions",
    "https://api.openai.com/v1/chat/completions",
    "ftp://huggingface.co/x",
    "huggingface.co",
    "https://[::1",
]


@pytest.mark.parametrize("url", HF_URLS)
def test_hf_hosts(url: str) -> None:
    assert is_hf_host(url)


@pytest.mark.parametrize("url", NOT_HF_URLS)
def test_not_hf_hosts(url: str) -> None:
    assert not is_hf_host(url)


@pytest.mark.parametrize("url", HF_URLS[:5])
def test_implicit_token_goes_to_hf_hosts(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_ambient")
    assert token_for(url, None) == "hf_ambient"


@pytest.mark.parametrize("url", NOT_HF_URLS)
def test_implicit_token_never_leaves_hf_hosts(
    monkeypatch: pytest.MonkeyPatch, saved_token_path: Path, url: str
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_ambient")
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy")
    saved_token_path.write_text("hf_saved")
    assert token_for(url, None) is None


@pytest.mark.parametrize("url", [*NOT_HF_URLS[:-2], *HF_URLS[:3]])
def test_explicit_token_goes_anywhere(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_ambient")
    assert token_for(url, Secret("tei-api-key")) == "tei-api-key"


@pytest.mark.parametrize(
    ("explicit", "hf_token", "hub_token", "saved", "expected"),
    [
        ("hf_explicit", "hf_env", "hf_hub", "hf_saved", "hf_explicit"),
        (None, "hf_env", "hf_hub", "hf_saved", "hf_env"),
        (None, None, "hf_hub", "hf_saved", "hf_hub"),
        (None, None, None, "hf_saved", "hf_saved"),
        (None, None, None, None, None),
        (None, "  hf_env \n", None, None, "hf_env"),
        (None, "   ", "hf_hub", None, "hf_hub"),  # a blank variable does not count
        (None, None, None, "  hf_saved\n", "hf_saved"),
    ],
)
def test_resolution_order(
    monkeypatch: pytest.MonkeyPatch,
    saved_token_path: Path,
    explicit: str | None,
    hf_token: str | None,
    hub_token: str | None,
    saved: str | None,
    expected: str | None,
) -> None:
    if hf_token is not None:
        monkeypatch.setenv("HF_TOKEN", hf_token)
    if hub_token is not None:
        monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", hub_token)
    if saved is not None:
        saved_token_path.write_text(saved)
    secret = None if explicit is None else Secret(explicit)
    assert token_for(ROUTER, secret) == expected


def test_unreadable_saved_token_does_not_break_requests(saved_token_path: Path) -> None:
    saved_token_path.mkdir()  # reading a directory raises IsADirectoryError
    assert implicit_token() is None
    assert token_for(ROUTER, None) is None


_CHILD = """
import json, sys
from hfrag.transport import Secret, token_for
print(json.dumps([
    token_for(sys.argv[1], None),
    token_for("http://127.0.0.1:8080/embed", None),
    token_for(sys.argv[1], Secret("hf_explicit")),
]))
"""


def test_saved_token_from_hf_home(tmp_path: Path) -> None:
    """The token ``hf auth login`` saves in ``$HF_HOME/token`` is found, for HF hosts only."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text("hf_saved_login\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env["HF_HOME"] = str(home)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, ROUTER],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == ["hf_saved_login", None, "hf_explicit"]


# --- headers_for: the one place the credential is added (pure; HF hosts are unreachable) ---


@pytest.mark.parametrize("url", [ROUTER, HF_ENDPOINT])
def test_headers_for_hf_urls_carry_the_ambient_token(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_ambient")
    headers = TransportConfig().headers_for(Request(url))
    assert headers["authorization"] == "Bearer hf_ambient"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/embed", "https://api.example/v1", "https://x.hf.space/embed"]
)
def test_headers_for_other_urls_carry_no_ambient_token(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_ambient")
    assert "authorization" not in TransportConfig().headers_for(Request(url))


@pytest.mark.parametrize("url", [ROUTER, "http://127.0.0.1:8080/embed"])
def test_headers_for_explicit_token(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_ambient")
    headers = TransportConfig(token=Secret("k-1")).headers_for(Request(url))
    assert headers["authorization"] == "Bearer k-1"
    assert [k for k in headers if k.lower() == "authorization"] == ["authorization"]


def test_user_authorization_header_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_ambient")
    config = TransportConfig(token=Secret("k-1"), headers={"Authorization": "Basic abc"})
    headers = config.headers_for(Request(ROUTER))
    assert headers["authorization"] == "Basic abc"
    assert [k for k in headers if k.lower() == "authorization"] == ["authorization"]


def test_headers_for_defaults_and_options() -> None:
    plain = TransportConfig().headers_for(Request("http://127.0.0.1:1/x"))
    assert plain == {"user-agent": f"hfrag/{hfrag.__version__}", "accept": "application/json"}
    config = TransportConfig(
        bill_to="my-org",
        wait_for_model=True,
        use_cache=False,
        headers={"X-Custom": "1", "User-Agent": "mine/2"},
    )
    request = Request("http://127.0.0.1:1/x", headers={"X-Task": "embed"}, stream=True)
    headers = config.headers_for(request)
    assert headers["x-hf-bill-to"] == "my-org"
    assert headers["x-wait-for-model"] == "true"
    assert headers["x-use-cache"] == "false"
    assert headers["x-custom"] == "1"
    assert headers["x-task"] == "embed"
    assert headers["user-agent"] == "mine/2"  # user headers win over hfrag's own
    assert headers["accept"] == "text/event-stream"


def test_config_headers_win_over_request_headers() -> None:
    config = TransportConfig(headers={"X-Which": "config"})
    request = Request("http://127.0.0.1:1/x", headers={"x-which": "request"})
    assert config.headers_for(request)["x-which"] == "config"


# --- what the local server actually receives, through both drivers ---

AMBIENT = "hf_AMBIENTtoken"


@pytest.fixture
def ambient_everywhere(monkeypatch: pytest.MonkeyPatch, saved_token_path: Path) -> None:
    """Every implicit source holds a token."""
    monkeypatch.setenv("HF_TOKEN", AMBIENT)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", AMBIENT + "_legacy")
    saved_token_path.write_text(AMBIENT + "_saved")


@pytest.mark.usefixtures("ambient_everywhere")
@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
def test_local_server_never_sees_the_ambient_token(server: Any, drive: Any, stream: bool) -> None:
    server.script("/embed", CannedResponse(200, [[0.0]]))
    driver = drive()
    request = Request(server.url + "/embed", json={"inputs": "a"}, stream=stream)
    driver.stream(request) if stream else driver.request(request)
    seen = server.counters.headers[-1]
    assert "authorization" not in seen
    assert not any(AMBIENT in value for value in seen.values())


@pytest.mark.usefixtures("ambient_everywhere")
def test_explicit_token_is_sent_as_bearer(server: Any, drive: Any) -> None:
    server.script("/embed", CannedResponse(200, [[0.0]]))
    drive(token=Secret("tei-key-1")).request(Request(server.url + "/embed", json={"inputs": "a"}))
    assert server.counters.headers[-1]["authorization"] == "Bearer tei-key-1"


@pytest.mark.usefixtures("ambient_everywhere")
def test_tei_with_api_key_wants_the_explicit_token(make_server: Any, drive: Any) -> None:
    srv = make_server(ServerConfig(api_key=AMBIENT))  # even the ambient value is not sent
    request = Request(srv.url + "/embed", json={"inputs": ["hello"]})
    with pytest.raises(AuthenticationError) as info:
        drive().request(request)
    assert info.value.status == 401
    assert srv.counters.total("/embed", 401) == 1  # not retried
    vectors = drive(token=Secret(AMBIENT)).request(request)
    assert len(vectors) == 1
    assert len(vectors[0]) == 384


def test_headers_seen_by_the_server(server: Any, drive: Any) -> None:
    server.script("/embed", CannedResponse(200, [[0.0]]))
    driver = drive(
        bill_to="my-org",
        wait_for_model=True,
        use_cache=False,
        headers={"X-Custom-Header": "custom value"},
    )
    driver.request(Request(server.url + "/embed", json={"inputs": "a"}, headers={"X-Task": "t"}))
    seen = server.counters.headers[-1]
    assert seen["user-agent"] == f"hfrag/{hfrag.__version__}"
    assert seen["x-wait-for-model"] == "true"
    assert seen["x-use-cache"] == "false"
    assert seen["x-hf-bill-to"] == "my-org"
    assert seen["x-custom-header"] == "custom value"
    assert seen["x-task"] == "t"
    assert seen["accept"] == "application/json"
    assert seen["content-type"] == "application/json"
    assert server.counters.bodies[-1] == {"inputs": "a"}


def test_optional_hf_headers_are_absent_by_default(server: Any, drive: Any) -> None:
    server.script("/embed", CannedResponse(200, [[0.0]]))
    drive().request(Request(server.url + "/embed", json={"inputs": "a"}))
    seen = server.counters.headers[-1]
    assert not {"x-wait-for-model", "x-use-cache", "x-hf-bill-to", "authorization"} & set(seen)


def test_wait_for_model_false_and_use_cache_true(server: Any, drive: Any) -> None:
    server.script("/embed", CannedResponse(200, [[0.0]]))
    drive(wait_for_model=False, use_cache=True).request(
        Request(server.url + "/embed", json={"inputs": "a"})
    )
    seen = server.counters.headers[-1]
    assert (seen["x-wait-for-model"], seen["x-use-cache"]) == ("false", "true")


def test_every_retry_carries_the_same_headers(server: Any, drive: Any) -> None:
    loading = CannedResponse(503, {"error": "loading", "estimated_time": 0.01})
    server.script("/embed", loading, loading, CannedResponse(200, [[0.0]]))
    drive(token=Secret("k")).request(Request(server.url + "/embed", json={"inputs": "a"}))
    auth = [h.get("authorization") for h in server.counters.headers]
    assert auth == ["Bearer k"] * 3
