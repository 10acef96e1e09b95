"""The LlamaIndex adapter takes the wire-form fields: providers, protocol, encoding."""

from __future__ import annotations

import numpy as np

from hfrag.llama_index import HuggingFaceInferenceEmbedding
from hfrag.server.testing import ServerHandle
from tests.adapters import EMBED_MODEL, expected

TEXTS = ["the tower is in paris", "bananas are yellow"]


def test_openai_endpoint_and_provider(srv: ServerHandle) -> None:
    emb = HuggingFaceInferenceEmbedding(endpoint_url=srv.url + "/v1/embeddings")
    out = emb.get_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(out, expected(srv, TEXTS), atol=1e-6)
    assert srv.counters.bodies[-1]["encoding_format"] == "base64"
    routed = HuggingFaceInferenceEmbedding(
        model=EMBED_MODEL, router_url=srv.url, hub_url=srv.url, provider="deepinfra"
    )
    vector = routed.get_query_embedding(TEXTS[0])
    np.testing.assert_allclose(vector, expected(srv, TEXTS[:1])[0], atol=1e-6)
    assert srv.counters.total("/deepinfra/v1/openai/embeddings", 200) == 1
