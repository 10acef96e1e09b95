"""A raw server per test (see ``rawserver``), and a helper to call either driver or client mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hfrag.server.testing import ServerHandle, serve_in_thread
from tests.llm import llm_config
from tests.reliability.rawserver import RawServer


@pytest.fixture(scope="module")
def _module_raw_server() -> Iterator[RawServer]:
    with RawServer() as srv:
        yield srv


@pytest.fixture
def raw_server(_module_raw_server: RawServer) -> RawServer:
    """The module's raw server, with no routes, no statistics and no answer left running."""
    _module_raw_server.reset()
    return _module_raw_server


@pytest.fixture(scope="module")
def _module_local_server() -> Iterator[ServerHandle]:
    with serve_in_thread() as srv:
        yield srv


@pytest.fixture
def local(_module_local_server: ServerHandle) -> ServerHandle:
    """hfrag's local server, one per module, with fresh counters for each test."""
    _module_local_server.reset()
    return _module_local_server


@pytest.fixture(scope="module")
def _module_every_server() -> Iterator[ServerHandle]:
    with serve_in_thread(llm_config()) as srv:
        yield srv


@pytest.fixture
def server(_module_every_server: ServerHandle) -> ServerHandle:
    """A local server for every public class (embedding, re-ranking and LLM models on the router
    layout), one per module, with fresh counters, scripts and faults for each test."""
    _module_every_server.reset()
    return _module_every_server
