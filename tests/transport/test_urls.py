"""URL rules: router URLs for model ids, endpoint URLs as given, TEI/TGI routes, chat URLs."""

from __future__ import annotations

from typing import Any

import pytest

from hfrag.errors import ConfigurationError
from hfrag.server.testing import CannedResponse
from hfrag.transport import Request
from hfrag.transport.urls import (
    DEFAULT_ROUTER_URL,
    ROUTER_ENV,
    chat_url,
    check_model_id,
    check_url,
    endpoint_base,
    endpoint_route,
    model_url,
    redact_url,
    router_base,
    router_chat_url,
)

MODEL = "BAAI/bge-small-en-v1.5"


@pytest.fixture(autouse=True)
def _no_router_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ROUTER_ENV, raising=False)


def test_default_router_is_the_hf_router_not_the_retired_host() -> None:
    assert DEFAULT_ROUTER_URL == "https://router.huggingface.co"
    assert router_base() == "https://router.huggingface.co"
    assert "api-inference" not in model_url(MODEL, "feature-extraction")


@pytest.mark.parametrize("task", ["feature-extraction", "sentence-similarity"])
def test_pipeline_tasks_get_the_pipeline_suffix(task: str) -> None:
    assert model_url(MODEL, task) == (
        f"https://router.huggingface.co/hf-inference/models/{MODEL}/pipeline/{task}"
    )


@pytest.mark.parametrize("task", ["text-classification", "text-generation"])
def test_model_tasks_use_the_bare_model_url(task: str) -> None:
    assert model_url(MODEL, task) == f"https://router.huggingface.co/hf-inference/models/{MODEL}"


def test_model_id_without_namespace() -> None:
    assert model_url("gpt2", "text-generation") == (
        "https://router.huggingface.co/hf-inference/models/gpt2"
    )


def test_unknown_task_is_refused() -> None:
    with pytest.raises(ValueError, match="summarization"):
        model_url(MODEL, "summarization")


@pytest.mark.parametrize(
    "router", ["http://127.0.0.1:9999", "http://127.0.0.1:9999/", "https://proxy.example/hf/"]
)
def test_router_argument_overrides_default(router: str) -> None:
    expected = router.rstrip("/")
    assert router_base(router) == expected
    assert model_url(MODEL, "feature-extraction", router) == (
        f"{expected}/hf-inference/models/{MODEL}/pipeline/feature-extraction"
    )
    assert router_chat_url(router) == f"{expected}/v1/chat/completions"


def test_router_env_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROUTER_ENV, "http://127.0.0.1:8123/")
    assert model_url(MODEL, "text-generation") == (
        f"http://127.0.0.1:8123/hf-inference/models/{MODEL}"
    )
    assert router_chat_url() == "http://127.0.0.1:8123/v1/chat/completions"


def test_router_argument_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROUTER_ENV, "http://from-env.example")
    assert router_base("http://from-arg.example") == "http://from-arg.example"


def test_invalid_router_env_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROUTER_ENV, "router.huggingface.co")
    with pytest.raises(ConfigurationError, match="the environment variable HFRAG_ROUTER_URL"):
        router_base()


def test_router_chat_url_default() -> None:
    assert router_chat_url() == "https://router.huggingface.co/v1/chat/completions"


@pytest.mark.parametrize(
    "url",
    [
        "https://abc123.us-east-1.aws.endpoints.huggingface.cloud",
        "https://abc123.us-east-1.aws.endpoints.huggingface.cloud/",
        "http://127.0.0.1:8080/embed",
        "http://localhost:8080/some/deploy/path/?api-version=2024-01-01",
        "https://router.huggingface.co/hf-inference/models/x/y",
    ],
)
def test_endpoint_url_is_used_verbatim(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("base", "route", "expected"),
    [
        ("http://tei:8080", "/rerank", "http://tei:8080/rerank"),
        ("http://tei:8080/", "rerank", "http://tei:8080/rerank"),
        ("http://tei:8080/embed", "/info", "http://tei:8080/info"),
        ("http://tei:8080/embed_all", "/health", "http://tei:8080/health"),
        ("http://tei:8080/embed_sparse/", "/embed", "http://tei:8080/embed"),
        ("http://tei:8080/predict", "/rerank", "http://tei:8080/rerank"),
        ("http://tgi:80/generate", "/generate_stream", "http://tgi:80/generate_stream"),
        ("http://tgi:80/generate_stream", "/info", "http://tgi:80/info"),
        ("http://tgi:80/ep/v1/chat/completions", "/health", "http://tgi:80/ep/health"),
        ("http://tgi:80/ep/chat/completions", "/info", "http://tgi:80/ep/info"),
        ("http://tgi:80/ep/v1", "/generate", "http://tgi:80/ep/generate"),
        (
            "https://x.endpoints.huggingface.cloud/",
            "/embed",
            "https://x.endpoints.huggingface.cloud/embed",
        ),
        # Only a whole trailing path segment counts as a route.
        ("http://tei:8080/myembed", "/info", "http://tei:8080/myembed/info"),
        ("http://tei:8080/deploy/a", "/info", "http://tei:8080/deploy/a/info"),
    ],
)
def test_tei_tgi_routes_hang_off_the_endpoint_base(base: str, route: str, expected: str) -> None:
    assert endpoint_route(base, route) == expected


