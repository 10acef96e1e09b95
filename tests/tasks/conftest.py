"""Fixtures for the task clients: one way to call sync or async, and targets on the local server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from hfrag.tasks import EmbeddingsClient

EMBED_MODEL = "hfrag/hash-embed"


@pytest.fixture(params=["sync", "async"])
def embed(request: pytest.FixtureRequest) -> Callable[..., np.ndarray]:
    """``embed(client, texts, **kw)`` via the sync method or, from a fresh loop, the async one."""

    def call(client: EmbeddingsClient, texts: Sequence[Any], **kw: Any) -> np.ndarray:
        if request.param == "sync":
            return client.embed(texts, **kw)
        return asyncio.run(client.aembed(texts, **kw))

    call.mode = request.param  # type: ignore[attr-defined]
    return call


def target_kwargs(kind: str, url: str) -> dict[str, str]:
    """Client arguments for the router layout (model id) or the TEI layout (endpoint URL)."""
    if kind == "router":
        return {"model": EMBED_MODEL, "router_url": url}
    return {"endpoint_url": url}


@pytest.fixture(params=["router", "endpoint"])
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def expected(server: Any, texts: Sequence[str], model: str = EMBED_MODEL) -> np.ndarray:
    """The vectors the local server's deterministic backend gives these texts."""
    backend = server.config.model(model).backend
    return np.asarray(backend.embed(list(texts)), dtype=np.float32)
