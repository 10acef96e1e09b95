"""The LangChain adapter takes the wire-form fields: providers, protocol, encoding."""

from __future__ import annotations

import numpy as np
import pytest

from hfrag.errors import ConfigurationError
from hfrag.langchain import HuggingFaceInferenceEmbeddings
from hfrag.server.testing import ServerHandle
from tests.adapters import EMBED_MODEL, expected

TEXTS = ["the tower is in paris", "bananas are yellow"]


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_openai_endpoint_and_provider(srv: ServerHandle, encoding: str) -> None:
    emb = HuggingFaceInferenceEmbeddings(
        endpoint_url=srv.url, protocol="openai", encoding_format=encoding
    )
    np.testing.assert_allclose(emb.embed_documents(TEXTS), expected(srv, TEXTS), atol=1e-6)
    assert srv.counters.bodies[-1]["encoding_format"] == encoding
    routed = HuggingFaceInferenceEmbeddings(
        model=EMBED_MODEL, router_url=srv.url, hub_url=srv.url, provider="scaleway"
    )
    np.testing.assert_allclose(routed.embed_query(TEXTS[0]), expected(srv, TEXTS[:1])[0], atol=1e-6)
    assert srv.counters.bodies[-1]["model"] == "hash-embed"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": EMBED_MODEL, "provider": "togther"},
        {"endpoint_url": "http://127.0.0.1:1/v1", "query_prompt_name": "query"},
        {"endpoint_url": "http://127.0.0.1:1", "protocol": "grpc"},
        {"endpoint_url": "http://127.0.0.1:1", "encoding_format": "hex"},
    ],
)
def test_bad_wire_settings_fail_at_construction(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        HuggingFaceInferenceEmbeddings(**kwargs)
