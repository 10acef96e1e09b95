"""Load the local server with a known workload and compare wall time with its latency model.

Each scenario sends N requests of B texts each from C concurrent clients to ``/embed`` on a
server configured with ``latency`` L, ``latency_per_item`` p and ``max_concurrency`` K. Every
request then takes s = L + B * p of service time, at most P = min(C, K) are served at once, and
the clients keep the server busy, so the predicted wall time is::

    ceil(N / P) * s

The script prints predicted against measured time and their ratio, and exits with status 1 if
any ratio is off by more than 10%. The server runs in a thread of this process (as in the
tests) with 64-dim vectors; other CPU load on the machine shows up as a higher ratio. Run it
with ``python benchmarks/bench_server.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from dataclasses import dataclass

import aiohttp

from hfrag.server import FaultConfig, ServerConfig
from hfrag.server.testing import ServerHandle, serve_in_thread

TOLERANCE = 0.10


@dataclass(frozen=True)
class Scenario:
    """One workload and the server behaviour it runs against."""

    name: str
    requests: int
    batch: int
    clients: int
    latency: float
    per_item: float
    cap: int | None = None

    @property
    def service(self) -> float:
        """Seconds one request occupies the server."""
        return self.latency + self.batch * self.per_item

    @property
    def parallel(self) -> int:
        """Requests in service at once."""
        return min(self.clients, self.cap) if self.cap else self.clients

    @property
    def predicted(self) -> float:
        """Wall time the latency model predicts."""
        return math.ceil(self.requests / self.parallel) * self.service


SCENARIOS = [
    Scenario("one client", requests=30, batch=4, clients=1, latency=0.06, per_item=0.005),
    Scenario("16 clients, no cap", requests=192, batch=8, clients=16, latency=0.1, per_item=0.0025),
    Scenario("per-item bound", requests=64, batch=32, clients=8, latency=0.01, per_item=0.005),
    Scenario(
        "32 clients, cap 8", requests=192, batch=16, clients=32, latency=0.04, per_item=0.004, cap=8
    ),
    Scenario(
        "64 clients, cap 16",
        requests=320,
        batch=4,
        clients=64,
        latency=0.1,
        per_item=0.0025,
        cap=16,
    ),
]


async def run(srv: ServerHandle, sc: Scenario) -> float:
    """Send the scenario's requests; return the measured wall time."""
    srv.reset()
    srv.set_faults(
        FaultConfig(latency=sc.latency, latency_per_item=sc.per_item, max_concurrency=sc.cap)
    )
    # aiohttp's client costs about a third of httpx's CPU per request; the client shares the
    # process (and the GIL) with the server, so a cheap client keeps the measurement honest.
    connector = aiohttp.TCPConnector(limit=sc.clients)
    async with aiohttp.ClientSession(srv.url, connector=connector) as client:
        # Open every connection first so the timed part measures service, not TCP set-up.
        async def touch() -> None:
            async with client.get("/health") as r:
                await r.read()

        await asyncio.gather(*(touch() for _ in range(sc.clients)))
        base, extra = divmod(sc.requests, sc.clients)
        shares = [base + (i < extra) for i in range(sc.clients)]

        async def worker(i: int, count: int) -> None:
            for j in range(count):
                texts = [f"client {i} request {j} text {k}" for k in range(sc.batch)]
                async with client.post("/embed", json={"inputs": texts}) as r:
                    await r.read()
                    r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker(i, n) for i, n in enumerate(shares)))
        elapsed = time.perf_counter() - start
    if srv.counters.total("/embed", 200) != sc.requests:
        raise RuntimeError(f"{sc.name}: not every request succeeded: {srv.counters.requests}")
    if sc.cap and srv.counters.max_in_flight > sc.cap:
        raise RuntimeError(f"{sc.name}: {srv.counters.max_in_flight} in flight > cap {sc.cap}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, print the table, return 0 if all are within tolerance."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="allowed |ratio - 1|")
    args = parser.parse_args(argv)

    header = (
        f"{'scenario':<20} {'N':>4} {'B':>3} {'C':>3} {'cap':>4} {'L s':>6} {'p s':>7} "
        f"{'predicted s':>11} {'measured s':>10} {'ratio':>6} {'peak':>5}  ok"
    )
    print(header)
    print("-" * len(header))
    failed = False
    # 64-dim vectors keep JSON encoding (which the latency model does not describe) cheap.
    config = ServerConfig.default(max_client_batch_size=64, embed_dim=64)
    with serve_in_thread(config) as srv:
        for sc in SCENARIOS:
            measured = asyncio.run(run(srv, sc))
            ratio = measured / sc.predicted
            ok = abs(ratio - 1.0) <= args.tolerance
            failed |= not ok
            cap = str(sc.cap) if sc.cap else "-"
            print(
                f"{sc.name:<20} {sc.requests:>4} {sc.batch:>3} {sc.clients:>3} {cap:>4} "
                f"{sc.latency:>6.3f} {sc.per_item:>7.4f} {sc.predicted:>11.3f} {measured:>10.3f} "
                f"{ratio:>6.3f} {srv.counters.max_in_flight:>5}  {'yes' if ok else 'NO'}",
                flush=True,
            )
    print(f"\npredicted = ceil(N / min(C, cap)) * (L + B * p); tolerance {args.tolerance:.0%}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
