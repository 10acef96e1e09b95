"""Fixtures shared by every test: a clean credential environment and the local server.

The server fixtures import ``hfrag.server.testing`` lazily, so tests that need no server run
without the ``server`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from hfrag.server import ServerConfig
    from hfrag.server.testing import ServerHandle


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees a real token or the user's Hugging Face cache."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HFRAG_SERVER_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads HF_HOME once, at import: point its token paths here too, so a
    # developer's saved login token is never found by a test.
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hub_constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))


@pytest.fixture
def make_server() -> Iterator[Callable[..., ServerHandle]]:
    """Factory: ``make_server(config=None)`` starts a server; all are stopped at teardown."""
    from hfrag.server.testing import ServerHandle

    started: list[ServerHandle] = []

    def factory(config: ServerConfig | None = None) -> ServerHandle:
        handle = ServerHandle(config).start()
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.stop()


@pytest.fixture
def server(make_server: Callable[..., ServerHandle]) -> ServerHandle:
    """A running server with the default ``ServerConfig()``."""
    return make_server()
