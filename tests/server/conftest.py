"""Fixtures of the server tests: an HTTP client bound to the default server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hfrag.server.testing import ServerHandle


@pytest.fixture
def client(server: ServerHandle) -> Iterator[httpx.Client]:
    """An httpx client for the default server."""
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c
