"""Model code runs off the event loop: batching, bounded queues, /health while a model works.

The backends here are test doubles of a slow model: a ``HashingBackend`` whose ``embed`` blocks
until the test releases it, so "inference on the event loop" would hang ``/health``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from hfrag.server import HashingBackend, ModelSpec, ServerConfig
from hfrag.server.backends import GenerationParams


class BlockingBackend(HashingBackend):
    """Hashing vectors, but ``embed`` waits for ``release`` and records each batch it got."""

    def __init__(self) -> None:
        super().__init__(dim=16)
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        self.calls.append(len(texts))
        self.started.set()
        assert self.release.wait(30), "test never released the backend"
        return super().embed(texts, normalize)

    def generate_tokens(self, prompt: str, params: GenerationParams):  # type: ignore[no-untyped-def]
        self.started.set()
        assert self.release.wait(30), "test never released the backend"
        yield from super().generate_tokens(prompt, params)


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (requests reaching the server's queue) for up to 10 s."""
    pause = threading.Event()
    for _ in range(1000):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError("condition not reached")


def config(backend: HashingBackend, **kwargs: object) -> ServerConfig:
    return ServerConfig(
        models=[
            ModelSpec("t/embed", "embed", backend),
            ModelSpec("t/gen", "generate", backend, max_input_length=1000),
        ],
        **kwargs,  # type: ignore[arg-type]
    )


def test_health_and_info_answer_while_a_model_is_busy(make_server):
    backend = BlockingBackend()
    srv = make_server(config(backend))
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(httpx.post, f"{srv.url}/embed", json={"inputs": ["a"]}, timeout=30)
        assert backend.started.wait(10)
        try:
            assert httpx.get(f"{srv.url}/health", timeout=5).status_code == 200
            assert httpx.get(f"{srv.url}/info", timeout=5).json()["model_id"] == "t/embed"
        finally:
            backend.release.set()
        assert busy.result().status_code == 200


def test_generation_does_not_hold_up_embeddings(make_server):
    backend = BlockingBackend()
    gen_spec = ModelSpec("t/gen", "generate", backend, max_input_length=1000)
    embed_spec = ModelSpec("t/embed", "embed", HashingBackend(16))
    srv = make_server(ServerConfig(models=[embed_spec, gen_spec]))
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(httpx.post, f"{srv.url}/generate", json={"inputs": "Q: x?"}, timeout=30)
        assert backend.started.wait(10)
        try:
            r = httpx.post(f"{srv.url}/embed", json={"inputs": ["a"]}, timeout=5)
            assert r.status_code == 200
        finally:
            backend.release.set()
        assert busy.result().status_code == 200


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(make_server):
    backend = BlockingBackend()
    srv = make_server(config(backend))
    reference = HashingBackend(dim=16)
    n = 12
    with ThreadPoolExecutor(n + 1) as pool:
        first = pool.submit(httpx.post, f"{srv.url}/embed", json={"inputs": ["first"]}, timeout=30)
        assert backend.started.wait(10)  # the worker is busy: the next requests queue up
        futures = [
            pool.submit(
                httpx.post, f"{srv.url}/embed", json={"inputs": [f"t{i}", f"u{i}"]}, timeout=30
            )
            for i in range(n)
        ]
        wait_until(lambda: srv.models.waiting("embed") == n + 1)
        backend.release.set()
        assert first.result().status_code == 200
        for i, f in enumerate(futures):
            r = f.result()
            assert r.status_code == 200
            got = np.asarray(r.json(), dtype=np.float32)
            np.testing.assert_allclose(got, reference.embed([f"t{i}", f"u{i}"]), atol=1e-6)
    assert backend.calls[0] == 1
    assert sum(backend.calls) == 1 + 2 * n
    assert len(backend.calls) < 1 + n  # some requests shared a batch
    assert max(srv.models.batches) > 1


def test_a_full_queue_answers_429_overloaded_and_recovers(make_server):
    backend = BlockingBackend()
    srv = make_server(config(backend, max_concurrent_requests=2))
    with ThreadPoolExecutor(4) as pool:
        held = [
            pool.submit(httpx.post, f"{srv.url}/embed", json={"inputs": [f"{i}"]}, timeout=30)
            for i in range(2)
        ]
        assert backend.started.wait(10)
        wait_until(lambda: srv.models.waiting("embed") == 2)
        try:
            r = httpx.post(f"{srv.url}/embed", json={"inputs": ["extra"]}, timeout=5)
            assert r.status_code == 429
            assert r.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
        finally:
            backend.release.set()
        assert [f.result().status_code for f in held] == [200, 200]
    assert httpx.post(f"{srv.url}/embed", json={"inputs": ["again"]}).status_code == 200


def test_info_reports_the_runtime_limits(make_server):
    srv = make_server(config(HashingBackend(16), max_concurrent_requests=7, max_batch_tokens=999))
    info = httpx.get(f"{srv.url}/info").json()
    assert info["max_concurrent_requests"] == 7
    assert info["max_batch_tokens"] == 999


def test_a_failing_model_fails_its_batch_only(make_server):
    class Failing(HashingBackend):
        def embed(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
            if any("boom" in t for t in texts):
                raise RuntimeError("model exploded")
            return super().embed(texts, normalize)

    srv = make_server(config(Failing(16)))
    assert httpx.post(f"{srv.url}/embed", json={"inputs": ["boom"]}).status_code == 500
    assert httpx.post(f"{srv.url}/embed", json={"inputs": ["fine"]}).status_code == 200


@pytest.mark.parametrize(
    "bad", [{"max_concurrent_requests": 0}, {"max_batch_tokens": 0}, {"batch_window": -1}]
)
def test_runtime_settings_are_checked(bad):
    with pytest.raises(ValueError):
        config(HashingBackend(16), **bad)
