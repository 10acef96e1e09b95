"""Many concurrent clients against one server: every answer correct, nothing lost."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np

from hfrag.server import FaultConfig, ServerConfig

CLIENTS = 64
FE = "/hf-inference/models/hfrag/hash-embed/pipeline/feature-extraction"


def test_64_threads_without_an_error(server):
    backend = server.config.model("hfrag/hash-embed").backend
    errors: list[str] = []
    barrier = threading.Barrier(CLIENTS)

    def client(i: int) -> None:
        texts = [f"client {i} text {j}" for j in range(4)]
        with httpx.Client(base_url=server.url, timeout=30) as c:
            barrier.wait()
            for path in ("/embed", FE):
                r = c.post(path, json={"inputs": texts})
                if r.status_code != 200:
                    errors.append(f"{path}: {r.status_code} {r.text[:100]}")
                elif not np.array_equal(
                    np.asarray(r.json(), dtype=np.float32), backend.embed(texts)
                ):
                    errors.append(f"{path}: wrong vectors for client {i}")
            r = c.post("/rerank", json={"query": f"client {i}", "texts": texts})
            if r.status_code != 200 or len(r.json()) != 4:
                errors.append(f"/rerank: {r.status_code}")
            r = c.post(
                "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi?"}]}
            )
            if r.status_code != 200:
                errors.append(f"chat: {r.status_code}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert server.counters.total(status=200) == CLIENTS * 4
    assert sum(server.counters.texts_ok.values()) == CLIENTS * 4 * 3


async def test_64_async_clients_under_a_concurrency_cap(server):
    server.set_faults(FaultConfig(latency=0.02, max_concurrency=8))

    async def one(c: httpx.AsyncClient, i: int) -> int:
        r = await c.post("/embed", json={"inputs": [f"async {i}"]})
        return r.status_code

    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as c:
        codes = await asyncio.gather(*(one(c, i) for i in range(CLIENTS)))
    assert codes == [200] * CLIENTS
    assert server.counters.max_in_flight == 8


async def test_open_requests_peak_counts_the_queued_ones(make_server):
    # max_in_flight stops at the server's cap; max_open is what the clients had in flight.
    srv = make_server(ServerConfig(max_concurrent_requests=3))
    srv.set_faults(FaultConfig(latency=0.2, max_concurrency=3))

    async def one(c: httpx.AsyncClient, i: int) -> int:
        r = await c.post("/embed", json={"inputs": [f"open {i}"]})
        return r.status_code

    limits = httpx.Limits(max_connections=10)
    async with httpx.AsyncClient(base_url=srv.url, timeout=30, limits=limits) as c:
        codes = await asyncio.gather(*(one(c, i) for i in range(10)))
        info = (await c.get("/info")).json()
    assert codes == [200] * 10
    assert srv.counters.max_in_flight == 3
    assert srv.counters.max_open == 10
    assert srv.counters.open == 0
    assert info["max_concurrent_requests"] == 3
    srv.reset()
    assert srv.counters.max_open == 0
