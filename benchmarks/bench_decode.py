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

Each table is run at three batch sizes: 32 (TEI's ``max_client_batch_size``), where the cost of
an HTTP request (httpx's, not the decode's) bounds every client, then 256 and 1,024
(OpenAI-compatible servers take such batches: OpenAI up to 2,048 inputs, vLLM and Infinity more),
where the decode counts for more and more. Then the resident memory a fresh process gains while
embedding with hfrag's JSON and base64 paths, against its output array.

Usage: ``python benchmarks/bench_decode.py [--vectors 3000] [--batches 32 256 1024]
[--dims 384 1024]`` (a few minutes; ``--quick`` embeds 4,096). Figures are scaled to 10,000
vectors.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np

import hfrag.tasks.embedding_wire as wire
import hfrag.transport.responses as responses
from hfrag.server.testing import serve_in_subprocess
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient


def local_server(dim: int, batch: int) -> contextlib.AbstractContextManager[str]:
    """The hashing model of ``dim`` dimensions in ``hfrag serve`` (a child process)."""
    return serve_in_subprocess(
        "--models", "hash", "--embed-dim", str(dim), "--max-batch-size", str(batch)
    )


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


def cpu(fn: Callable[[], Any], repeats: int) -> tuple[float, str]:
    """Client CPU seconds of ``fn`` (the least of ``repeats`` runs) and an outcome."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        try:
            result = fn()
        except Exception as exc:
            return 0.0, f"FAILS: {type(exc).__name__}: {str(exc)[:40]}"
        if result is None:
            return 0.0, "not installed"
        best = min(best, time.process_time() - start)
    return best, "ok"


_MEMORY_PROBE = """
import json, resource, sys, threading
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient

def resident():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()

url, n, batch, fmt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
texts = [f"passage {i}: the {i % 17} quick foxes" for i in range(n)]
options = EmbeddingOptions(batch_size=batch, encoding_format=fmt) if fmt else EmbeddingOptions(
    batch_size=batch
)
client = EmbeddingsClient(endpoint_url=url, options=options)
client.embed(texts[: 4 * batch])  # warm: imports, connections, /info, the route
before = peak = resident()
done = threading.Event()

def sample():
    global peak
    while not done.wait(0.0005):
        peak = max(peak, resident())

watcher = threading.Thread(target=sample)
watcher.start()
out = client.embed(texts)
done.set()
watcher.join()
peak = max(peak, resident())
used = {"over": peak - before, "output": out.nbytes, "concurrency": options.max_concurrency}
print(json.dumps(used))
"""


def peak_memory(url: str, n: int, batch: int, encoding: str) -> dict[str, int]:
    """Resident memory a fresh process gains while embedding ``n`` texts, against its output.

    Resident memory, not tracemalloc: orjson reserves a parse pool of about 13x the body that it
    mostly never touches, which tracemalloc counts in full and the machine does not.
    """
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, url, str(n), str(batch), encoding],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(url: str, texts: list[str], batch: int, repeats: int) -> dict[str, float]:
    """Run every client over ``texts`` once; print the table; the speed-ups over the bare loop."""
    runs = runners(url, batch)
    for fn in runs.values():
        with contextlib.suppress(Exception):  # warm: imports, connections, /info
            fn(texts[: 2 * batch])
    results = {name: cpu(lambda fn=fn: fn(texts), repeats) for name, fn in runs.items()}
    bare = results[next(iter(results))][0]
    scale = 10_000 / len(texts)
    print(f"{'client':<54} {'CPU s/10k':>10} {'x bare':>8}  outcome")
    print("-" * 90)
    for name, (seconds, outcome) in results.items():
        ok = outcome == "ok"
        cells = f"{seconds * scale:>10.3f} {seconds / bare:>8.2f}" if ok else f"{'-':>10} {'-':>8}"
        print(f"{name:<54} {cells}  {outcome}")
    return {n: bare / r[0] for n, r in results.items() if r[1] == "ok" and r[0] > 0}


def run(args: argparse.Namespace) -> None:
    texts = [
        f"passage {i}: the {i % 17} quick foxes jump over {i % 5} lazy dogs"
        for i in range(args.vectors)
    ]
    print(
        f"client CPU seconds per 10,000 vectors ({args.vectors} embedded per client, "
        f"least of {args.repeats} runs)"
    )
    summary = []
    for dim in args.dims:
        for batch in args.batches:
            with local_server(dim, batch) as url:
                print(f"\n{dim} dimensions, batches of {batch}")
                speedup = table(url, texts, batch, args.repeats)
                b64 = speedup["hfrag OpenAI form, base64"]
                floor = speedup["floor: bare httpx + base64 + np.frombuffer"]
                tei = speedup["hfrag TEI form (/embed, orjson)"]
                summary.append(
                    f"{dim:>5} {batch:>6} {tei:>10.1f}x {b64:>12.1f}x {floor:>12.1f}x "
                    f"{'met' if b64 >= 5 else 'missed':>8}"
                )
                if batch != max(args.batches):
                    continue
                for label, route, encoding in (
                    ("JSON (TEI form)", "/embed", ""),
                    ("base64 (OpenAI form)", "/v1", "base64"),
                ):
                    mem = peak_memory(url + route, args.memory_vectors, batch, encoding)
                    body = (
                        {"inputs": texts[:batch]}
                        if encoding == ""
                        else {
                            "input": texts[:batch],
                            "encoding_format": "base64",
                        }
                    )
                    path = "/embed" if encoding == "" else "/v1/embeddings"
                    wire = len(httpx.post(url + path, json=body, timeout=60).content)
                    flight = mem["concurrency"] * wire
                    print(
                        f"resident memory, hfrag {label}, {args.memory_vectors} vectors: output "
                        f"{mem['output'] / 2**20:.1f} MiB, gained {mem['over'] / 2**20:.1f} MiB "
                        f"= output + {(mem['over'] - mem['output']) / 2**20:.1f} MiB; "
                        f"{mem['concurrency']} answers in flight are {flight / 2**20:.1f} MiB "
                        "as received"
                    )
    print("\nspeed-up over the bare JSON loop (target: hfrag base64 at least 5x)")
    print(
        f"{'dims':>5} {'batch':>6} {'hfrag JSON':>11} {'hfrag base64':>13} {'floor':>13} "
        f"{'target':>8}"
    )
    for line in summary:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=3000, help="vectors embedded per client")
    parser.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=[32, 256, 1024],
        help="batch sizes (32 is TEI's limit; OpenAI's is 2,048 inputs, vLLM has none)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per client; the least counts")
    parser.add_argument("--memory-vectors", type=int, default=20_000, help="for the memory run")
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 1024])
    parser.add_argument("--quick", action="store_true", help="4,096 vectors")
    args = parser.parse_args()
    if args.quick:
        args.vectors = 4096
        args.memory_vectors = 8192
    run(args)


if __name__ == "__main__":
    main()
