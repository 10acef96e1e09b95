"""Client CPU spent decoding embeddings: hfrag's wire forms against the bare loop and the
reference clients.

Starts ``hfrag serve`` (zero latency) in a subprocess, so the server's CPU is not counted, and
embeds the same texts with each client, measuring ``time.process_time()`` (every thread of this
process: hfrag's I/O thread included) around the client call. Reported per 10,000 vectors, for
384 and 1,024 dimensions, with the ratio to the bare loop: ``httpx`` + ``json.loads`` +
``np.asarray`` over the same batches, one request at a time.

Rows:

- hfrag before: today's client with the decode of the starting commit (``json`` and the old
  ``to_matrix``, kept below as ``old_to_matrix``);
- hfrag after: TEI form (``/embed``, JSON parsed by orjson), OpenAI form with
  ``encoding_format="float"`` and ``"base64"``;
- the floor: bare httpx reading base64 with ``np.frombuffer`` (what no client can beat);
- reference clients, when installed (``pip install "hfrag[bench]"``): huggingface_hub's
  ``InferenceClient.feature_extraction``, langchain-huggingface's
  ``HuggingFaceEndpointEmbeddings`` (refuses endpoint URLs since 1.2.2), llama-index's
  ``TextEmbeddingsInference``.

Then peak memory (tracemalloc) of hfrag's JSON and base64 paths against the output array.

Usage: ``python benchmarks/bench_decode.py [--vectors 3000] [--batch 32] [--dims 384 1024]``
(about two minutes; ``--quick`` embeds 1,000). Figures are scaled to 10,000 vectors.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np

import hfrag.tasks.embedding_wire as wire
import hfrag.transport.responses as responses
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient


@contextlib.contextmanager
def local_server(dim: int, batch: int) -> Iterator[str]:
    """``hfrag serve`` on a free port in a subprocess; yields its URL."""
    cmd = [sys.executable, "-m", "hfrag", "serve", "--port", "0", "--embed-dim", str(dim)]
    proc = subprocess.Popen(
        [*cmd, "--max-batch-size", str(batch)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        yield next(w for w in line.split() if w.startswith("http://")).rstrip("/")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- hfrag before this change: its decode, copied from the starting commit -----------------------


def old_to_matrix(payload: Any, n: int, first: int, url: str, dim: int | None) -> np.ndarray:
    """The starting commit's ``to_matrix`` for the pooled 2-D case (the path TEI answers take)."""
    if not isinstance(payload, list):
        raise ValueError("expected a JSON array")
    try:
        array = np.asarray(payload)
    except ValueError as exc:
        raise ValueError("ragged") from exc
    if array.dtype.kind not in "fiu":
        raise ValueError("non-numeric")
    if array.ndim == 1 and n == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[0] != n or array.shape[1] == 0:
        raise ValueError("bad shape")
    if dim is not None and array.shape[1] != dim:
        raise ValueError("dimension")
    matrix = array.astype(np.float32, copy=False)
    if not np.isfinite(matrix).all():
        raise ValueError("NaN")
    return matrix


@contextlib.contextmanager
def decode_as_before() -> Iterator[None]:
    """hfrag's client with the starting commit's decode: stdlib json, the old ``to_matrix``."""
    tei = wire.FORMS["tei"]

    def decode(payload: Any, n: int, first: int, url: str, dim: int | None, _: Any) -> Any:
        return old_to_matrix(payload, n, first, url, dim)

    saved = responses._loads
    responses._loads = None
    wire.FORMS["tei"] = wire.WireForm("tei", tei.build, decode)
    try:
        yield
    finally:
        wire.FORMS["tei"] = tei
        responses._loads = saved


# -- the runners ---------------------------------------------------------------------------------


def batches(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def bare_json(http: httpx.Client, url: str, texts: list[str], batch: int) -> np.ndarray:
    parts = []
    for chunk in batches(texts, batch):
        response = http.post(url + "/embed", json={"inputs": chunk})
        parts.append(np.asarray(json.loads(response.content), dtype=np.float32))
    return np.concatenate(parts)


def bare_base64(http: httpx.Client, url: str, texts: list[str], batch: int) -> np.ndarray:
    parts = []
    for chunk in batches(texts, batch):
        body = {"input": chunk, "encoding_format": "base64"}
        data = http.post(url + "/v1/embeddings", json=body).json()["data"]
        rows = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data]
        parts.append(np.stack(rows))
    return np.concatenate(parts)


def hfrag_client(url: str, batch: int, **options: Any) -> EmbeddingsClient:
    return EmbeddingsClient(endpoint_url=url, options=EmbeddingOptions(batch_size=batch, **options))


Runner = Callable[[list[str]], Any]


