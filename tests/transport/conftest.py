"""Transport test fixtures: both drivers behind one call, and an isolated credential home."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest

from hfrag.transport import AsyncTransport, Request, RetryPolicy, SyncTransport, TransportConfig

TOKEN_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE")

#: Retries that cost milliseconds, so a test can afford several.
FAST_RETRY = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.02)


def fast_config(**kwargs: Any) -> TransportConfig:
    """A ``TransportConfig`` with quick retries and a short timeout unless told otherwise."""
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("timeout", 10.0)
    return TransportConfig(**kwargs)


def eventually(condition: Callable[[], bool], timeout: float = 1.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (a closed socket goes away on
    the owning loop's next turn, not at once)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


class Driver:
    """One transport, sync or async, called the same way from a sync test.

    The async driver runs each call in a fresh ``asyncio.run`` loop, which is also how a script
    that calls ``asyncio.run`` several times uses it.
    """

    def __init__(self, kind: str, config: TransportConfig) -> None:
        self.kind = kind
        self.config = config
        self.transport: SyncTransport | AsyncTransport = (
            SyncTransport(config) if kind == "sync" else AsyncTransport(config)
        )

    def request(self, request: Request) -> Any:
        if isinstance(self.transport, SyncTransport):
            return self.transport.request(request)
        return asyncio.run(self.transport.request(request))

    def stream(self, request: Request, into: list[Any] | None = None) -> list[Any]:
        """Every payload of the stream; ``into`` keeps those that came before an error."""
        out: list[Any] = [] if into is None else into
        transport = self.transport
        if isinstance(transport, SyncTransport):
            out.extend(transport.stream(request))
            return out

        async def consume() -> None:
            async for payload in transport.stream(request):
                out.append(payload)

        asyncio.run(consume())
        return out

    def close(self) -> None:
        self.transport.close()


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``drive(config=None, **config_kwargs) -> Driver``; closes what it made at teardown."""
    made: list[Driver] = []

    def make(config: TransportConfig | None = None, **kwargs: Any) -> Driver:
        driver = Driver(request.param, config or fast_config(**kwargs))
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()


@pytest.fixture
def saved_token_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where huggingface_hub looks for the token saved by ``hf auth login``, under a tmp dir.

    huggingface_hub reads ``$HF_HOME`` once, at import, so the in-process tests point its
    constants at a fresh directory; ``test_saved_token_from_hf_home`` checks ``$HF_HOME`` itself
    in a child process.
    """
    for name in TOKEN_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "hf_home"
    home.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens")
    )
    return home / "token"
