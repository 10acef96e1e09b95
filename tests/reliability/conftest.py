"""A raw server per test (see ``rawserver``), and a helper to call either driver or client mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.rawserver import RawServer


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    with RawServer() as srv:
        yield srv
