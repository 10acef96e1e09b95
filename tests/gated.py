"""Generator backends that show when the server streams: a gate between tokens, scripted tokens.

``Gated`` wraps any generator backend (the hashing one or the real SmolLM2): it yields the first
token, then holds the next one until the test opens ``release``. A server that streams sends the
first event while the model is held; one that generates the whole answer first only gets past
the gate when it times out, which ``waited_out`` records, so a wrong server fails the test after
``wait`` seconds instead of hanging it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from hfrag.server import HashingBackend
from hfrag.server.backends import GenerationParams

__all__ = ["Gated", "Scripted"]


class Gated:
    """``inner``'s generation, held before token number ``at`` (0-based) until ``release``.

    Attributes:
        release: the gate; set it once the test has seen what it waits for.
        waited_out: the gate opened by its timeout, not by the test.
        produced: tokens handed to the server so far.
        calls: generations started.
        closed: set when a generation ended (exhausted, or closed by the server).
    """

    def __init__(self, inner: Any, *, at: int = 1, wait: float = 20.0) -> None:
        self.inner = inner
        self.at = at
        self.wait = wait
        self.release = threading.Event()
        self.waited_out = False
        self.produced = 0
        self.calls = 0
        self.closed = threading.Event()

    def __getattr__(self, name: str) -> Any:  # tokenize, render_chat, truncate_text, ...
        return getattr(self.inner, name)

    def generate_tokens(self, prompt: str, params: GenerationParams) -> Iterator[str]:
        self.calls += 1
        self.closed.clear()
        try:
            for i, piece in enumerate(self.inner.generate_tokens(prompt, params)):
                if i == self.at and not self.release.wait(self.wait):
                    self.waited_out = True
                self.produced += 1
                yield piece
        finally:
            self.closed.set()


class Scripted(HashingBackend):
    """A hashing backend whose generator yields ``pieces`` (then raises, if ``fail_at``)."""

    def __init__(self, pieces: Iterable[str], *, fail_at: int | None = None) -> None:
        super().__init__(dim=16)
        self.pieces: Sequence[str] | Iterable[str] = pieces
        self.fail_at = fail_at
        self.pulled = 0
        self.closed = threading.Event()

    def generate_tokens(self, prompt: str, params: GenerationParams) -> Iterator[str]:
        self.closed.clear()
        try:
            for i, piece in enumerate(self.pieces):
                if i == self.fail_at:
                    raise RuntimeError("model exploded")
                self.pulled += 1
                yield piece
            if self.fail_at is not None:
                raise RuntimeError("model exploded")
        finally:
            self.closed.set()
