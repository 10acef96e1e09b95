"""Real models through hfrag's local server against the same runtime called in process.

Embeddings: the same texts, cut into the same batches of B, are embedded (1) in this process by
the backend the server uses (``OnnxEmbedder`` int8, or ``NumpyEmbedder`` fp32 with ``--fp32``),
one batch after another, and (2) through ``hfrag serve --models real`` running in a subprocess,
by hfrag's ``EmbeddingsClient`` with 8 requests in flight. The server's figure includes HTTP,
JSON both ways and the client's decoding; its dynamic batching may join requests. Target: the
server reaches at least 0.8x the in-process texts per second.

Generation: N new tokens of SmolLM2-135M-Instruct (greedy) in process against ``/generate``.

    python benchmarks/bench_local_models.py            # about a minute on 2 cores
    python benchmarks/bench_local_models.py --quick    # fewer texts
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from hfrag.server import GenerationParams
from hfrag.server.models_real import missing_runtimes, real_models
from hfrag.tasks import EmbeddingsClient
from hfrag.tasks.embeddings import EmbeddingOptions

TARGET = 0.8
WORDS = (  # noqa: SIM905 - a word list reads better as text
    "retrieval augmented generation embeds documents into vectors and finds the passages "
    "closest to a question before a language model writes an answer from them while rerankers "
    "reorder candidates by relevance and the server batches concurrent requests"
).split()


def corpus(n: int, seed: int = 3) -> list[str]:
    """``n`` sentences of 8 to 60 words."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(8, 60))) for _ in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(precision: str) -> tuple[subprocess.Popen[str], str]:
    """``hfrag serve --models real`` in a subprocess, once it answers /health."""
    port = free_port()
    src = str(Path(__file__).resolve().parent.parent / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "hfrag", "serve", "--models", "real", "--port", str(port)]
    cmd += ["--embed-precision", precision, "--max-batch-size", "64"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("server did not start in 120 s")


def in_process(embedder: Any, texts: list[str], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        embedder.embed(texts[i : i + batch])
    return time.perf_counter() - start


def through_server(url: str, texts: list[str], batch: int, in_flight: int) -> float:
    options = EmbeddingOptions(batch_size=batch, max_concurrency=in_flight)
    client = EmbeddingsClient(endpoint_url=f"{url}/embed", options=options)
    client.embed(texts[:batch])  # warm the connection pool
    start = time.perf_counter()
    rows = client.embed(texts)
    elapsed = time.perf_counter() - start
    assert len(rows) == len(texts)
    return elapsed


def generation(generator: Any, url: str, tokens: int) -> tuple[float, float]:
    prompt = generator.render_chat([{"role": "user", "content": "Tell me about the sea."}])
    params = GenerationParams(max_new_tokens=tokens)
    start = time.perf_counter()
    local = len(list(generator.generate_tokens(prompt, params)))
    local_rate = local / (time.perf_counter() - start)
    body = {"inputs": prompt, "parameters": {"max_new_tokens": tokens, "details": True}}
    start = time.perf_counter()
    r = httpx.post(f"{url}/generate", json=body, timeout=300)
    elapsed = time.perf_counter() - start
    served = r.json()["details"]["generated_tokens"]
    return local_rate, served / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 texts instead of 1024")
    parser.add_argument("--fp32", action="store_true", help="the numpy fp32 embedder")
    parser.add_argument("--batch", type=int, default=32, help="texts per request / batch")
    parser.add_argument("--in-flight", type=int, default=8, help="requests in flight")
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated")
    args = parser.parse_args(argv)
    precision = "fp32" if args.fp32 else "int8"
    missing = missing_runtimes(precision)
    if missing:
        print(f"skipped: the real models need {', '.join(missing)}")
        return 0
    texts = corpus(256 if args.quick else 1024)
    specs = real_models(precision)
    embedder, generator = specs[0].backend, specs[2].backend
    embedder.embed(texts[:8])  # load and warm up
    proc, url = start_server(precision)
    try:
        local = in_process(embedder, texts, args.batch)
        served = through_server(url, texts, args.batch, args.in_flight)
        local_gen, served_gen = generation(generator, url, args.tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows = [
        (
            f"embed {embedder.runtime}, {len(texts)} texts, batch {args.batch}",
            "texts/s",
            len(texts) / local,
            len(texts) / served,
        ),
        (f"generate SmolLM2 {args.tokens} tokens, greedy", "tokens/s", local_gen, served_gen),
    ]
    header = f"{'workload':<48} {'unit':>8} {'in-process':>11} {'server':>9} {'ratio':>6}  note"
    print(header)
    print("-" * len(header))
    for name, unit, a, b in rows:
        ratio = b / a
        note = "ok" if ratio >= TARGET else f"below the {TARGET}x target"
        print(f"{name:<48} {unit:>8} {a:>11.1f} {b:>9.1f} {ratio:>5.2f}x  {note}")
    print(
        f"\nserver: hfrag serve --models real in a subprocess, {args.in_flight} requests in flight"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
