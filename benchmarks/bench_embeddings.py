"""Embedding a corpus: hfrag against the reference clients, and against the server's limit.

Starts ``hfrag serve`` in a subprocess with a latency model (fixed latency per request plus a
cost per text, a concurrency cap, TEI's batch limit of 32) and embeds the same corpus with:

- hfrag's task client (sync and async) and its LangChain / LlamaIndex adapters;
- the reference clients, when installed (``pip install "hfrag[bench]"``): huggingface_hub's
  ``InferenceClient.feature_extraction``, langchain-huggingface's
  ``HuggingFaceEndpointEmbeddings``, and llama-index's ``TextEmbeddingsInference``.

The physical limit is what the server's latency model allows any client at all: every text in
batches of 32, ``max_concurrency`` requests at once. Then the same corpus with 10% injected faults
(503 loading, 429, 500, dropped connections), and the peak memory of a large job compared with its
output array.

Usage: ``python benchmarks/bench_embeddings.py [--texts 2000] [--latency 0.02]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from hfrag.tasks import EmbeddingOptions, EmbeddingsClient

BATCH = 32


@contextlib.contextmanager
def local_server(*args: str) -> Iterator[str]:
    """``hfrag serve`` on a free port in a subprocess; yields its URL."""
    cmd = [sys.executable, "-m", "hfrag", "serve", "--models", "hash", "--port", "0"]
    cmd += ["--max-batch-size", str(BATCH)]
    proc = subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and "ready on" not in line:  # the model list comes first
            line = proc.stdout.readline()
        url = next(word for word in line.split() if word.startswith("http://"))
        yield url.rstrip("/")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def timed(fn: Callable[[], Any]) -> tuple[float, str]:
    """Seconds taken and an outcome: 'ok', or the error's class and status."""
    start = time.perf_counter()
    try:
        out = fn()
        outcome = "ok" if out is None or len(out) > 0 else "empty"
    except Exception as exc:
        status = getattr(exc, "status", None) or getattr(
            getattr(exc, "response", None), "status_code", None
        )
        outcome = f"FAILS: {type(exc).__name__}" + (f" {status}" if status else "")
    return time.perf_counter() - start, outcome


def hfrag_runners(url: str, texts: list[str]) -> dict[str, Callable[[], Any]]:
    def client(concurrency: int) -> EmbeddingsClient:
        options = EmbeddingOptions(batch_size=BATCH, max_concurrency=concurrency)
        return EmbeddingsClient(endpoint_url=url, options=options, max_retry_wait=0.2)

    from hfrag.langchain import HuggingFaceInferenceEmbeddings
    from hfrag.llama_index import HuggingFaceInferenceEmbedding

    lc = HuggingFaceInferenceEmbeddings(endpoint_url=url, max_concurrency=8, max_retry_wait=0.2)
    li = HuggingFaceInferenceEmbedding(endpoint_url=url, max_concurrency=8, max_retry_wait=0.2)
    c4, c8 = client(4), client(8)
    return {
        "hfrag EmbeddingsClient.embed, concurrency 4": lambda: c4.embed(texts),
        "hfrag EmbeddingsClient.embed, concurrency 8": lambda: c8.embed(texts),
        "hfrag EmbeddingsClient.aembed, concurrency 8": lambda: asyncio.run(c8.aembed(texts)),
        "hfrag LangChain embed_documents (8)": lambda: lc.embed_documents(texts),
        "hfrag LlamaIndex get_text_embedding_batch (8)": lambda: li.get_text_embedding_batch(texts),
    }


def anchor_runners(url: str, texts: list[str]) -> dict[str, Callable[[], Any]]:
    runners: dict[str, Callable[[], Any]] = {}
    from huggingface_hub import InferenceClient

    hub = InferenceClient(model=url)
    runners["huggingface_hub feature_extraction, all texts"] = lambda: hub.feature_extraction(texts)

    def hub_loop() -> list[Any]:
        out: list[Any] = []
        for i in range(0, len(texts), BATCH):
            out.extend(hub.feature_extraction(texts[i : i + BATCH]))
        return out

    runners["huggingface_hub feature_extraction, own loop of 32"] = hub_loop
    try:
        from langchain_huggingface import HuggingFaceEndpointEmbeddings

        # Since 1.x it refuses endpoint URLs (model must be a repo id); on the router it sends
        # every text in one feature_extraction call, like the first huggingface_hub row.
        runners["langchain-huggingface HuggingFaceEndpointEmbeddings"] = lambda: (
            HuggingFaceEndpointEmbeddings(model=url).embed_documents(texts)
        )
    except ImportError:
        runners["langchain-huggingface (not installed)"] = lambda: None
    try:
        from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

        li = TextEmbeddingsInference(model_name="bench", base_url=url, embed_batch_size=BATCH)
        runners["llama-index TextEmbeddingsInference (32)"] = lambda: li.get_text_embedding_batch(
            texts
        )
    except ImportError:
        runners["llama-index TextEmbeddingsInference (not installed)"] = lambda: None
    return runners


