"""Model code runs off the event loop: batching, bounded queues, /health while a model works.

The backends here are test doubles of a slow model: a ``HashingBackend`` whose ``embed`` blocks
until the test releases it, so "inference on the event loop" would hang ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from hfrag.server import HashingBackend, ModelSpec, ServerConfig
from hfrag.server.backends import GenerationParams
from hfrag.server.runtime import ClientGone, ModelRuntime


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


# -- streams from the model thread ----------------------------------------------------------------


class Counting:
    """An endless producer that counts the items it made and notes when it was closed."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.made = 0
        self.fail_at = fail_at
        self.closed = threading.Event()
        self.threads: set[str] = set()

    def __call__(self) -> Iterator[int]:
        try:
            while True:
                self.threads.add(threading.current_thread().name)
                if self.made == self.fail_at:
                    raise ValueError("bad token")
                self.made += 1
                yield self.made
        finally:
            self.closed.set()


def test_a_stream_never_runs_more_than_its_buffer_ahead_of_its_reader():
    async def main() -> list[int]:
        runtime = ModelRuntime()
        produce = Counting()
        got: list[int] = []
        try:
            steps = runtime.stream("generate", produce, buffer=3)
            async with contextlib.aclosing(steps):
                async for item in steps:
                    got.append(item)
                    # the thread runs ahead until the buffer is full, then waits for the reader
                    await asyncio.to_thread(wait_until, lambda: produce.made >= len(got) + 4)
                    assert produce.made <= len(got) + 4
                    if len(got) == 20:
                        break
            assert await asyncio.to_thread(produce.closed.wait, 10)
            assert produce.made <= 24
            assert produce.threads == {"hfrag-generate_0"}  # never the event loop's thread
        finally:
            runtime.close()
        return got

    assert asyncio.run(main()) == list(range(1, 21))


def test_a_stream_raises_the_producers_error_and_a_gone_reader_stops_it():
    async def main() -> None:
        runtime = ModelRuntime()
        got: list[int] = []
        produce = Counting()
        gone = threading.Event()

        async def failing() -> None:
            async for item in runtime.stream("generate", Counting(fail_at=2)):
                got.append(item)

        async def left() -> None:
            alive = lambda: not gone.is_set()  # noqa: E731
            async for _ in runtime.stream("generate", produce, buffer=1, alive=alive, poll=0.01):
                gone.set()  # the client leaves
                await asyncio.to_thread(wait_until, lambda: produce.made >= 2)

        try:
            with pytest.raises(ValueError, match="bad token"):
                await failing()
            assert got == [1, 2]
            with pytest.raises(ClientGone):
                await left()
            assert await asyncio.to_thread(produce.closed.wait, 10)
            assert produce.made <= 3  # one read, one in the buffer, one waiting for room
            await asyncio.to_thread(wait_until, lambda: runtime.waiting("generate") == 0)
        finally:
            runtime.close()

    asyncio.run(main())


def test_streams_leave_no_thread_or_task_behind():
    before = {t.name for t in threading.enumerate()}

    async def main() -> None:
        runtime = ModelRuntime()
        for _ in range(20):
            async for item in runtime.stream("generate", Counting()):
                if item == 3:
                    break
        await asyncio.to_thread(wait_until, lambda: runtime.waiting("generate") == 0)
        runtime.close()
        assert len(asyncio.all_tasks()) == 1  # this one

    asyncio.run(main())
    wait_until(lambda: {t.name for t in threading.enumerate()} <= before)


def test_a_stream_queued_when_the_runtime_closes_fails_instead_of_hanging():
    async def main() -> None:
        runtime = ModelRuntime()
        release = threading.Event()

        def held() -> Iterator[int]:
            yield 1
            release.wait(10)

        first = runtime.stream("generate", held)
        assert await first.__anext__() == 1
        queued = runtime.stream("generate", Counting())
        pending = asyncio.ensure_future(queued.__anext__())
        await asyncio.to_thread(wait_until, lambda: runtime.waiting("generate") == 2)
        runtime.close()
        release.set()
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(pending, 10)
        await first.aclose()

    asyncio.run(main())
