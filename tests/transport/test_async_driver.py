"""The async driver from any event loop: asyncio.run twice, running loops, concurrency, cancel."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from hfrag.server.faults import FaultConfig
from hfrag.server.testing import CannedResponse
from hfrag.transport import AsyncTransport, Request, SyncTransport, run_sync
from tests.sockets import open_connections
from tests.transport.conftest import eventually, fast_config

EMBED = "hfrag/hash-embed"


def _expected(server: Any, text: str) -> list[float]:
    return [float(x) for x in server.config.model(EMBED).backend.embed([text])[0]]


def _embed(server: Any, text: str) -> Request:
    return Request(server.url + "/embed", json={"inputs": [text]})


async def _until(condition: Any, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return bool(condition())


def test_same_transport_in_two_asyncio_runs(server: Any) -> None:
    transport = AsyncTransport(fast_config())
    try:
        first = asyncio.run(transport.request(_embed(server, "one")))
        second = asyncio.run(transport.request(_embed(server, "two")))
        assert first[0] == pytest.approx(_expected(server, "one"), rel=1e-5)
        assert second[0] == pytest.approx(_expected(server, "two"), rel=1e-5)
        # the pooled connection outlived the first loop and was reused by the second
        assert open_connections(server.port) == 1

        server.script("/sse", CannedResponse(200, sse=["data: {}", "", "data: [DONE]", ""]))

        async def events() -> list[Any]:
            return [e async for e in transport.stream(Request(server.url + "/sse", stream=True))]

        assert asyncio.run(events()) == [{}]
    finally:
        transport.close()  # the blocking close, from sync code
    assert eventually(lambda: open_connections(server.port) == 0)


async def test_blocking_calls_inside_a_running_loop(server: Any) -> None:
    asyncio.get_running_loop()  # this test body runs inside a loop, as in Jupyter
    sync = SyncTransport(fast_config())
    transport = AsyncTransport(fast_config())
    try:
        assert sync.request(_embed(server, "a"))[0] == pytest.approx(_expected(server, "a"))
        assert run_sync(transport.request(_embed(server, "b")))[0] == pytest.approx(
            _expected(server, "b")
        )
        assert (await transport.request(_embed(server, "c")))[0] == pytest.approx(
            _expected(server, "c")
        )
    finally:
        sync.close()
        transport.close()  # blocking close inside a running loop must not raise either
    assert eventually(lambda: open_connections(server.port) == 0)


async def test_200_concurrent_requests_stay_within_the_pool(server: Any) -> None:
    server.set_faults(FaultConfig(latency=0.01), route="/embed")
    transport = AsyncTransport(fast_config(max_connections=8))
    texts = [f"text number {i}" for i in range(200)]
    results = await asyncio.gather(*(transport.request(_embed(server, t)) for t in texts))
    for text, result in zip(texts, results, strict=True):
        assert result[0] == pytest.approx(_expected(server, text), rel=1e-5)
    assert server.counters.total("/embed", 200) == 200
    assert 1 < server.counters.max_in_flight <= 8
    assert 1 <= open_connections(server.port) <= 8
    await transport.aclose()
    assert await _until(lambda: open_connections(server.port) == 0, timeout=1.0)


async def test_concurrency_from_two_threads_with_their_own_loops(server: Any) -> None:
    transport = AsyncTransport(fast_config(max_connections=4))

    async def batch(prefix: str) -> list[Any]:
        return await asyncio.gather(
            *(transport.request(_embed(server, f"{prefix}{i}")) for i in range(20))
        )

    try:
        here, there = await asyncio.gather(batch("a"), asyncio.to_thread(asyncio.run, batch("b")))
    finally:
        await transport.aclose()
    assert here[3][0] == pytest.approx(_expected(server, "a3"), rel=1e-5)
    assert there[7][0] == pytest.approx(_expected(server, "b7"), rel=1e-5)
    assert server.counters.max_in_flight <= 4


async def test_cancelling_a_request_frees_its_connection(server: Any) -> None:
    server.set_faults(FaultConfig(latency=3.0), route="/embed")
    transport = AsyncTransport(fast_config())
    try:
        task = asyncio.create_task(transport.request(_embed(server, "slow")))
        assert await _until(lambda: server.counters.in_flight == 1)
        assert open_connections(server.port) == 1
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - start < 0.5
        # the half-answered connection is closed, not returned to the pool
        assert await _until(lambda: open_connections(server.port) == 0, timeout=1.0)
        assert server.counters.total("/embed", 200) == 0  # nothing answered so far
        server.set_faults(None, route="/embed")
        result = await transport.request(_embed(server, "after"))
        assert result[0] == pytest.approx(_expected(server, "after"), rel=1e-5)
    finally:
        await transport.aclose()


async def test_wait_for_timeout_cancels_the_request(server: Any) -> None:
    server.set_faults(FaultConfig(p_stall=1.0, stall_seconds=3.0), route="/embed")
    transport = AsyncTransport(fast_config())
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(transport.request(_embed(server, "x")), timeout=0.2)
        assert await _until(lambda: open_connections(server.port) == 0, timeout=1.0)
    finally:
        await transport.aclose()


async def test_leaving_a_stream_early_closes_it(server: Any) -> None:
    lines = [f'data: {{"n": {i}}}\n' for i in range(50)] + ["data: [DONE]", ""]
    server.script("/sse", CannedResponse(200, sse=lines))
    server.script("/sse", CannedResponse(200, sse=['data: {"n": 0}', "", "data: [DONE]", ""]))
    transport = AsyncTransport(fast_config())
    try:
        stream = transport.stream(Request(server.url + "/sse", stream=True))
        async for event in stream:
            assert event == {"n": 0}
            break
        await stream.aclose()  # type: ignore[attr-defined]
        assert await _until(lambda: open_connections(server.port) <= 1, timeout=1.0)
        again = [e async for e in transport.stream(Request(server.url + "/sse", stream=True))]
        assert again == [{"n": 0}]
    finally:
        await transport.aclose()
    assert eventually(lambda: open_connections(server.port) == 0)


async def test_async_context_manager_and_reuse_after_close(server: Any) -> None:
    async with AsyncTransport(fast_config()) as transport:
        await transport.request(_embed(server, "a"))
        assert open_connections(server.port) == 1
    assert await _until(lambda: open_connections(server.port) == 0, timeout=1.0)
    result = await transport.request(_embed(server, "b"))  # reopens its pool
    assert result[0] == pytest.approx(_expected(server, "b"), rel=1e-5)
    await transport.aclose()
    await transport.aclose()  # closing twice is harmless
    assert eventually(lambda: open_connections(server.port) == 0)