def wire_floor(url: str, texts: list[str], concurrency: int) -> float:
    """The same batches sent by bare httpx at full concurrency, bodies pre-encoded, replies
    unread beyond the bytes: what the server and the loopback allow, measured in this run."""
    import httpx

    bodies = [
        json.dumps({"inputs": texts[i : i + BATCH]}).encode() for i in range(0, len(texts), BATCH)
    ]

    async def go() -> None:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one(body: bytes) -> None:
                async with gate:
                    response = await client.post(
                        url + "/embed", content=body, headers={"content-type": "application/json"}
                    )
                    response.raise_for_status()

            await asyncio.gather(*(one(b) for b in bodies))

    start = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - start


def table(
    title: str,
    rows: list[tuple[str, float, str]],
    anchors: list[tuple[str, float, str]],
    model: float,
    floor: float,
) -> None:
    """Each row's time, and its ratio to both limits and to the fastest anchor that finished."""
    finished = [seconds for _, seconds, outcome in anchors if outcome == "ok"]
    best = min(finished) if finished else None
    print(f"\n{title}")
    print(f"{'client':<52} {'seconds':>8} {'x model':>8} {'x floor':>8} {'x anchor':>8}  outcome")
    print("-" * 104)

    def line(name: str, seconds: float, outcome: str = "") -> None:
        vs = f"{seconds / best:>8.2f}" if best else f"{'-':>8}"
        cells = f"{seconds:>8.3f} {seconds / model:>8.2f} {seconds / floor:>8.2f} {vs}"
        print(f"{name:<52} {cells}  {outcome}")

    for name, seconds, outcome in [*rows, *anchors]:
        line(name, seconds, outcome)
    line("limit: server latency model", model)
    line("limit: bare httpx at full concurrency (measured)", floor)
    if not finished:
        print("(no reference client finished: 'x anchor' has nothing to compare with)")


def run(args: argparse.Namespace) -> None:
    texts = [
        f"passage {i}: the {i % 17} quick foxes jump over {i % 5} lazy dogs"
        for i in range(args.texts)
    ]
    batches = math.ceil(args.texts / BATCH)
    per_batch = args.latency + BATCH * args.per_item
    limit = math.ceil(batches / args.server_concurrency) * per_batch
    load = [
        "--latency", str(args.latency),
        "--latency-per-item", str(args.per_item),
        "--max-concurrency", str(args.server_concurrency),
    ]  # fmt: skip
    print(
        f"{args.texts} texts, batches of {BATCH}, server: {args.latency * 1000:.0f} ms + "
        f"{args.per_item * 1000:.2f} ms/text per request, {args.server_concurrency} at once"
    )

    with local_server(*load) as url:
        wire_floor(url, texts[:BATCH], 1)  # warm up the server
        floor = wire_floor(url, texts, args.server_concurrency)
        rows = [(name, *timed(fn)) for name, fn in hfrag_runners(url, texts).items()]
        anchors = [(name, *timed(fn)) for name, fn in anchor_runners(url, texts).items()]
    table("Clean server", rows, anchors, limit, floor)

    faults = ["--seed", "5", "--fault-loading", "0.025", "--estimated-time", "0.05",
              "--fault-rate-limit", "0.025", "--retry-after", "0.05", "--fault-500", "0.025",
              "--fault-drop", "0.025"]  # fmt: skip
    with local_server(*load, *faults) as url:
        rows = [(name, *timed(fn)) for name, fn in hfrag_runners(url, texts).items()]
        anchors = [(name, *timed(fn)) for name, fn in anchor_runners(url, texts).items()]
    title = "10% injected faults (503 loading, 429, 500, dropped connection)"
    table(title, rows, anchors, limit, floor)

    n = args.memory_texts
    with local_server("--embed-dim", "384") as url:
        client = EmbeddingsClient(endpoint_url=url, options=EmbeddingOptions(max_concurrency=8))
        big = [f"memory test text {i} with a few words" for i in range(n)]
        tracemalloc.start()
        out = client.embed(big)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(f"\nMemory: {n} texts x {out.shape[1]} dims")
    print(f"  output array      {out.nbytes / 2**20:8.1f} MiB")
    print(f"  peak during job   {peak / 2**20:8.1f} MiB  ({peak / out.nbytes:.2f}x the output)")
    assert np.isfinite(out).all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.02, help="server seconds per request")
    parser.add_argument("--per-item", type=float, default=0.0005, help="server seconds per text")
    parser.add_argument("--server-concurrency", type=int, default=8)
    parser.add_argument("--memory-texts", type=int, default=20000)
    args = parser.parse_args()
    run(args)


if __name__ == "__main__":
    main()
