"""URL rules of the new wire forms: OpenAI embeddings URLs, provider routes, the Hub base."""

from __future__ import annotations

import pytest

from hfrag.errors import ConfigurationError
from hfrag.transport.urls import (
    endpoint_route,
    hub_base,
    hub_mapping_url,
    is_openai_url,
    openai_embeddings_url,
    provider_url,
)

B = "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("given", "url", "openai"),
    [
        (B, f"{B}/v1/embeddings", False),
        (f"{B}/", f"{B}/v1/embeddings", False),
        (f"{B}/embed", f"{B}/v1/embeddings", False),
        (f"{B}/v1", f"{B}/v1/embeddings", True),
        (f"{B}/v1/", f"{B}/v1/embeddings", True),
        (f"{B}/v1/embeddings", f"{B}/v1/embeddings", True),
        (f"{B}/embeddings", f"{B}/embeddings", True),
        (f"{B}/prefix/v1", f"{B}/prefix/v1/embeddings", True),
        (
            "https://api.example.com/v1/openai/embeddings",
            "https://api.example.com/v1/openai/embeddings",
            True,
        ),
        (f"{B}/v1?key=1", f"{B}/v1/embeddings?key=1", True),
    ],
)
def test_openai_embeddings_url(given, url, openai):
    assert openai_embeddings_url(given) == url
    assert is_openai_url(given) is openai


@pytest.mark.parametrize(
    "given", [f"{B}/v1", f"{B}/v1/embeddings", f"{B}/embeddings", f"{B}/v1/models"]
)
def test_info_hangs_off_the_base_of_an_openai_url(given):
    assert endpoint_route(given, "/info") == f"{B}/info"


def test_provider_url_and_router_override(monkeypatch):
    monkeypatch.delenv("HFRAG_ROUTER_URL", raising=False)
    assert provider_url("together", "/v1/embeddings") == (
        "https://router.huggingface.co/together/v1/embeddings"
    )
    assert provider_url("deepinfra", "/v1/openai/embeddings", B + "/") == (
        f"{B}/deepinfra/v1/openai/embeddings"
    )


def test_hub_base_argument_then_hf_endpoint_then_huggingface_co(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hub_base() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.org/")
    assert hub_base() == "https://hub.example.org"
    assert hub_base(B) == B
    assert hub_mapping_url("org/name", B) == (
        f"{B}/api/models/org/name?expand[]=inferenceProviderMapping"
    )
    with pytest.raises(ConfigurationError, match="hub_url"):
        hub_base("huggingface.co")
    with pytest.raises(ConfigurationError):
        hub_mapping_url("../etc", B)