def test_endpoint_base_strips_only_one_route() -> None:
    assert endpoint_base("http://h/embed/rerank") == "http://h/embed"


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://h/ep", "http://h/ep/v1/chat/completions"),
        ("http://h/ep/", "http://h/ep/v1/chat/completions"),
        ("http://h/ep/v1", "http://h/ep/v1/chat/completions"),
        ("http://h/ep/v1/", "http://h/ep/v1/chat/completions"),
        ("http://h", "http://h/v1/chat/completions"),
        ("http://h/", "http://h/v1/chat/completions"),
        ("http://h/ep/v1/chat/completions", "http://h/ep/v1/chat/completions"),
        ("http://h/openai/chat/completions", "http://h/openai/chat/completions"),
        ("https://router.huggingface.co/v1", "https://router.huggingface.co/v1/chat/completions"),
        ("http://h/ep?api-version=1", "http://h/ep/v1/chat/completions?api-version=1"),
    ],
)
def test_chat_url(base: str, expected: str) -> None:
    assert chat_url(base) == expected


BAD_URLS = [
    "",
    "router.huggingface.co",
    "/v1/chat/completions",
    "ftp://example.com/x",
    "http://",
    "https:///path-only",
    "localhost:8080",
    "http://[::1",  # unbalanced IPv6 bracket: urlsplit itself raises ValueError
    "http://127.0.0.1:99999/",  # port out of range
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("check", [check_url, chat_url, endpoint_base])
def test_invalid_urls_are_configuration_errors(url: str, check: object) -> None:
    with pytest.raises(ConfigurationError, match=r"http:// or https://"):
        check(url)  # type: ignore[operator]


def test_invalid_url_message_names_the_argument() -> None:
    with pytest.raises(ConfigurationError, match=r"^router_url must be an absolute"):
        check_url("nope", what="router_url")
    with pytest.raises(ConfigurationError, match=r"^endpoint_url must be an absolute"):
        check_url("nope")


@pytest.mark.parametrize(
    "model",
    [
        "gpt2",
        "BAAI/bge-small-en-v1.5",
        "sentence-transformers/all-MiniLM-L6-v2",
        "org_name/model_name.v2",
        "hfrag/hash-embed",
    ],
)
def test_valid_model_ids(model: str) -> None:
    assert check_model_id(model) == model


@pytest.mark.parametrize(
    "model",
    [
        "",
        "a/b/c",
        "/name",
        "org/",
        "org/..",
        "../etc",
        "has space/x",
        "org/model?x=1",
        "org/model#frag",
        "org/model\n",  # '$' matches before a trailing newline
        "org/model\r\n",
    ],
)
def test_invalid_model_ids(model: str) -> None:
    with pytest.raises(ConfigurationError, match="not a Hub model id"):
        check_model_id(model)
    with pytest.raises(ConfigurationError):
        model_url(model, "feature-extraction")


@pytest.mark.parametrize("model", ["https://my-ep.example/embed", "http://127.0.0.1:8080"])
def test_url_given_as_model_points_to_endpoint_url(model: str) -> None:
    with pytest.raises(ConfigurationError, match="endpoint_url="):
        check_model_id(model)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://router.huggingface.co/v1/x", "https://router.huggingface.co/v1/x"),
        ("http://user:pw@127.0.0.1:8080/embed", "http://127.0.0.1:8080/embed"),
        ("http://tok@h/p", "http://h/p"),
        ("https://h/p?api_key=s3cr3t&x=1", "https://h/p?api_key=***&x=***"),
        ("https://h/p?flag", "https://h/p?flag"),
        ("https://h/p#token=abc", "https://h/p"),
        ("https://u:p@h:9/a/b?t=1#f", "https://h:9/a/b?t=***"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_of_unparseable_url() -> None:
    assert redact_url("http://[::1") == "<invalid URL>"


@pytest.mark.parametrize("path", ["/custom/deploy/", "/", "/a/b/embed"])
def test_endpoint_url_is_sent_to_verbatim(server: Any, drive: Any, path: str) -> None:
    server.script(path, CannedResponse(200, {"ok": path}))
    url = f"{server.url}{path}?api-version=1"
    assert drive().request(Request(url, json={"inputs": "a"})) == {"ok": path}
    assert server.counters.total(path, 200) == 1
