"""The blocking driver: thread safety, the pool, closing, streams left early, running loops."""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hfrag.server.faults import FaultConfig
from hfrag.server.testing import CannedResponse
from hfrag.transport import Request, SyncTransport
from tests.sockets import open_connections
from tests.transport.conftest import fast_config

EMBED = "hfrag/hash-embed"


def _expected(server: Any, text: str) -> list[float]:
    return [float(x) for x in server.config.model(EMBED).backend.embed([text])[0]]


def _embed(server: Any, text: str) -> Request:
    return Request(server.url + "/embed", json={"inputs": [text]})


def test_threads_share_one_transport_within_its_pool(server: Any) -> None:
    server.set_faults(FaultConfig(latency=0.005), route="/embed")
    texts = [f"threaded text {i}" for i in range(96)]
    with SyncTransport(fast_config(max_connections=4)) as transport:
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda t: transport.request(_embed(server, t)), texts))
        assert 1 <= open_connections(server.port) <= 4
    for text, result in zip(texts, results, strict=True):
        assert result[0] == pytest.approx(_expected(server, text), rel=1e-5)
    assert server.counters.max_in_flight <= 4
    assert open_connections(server.port) == 0  # the with block closed the pool


def test_connection_is_reused_and_close_releases_it(server: Any) -> None:
    transport = SyncTransport(fast_config())
    for text in ("a", "b", "c"):
        transport.request(_embed(server, text))
    assert open_connections(server.port) == 1
    transport.close()
    assert open_connections(server.port) == 0
    transport.close()  # closing twice is harmless
    assert transport.request(_embed(server, "d"))[0] == pytest.approx(_expected(server, "d"))
    transport.close()
    assert open_connections(server.port) == 0


def test_leaving_a_stream_early_closes_it(server: Any) -> None:
    lines = [f'data: {{"n": {i}}}\n' for i in range(50)] + ["data: [DONE]", ""]
    server.script("/sse", CannedResponse(200, sse=lines))
    with SyncTransport(fast_config()) as transport:
        stream = transport.stream(Request(server.url + "/sse", stream=True))
        assert next(stream) == {"n": 0}
        stream.close()  # type: ignore[attr-defined]
        assert open_connections(server.port) <= 1
        server.script("/sse", CannedResponse(200, sse=['data: {"n": 7}', ""]))
        assert list(transport.stream(Request(server.url + "/sse", stream=True))) == [{"n": 7}]


def test_abandoned_stream_is_closed_when_collected(server: Any) -> None:
    lines = [f'data: {{"n": {i}}}\n' for i in range(50)]
    server.script("/sse", CannedResponse(200, sse=lines))
    with SyncTransport(fast_config()) as transport:
        stream = transport.stream(Request(server.url + "/sse", stream=True))
        assert next(stream) == {"n": 0}
        del stream
        gc.collect()
        assert open_connections(server.port) <= 1
        assert transport.request(_embed(server, "x"))[0] == pytest.approx(_expected(server, "x"))


def test_stream_sends_nothing_until_iterated(server: Any) -> None:
    with SyncTransport(fast_config()) as transport:
        stream = transport.stream(Request(server.url + "/sse", stream=True))
        assert server.counters.total() == 0
        server.script("/sse", CannedResponse(200, sse=["data: {}", ""]))
        assert list(stream) == [{}]
        assert len(server.counters.headers) == 1  # one request, made when iterated


async def test_sync_request_inside_a_running_loop(server: Any) -> None:
    asyncio.get_running_loop()
    with SyncTransport(fast_config()) as transport:
        assert transport.request(_embed(server, "in a loop"))[0] == pytest.approx(
            _expected(server, "in a loop")
        )
        server.script("/sse", CannedResponse(200, sse=["data: {}", "", "data: [DONE]", ""]))
        assert list(transport.stream(Request(server.url + "/sse", stream=True))) == [{}]
