"""Against the real Hugging Face router: run only when HF_TOKEN is set (skipped otherwise).

The token is read when this module is imported, before the autouse fixture hides the ambient
token from every test, and is then passed explicitly.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from hfrag.tasks import EmbeddingsClient

TOKEN = os.environ.get("HF_TOKEN")
MODEL = "sentence-transformers/all-MiniLM-L6-v2"

pytestmark = [
    pytest.mark.router,
    pytest.mark.allow_hosts(["127.0.0.1", "router.huggingface.co"]),
    pytest.mark.skipif(not TOKEN, reason="needs HF_TOKEN and the Hugging Face router"),
]


def test_router_embeds_in_order_with_the_model_dimension() -> None:
    client = EmbeddingsClient(model=MODEL, token=TOKEN, wait_for_model=True)
    texts = ["The Eiffel Tower is in Paris.", "Bananas are yellow.", "Paris is in France."]
    vectors = client.embed(texts)
    assert vectors.shape == (3, 384)
    query = client.embed_query("Where is the Eiffel Tower?")
    assert int(np.argmax(vectors @ query)) == 0


async def test_router_async_matches_sync() -> None:
    client = EmbeddingsClient(model=MODEL, token=TOKEN)
    texts = [f"sentence number {i}" for i in range(40)]  # two batches
    sync = client.embed(texts)
    async_ = await client.aembed(texts)
    np.testing.assert_allclose(sync, async_, atol=1e-5)
