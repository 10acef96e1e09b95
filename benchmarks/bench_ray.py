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
its actors, so its steady rate (texts/s after its first batch came out) is shown as well.

Usage: ``python benchmarks/bench_ray.py [--texts 10000] [--latency 0.1] [--capacity 8]``
(``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import math
import time

from bench_embeddings import BATCH, local_server  # the same subprocess server, batches of 32

from hfrag.tasks import EmbeddingOptions, EmbeddingsClient

WORKERS = (1, 2, 4)


def ray_run(url: str, texts: list[str], workers: int, capacity: int) -> tuple[float, float]:
    """Seconds for the whole job, and texts/s once the first batch is out (actors started)."""
    import ray.data

    from hfrag.ray import embed_dataset

    start = time.perf_counter()
    ds = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=8)
    out = embed_dataset(
        ds, endpoint_url=url, workers=workers, max_in_flight=capacity, num_cpus=0.25
    )
    rows, first, first_at = 0, 0, 0.0
    for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
        assert batch.schema.field("embedding").type.list_size == 384
        if not rows:
            first, first_at = batch.num_rows, time.perf_counter()
        rows += batch.num_rows
    end = time.perf_counter()
    assert rows == len(texts), rows
    steady = (rows - first) / (end - first_at) if end > first_at and rows > first else math.nan
    return end - start, steady


def run(args: argparse.Namespace) -> None:
    import ray

    texts = [
        f"passage {i}: the {i % 17} quick foxes jump over {i % 5} lazy dogs"
        for i in range(args.texts)
    ]
    per_batch = args.latency + BATCH * args.per_item
    limit = math.ceil(math.ceil(args.texts / BATCH) / args.capacity) * per_batch
    limit_rate = args.capacity * BATCH / per_batch
    load = [
        "--latency", str(args.latency),
        "--latency-per-item", str(args.per_item),
        "--max-concurrency", str(args.capacity),
    ]  # fmt: skip
    print(
        f"{args.texts} texts, batches of {BATCH}, server: {args.latency * 1000:.0f} ms + "
        f"{args.per_item * 1000:.2f} ms/text per request, {args.capacity} requests at once"
    )
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    results: list[tuple[str, int, float, float]] = []
    try:
        with local_server(*load) as url:
            options = EmbeddingOptions(batch_size=BATCH, max_concurrency=args.capacity)
            client = EmbeddingsClient(endpoint_url=url, options=options, max_retry_wait=0.2)
            client.embed(texts[:BATCH])  # warm up the server and the connection pool
            start = time.perf_counter()
            assert len(client.embed(texts)) == len(texts)
            seconds = time.perf_counter() - start
            name = "single process, EmbeddingsClient.embed"
            results.append((name, args.capacity, seconds, len(texts) / seconds))
            ray_run(url, texts[: BATCH * 4], 1, args.capacity)  # Ray's first start-up, not timed
            for workers in WORKERS:
                seconds, steady = ray_run(url, texts, workers, args.capacity)
                per_worker = args.capacity // min(workers, args.capacity)
                name = f"Ray Data, {workers} worker(s) x {per_worker} in flight"
                results.append((name, per_worker * workers, seconds, steady))
    finally:
        ray.shutdown()

    print(
        f"\n{'run':<42} {'in flight':>9} {'seconds':>8} {'x limit':>8} {'x single':>8}"
        f" {'steady texts/s':>14} {'x limit':>8}"
    )
    print("-" * 104)
    single = results[0][2]
    for name, in_flight, seconds, steady in results:
        cells = f"{in_flight:>9} {seconds:>8.2f} {seconds / limit:>8.2f} {seconds / single:>8.2f}"
        if steady > 1.1 * limit_rate:
            # Faster than the endpoint can answer: the batches were held back and came out
            # together, so no steady rate can be read from when they came out.
            cells += f" {'(held back)':>14} {'-':>8}"
        else:
            cells += f" {steady:>14.0f} {steady / limit_rate:>8.2f}"
        print(f"{name:<42} {cells}")
    print(
        f"{'limit: endpoint capacity':<42} {args.capacity:>9} {limit:>8.2f} {'':>8}"
        f" {limit_rate:>14.0f}"
    )
    print(
        "\nseconds: the whole job (a Ray run includes starting its actors); steady: texts/s "
        "after the first batch came out ('held back': Ray released the batches together, "
        "faster than the endpoint could have answered them, so the rate says nothing)."
    )


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