def runners(url: str, batch: int) -> dict[str, Runner]:
    """Each client, built once (connections, TLS context, /info are set-up, not decoding)."""
    http = httpx.Client(timeout=60)
    tei = hfrag_client(url + "/embed", batch)
    before = hfrag_client(url + "/embed", batch)
    floats = hfrag_client(url + "/v1", batch, encoding_format="float")
    b64 = hfrag_client(url + "/v1", batch, encoding_format="base64")

    def run_before(texts: list[str]) -> Any:
        with decode_as_before():
            return before.embed(texts)

    out: dict[str, Runner] = {
        "bare httpx + json.loads + np.asarray (/embed)": lambda t: bare_json(http, url, t, batch),
        "hfrag before (json + old to_matrix, /embed)": run_before,
        "hfrag TEI form (/embed, orjson)": tei.embed,
        "hfrag OpenAI form, float": floats.embed,
        "hfrag OpenAI form, base64": b64.embed,
        "floor: bare httpx + base64 + np.frombuffer": lambda t: bare_base64(http, url, t, batch),
    }
    from huggingface_hub import InferenceClient

    hub = InferenceClient(model=url)
    out["huggingface_hub feature_extraction (own loop)"] = lambda t: np.concatenate(
        [hub.feature_extraction(chunk) for chunk in batches(t, batch)]
    )
    try:
        from langchain_huggingface import HuggingFaceEndpointEmbeddings

        # Since 1.2.2 it refuses endpoint URLs (model must be a repo id).
        out["langchain-huggingface HuggingFaceEndpointEmbeddings"] = lambda t: (
            HuggingFaceEndpointEmbeddings(model=url).embed_documents(t)
        )
    except ImportError:
        out["langchain-huggingface (not installed)"] = lambda t: None
    try:
        from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

        li = TextEmbeddingsInference(model_name="bench", base_url=url, embed_batch_size=batch)
        out["llama-index TextEmbeddingsInference"] = li.get_text_embedding_batch
    except ImportError:
        out["llama-index TextEmbeddingsInference (not installed)"] = lambda t: None
    return out


def cpu(fn: Callable[[], Any]) -> tuple[float, str]:
    """Client CPU seconds of ``fn`` and an outcome."""
    start = time.process_time()
    try:
        result = fn()
        outcome = "not installed" if result is None else "ok"
    except Exception as exc:
        outcome = f"FAILS: {type(exc).__name__}: {str(exc)[:40]}"
    return time.process_time() - start, outcome


def peak_memory(url: str, texts: list[str], batch: int, **options: Any) -> tuple[int, int]:
    client = hfrag_client(url, batch, **options)
    client.embed(texts[:batch])  # warm: connections, /info, the route
    tracemalloc.start()
    out = client.embed(texts)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    client.close()
    return peak, out.nbytes


def run(args: argparse.Namespace) -> None:
    texts = [
        f"passage {i}: the {i % 17} quick foxes jump over {i % 5} lazy dogs"
        for i in range(args.vectors)
    ]
    scale = 10_000 / args.vectors
    print(
        f"client CPU seconds per 10,000 vectors ({args.vectors} embedded, batches of {args.batch})"
    )
    for dim in args.dims:
        with local_server(dim, args.batch) as url:
            table = runners(url, args.batch)
            for fn in table.values():
                with contextlib.suppress(Exception):  # warm: imports, connections, /info
                    fn(texts[: 2 * args.batch])
            results = {name: cpu(lambda fn=fn: fn(texts)) for name, fn in table.items()}
            bare = results[next(iter(results))][0]
            print(f"\n{dim} dimensions")
            print(f"{'client':<54} {'CPU s/10k':>10} {'x bare':>8}  outcome")
            print("-" * 90)
            speedup = {n: bare / r[0] for n, r in results.items() if r[1] == "ok" and r[0] > 0}
            for name, (seconds, outcome) in results.items():
                ok = outcome == "ok"
                cells = (
                    f"{seconds * scale:>10.3f} {seconds / bare:>8.2f}"
                    if ok
                    else f"{'-':>10} {'-':>8}"
                )
                print(f"{name:<54} {cells}  {outcome}")
            b64 = speedup["hfrag OpenAI form, base64"]
            floor = speedup["floor: bare httpx + base64 + np.frombuffer"]
            tei = speedup["hfrag TEI form (/embed, orjson)"]
            print(
                f"vs the bare JSON loop: hfrag base64 {b64:.1f}x faster (floor {floor:.1f}x), "
                f"hfrag JSON {tei:.1f}x"
            )
            for label, route, body in (
                ("JSON (TEI form)", "/embed", {"inputs": texts[: args.batch]}),
                (
                    "base64 (OpenAI form)",
                    "/v1",
                    {"input": texts[: args.batch], "encoding_format": "base64"},
                ),
            ):
                options = {"encoding_format": "base64"} if route == "/v1" else {}
                peak, nbytes = peak_memory(url + route, texts, args.batch, **options)
                path = "/v1/embeddings" if route == "/v1" else route
                wire = len(httpx.post(url + path, json=body, timeout=60).content)
                print(
                    f"peak memory, hfrag {label}: output {nbytes / 2**20:.1f} MiB "
                    f"+ {(peak - nbytes) / 2**20:.1f} MiB; 4 answers in flight are "
                    f"{4 * wire / 2**20:.1f} MiB as received"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=3000, help="vectors embedded per client")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 1024])
    parser.add_argument("--quick", action="store_true", help="1,000 vectors")
    args = parser.parse_args()
    if args.quick:
        args.vectors = 1000
    run(args)


if __name__ == "__main__":
    main()
