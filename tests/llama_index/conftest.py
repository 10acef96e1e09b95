"""Fixtures of the adapter tests (shared with the other framework's): see ``tests.adapters``;
the LLM tests add a server that serves the README's chat model ids, in three layouts."""

from __future__ import annotations

from typing import Any

import pytest

from hfrag.server.testing import ServerHandle
from tests.adapters import module_server, rerank_module_server, rerank_srv, srv, target
from tests.llm import LLAMA, llm_server

__all__ = [
    "gsrv",
    "layout",
    "llm_kwargs",
    "llm_server",
    "module_server",
    "rerank_module_server",
    "rerank_srv",
    "srv",
    "target",
]


@pytest.fixture
def gsrv(llm_server: ServerHandle) -> ServerHandle:
    """The LLM server with fresh counters, scripts and faults."""
    llm_server.reset()
    return llm_server


@pytest.fixture(params=["router", "tgi", "chat"])
def layout(request: pytest.FixtureRequest) -> str:
    """The router (model id), a TGI endpoint, and an OpenAI-compatible chat endpoint."""
    return str(request.param)


def llm_kwargs(layout: str, url: str) -> dict[str, Any]:
    """Adapter arguments that aim at ``layout`` of the server at ``url``."""
    if layout == "router":
        return {"model": LLAMA, "router_url": url}
    if layout == "tgi":
        return {"endpoint_url": url}
    return {"endpoint_url": url + "/v1"}
