"""One replay server for the conformance suite, its queue and log emptied for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.replay import ReplayServer


@pytest.fixture(scope="session")
def _replay_server() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def replay(_replay_server: ReplayServer) -> Iterator[ReplayServer]:
    """The replay server, fresh; a test that leaves a recording unasked for fails."""
    _replay_server.reset()
    yield _replay_server
    assert not _replay_server.pending, f"recordings never asked for: {_replay_server.pending}"
