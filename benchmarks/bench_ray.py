"""Ray Data workers against one endpoint of fixed capacity: throughput, and the limit it allows.

Starts ``hfrag serve`` in a subprocess with a latency-bound model (each request takes
``--latency`` seconds plus ``--per-item`` per text, ``--capacity`` requests at once, batches of
at most 32 texts) and embeds the same corpus:

- with hfrag's single-process client (``EmbeddingsClient.embed``, ``max_concurrency`` = the
  capacity), the anchor;
- with :func:`hfrag.ray.embed_dataset` on a local Ray, 1, 2 and 4 workers, ``max_in_flight`` =
  the capacity (so each worker gets capacity // workers requests in flight).

The limit is what the capacity allows any client at all: every text in batches of 32, at most
``capacity`` batches at once, each taking its service time. A Ray run's time includes starting
its actors; the start-up of the same number of actors on a one-batch dataset is measured in the
same run and shown, with the time net of it.

Usage: ``python benchmarks/bench_ray.py [--texts 10000] [--latency 0.1] [--capacity 8]``
(``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np

from hfrag.tasks import EmbeddingOptions, EmbeddingsClient

BATCH = 32
WORKERS = (1, 2, 4)


@contextlib.contextmanager
def local_server(*args: str) -> Iterator[str]:
    """``hfrag serve`` on a free port in a subprocess; yields its URL."""
    cmd = [sys.executable, "-m", "hfrag", "serve", "--port", "0", "--max-batch-size", str(BATCH)]
    proc = subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = next(word for word in line.split() if word.startswith("http://"))
        yield url.rstrip("/")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    rows = fn()
    return time.perf_counter() - start, rows


def ray_runner(url: str, texts: list[str], workers: int, capacity: int) -> Callable[[], int]:
    import ray.data

    from hfrag.ray import embed_dataset

    def run() -> int:
        ds = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=8)
        out = embed_dataset(
            ds,
            endpoint_url=url,
            workers=workers,
            max_in_flight=capacity,
            num_cpus=0.25,
            max_retry_wait=0.2,
        ).materialize()
        dims = {len(row["embedding"]) for row in out.take(3)}
        assert dims == {384}, dims
        return out.count()

    return run


def run(args: argparse.Namespace) -> None:
    import ray

    texts = [
        f"passage {i}: the {i % 17} quick foxes jump over {i % 5} lazy dogs"
        for i in range(args.texts)
    ]
    per_batch = args.latency + BATCH * args.per_item
    limit = math.ceil(math.ceil(args.texts / BATCH) / args.capacity) * per_batch
    load = [
        "--latency", str(args.latency),
        "--latency-per-item", str(args.per_item),
        "--max-concurrency", str(args.capacity),
    ]  # fmt: skip
    print(
        f"{args.texts} texts, batches of {BATCH}, server: {args.latency * 1000:.0f} ms + "
        f"{args.per_item * 1000:.2f} ms/text per request, {args.capacity} requests at once; "
        f"limit {limit:.2f} s"
    )
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.DataContext.get_current().print_on_execution_start = False
    results: list[tuple[str, int, float, float | None]] = []
    try:
        with local_server(*load) as url:
            options = EmbeddingOptions(batch_size=BATCH, max_concurrency=args.capacity)
            client = EmbeddingsClient(endpoint_url=url, options=options, max_retry_wait=0.2)
            client.embed(texts[:BATCH])  # warm up the server and the connection pool
            seconds, _ = timed(lambda: len(client.embed(texts)))
            results.append(("single process, EmbeddingsClient.embed", args.capacity, seconds, None))
            for workers in WORKERS:
                start_up, _ = timed(ray_runner(url, texts[:workers], workers, args.capacity))
                seconds, n = timed(ray_runner(url, texts, workers, args.capacity))
                assert n == len(texts), n
                per_worker = args.capacity // min(workers, args.capacity)
                name = f"Ray Data, {workers} worker(s) x {per_worker} in flight"
                results.append((name, per_worker * workers, seconds, start_up))
    finally:
        ray.shutdown()

    print(
        f"\n{'run':<44} {'in flight':>9} {'seconds':>8} {'texts/s':>8} {'x limit':>8}"
        f" {'start-up':>9} {'net s':>7} {'net x limit':>11} {'x single':>8}"
    )
    print("-" * 122)
    single = results[0][2]
    for name, in_flight, seconds, start_up in results:
        net = seconds - start_up if start_up is not None else seconds
        cells = (
            f"{in_flight:>9} {seconds:>8.2f} {len(texts) / seconds:>8.0f} {seconds / limit:>8.2f}"
            f" {'-' if start_up is None else f'{start_up:.2f}':>9} {net:>7.2f}"
            f" {net / limit:>11.2f} {seconds / single:>8.2f}"
        )
        print(f"{name:<44} {cells}")
    print(f"{'limit: endpoint capacity':<44} {args.capacity:>9} {limit:>8.2f}")
    assert np.isfinite(limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.1, help="server seconds per request")
    parser.add_argument("--per-item", type=float, default=0.0005, help="server seconds per text")
    parser.add_argument("--capacity", type=int, default=8, help="server requests at once")
    parser.add_argument("--quick", action="store_true", help="2,000 texts")
    args = parser.parse_args()
    if args.quick:
        args.texts = 2_000
    run(args)


if __name__ == "__main__":
    main()
