"""Run every benchmark and collect their tables in ``benchmarks/RESULTS.md``, Targets first.

Each script runs in its own process (as ``make bench`` always did) and its printed table is copied
into the report, with the machine, Python and package versions and the date at the top. The
bulk-embedding script also writes a JSON sidecar (``--json``) and the scaling plot
(``benchmarks/scaling.png``); the "Targets" section is computed from that JSON and from the
table ``bench_decode.py`` prints (see ``_targets.py``), never written by hand.

The bulk-embedding defaults are the evidence issue's workload: 10,000 texts, 15 ms per request
plus 0.2 ms per text, batch limit 32, 8 requests served at once. The other scripts run at their
quick sizes, each well under two minutes. ``--quick`` runs bench_embeddings at 1,000 texts too:
a short run that proves the chain works end to end, marked as such in the report.

Usage::

    python benchmarks/report.py            # full run, writes benchmarks/RESULTS.md
    python benchmarks/report.py --quick    # reduced sizes (a few minutes)
    python benchmarks/report.py --only rerank stream
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _targets

HERE = Path(__file__).resolve().parent
BULK = "bench_embeddings.py"
DECODE = "bench_decode.py"

#: (title, script, arguments, seconds allowed).
RUNS: list[tuple[str, str, list[str], float]] = [
    (
        "Bulk embedding: 15 ms + 0.2 ms/text per request, batch 32, 8 served at once",
        BULK,
        [],
        1500.0,
    ),
    ("Reranking", "bench_rerank.py", ["--quick"], 600.0),
    ("Retrieval and reranking quality (hit@1, hit@3)", "bench_retrieval_eval.py", [], 600.0),
    ("Dense, sparse and hybrid recall@k on Qdrant", "bench_recall.py", [], 600.0),
    ("Streaming", "bench_stream.py", ["--quick"], 600.0),
    ("Decoding vectors", DECODE, ["--quick"], 600.0),
    ("Ray Data", "bench_ray.py", ["--quick"], 600.0),
    ("The local server's latency model", "bench_server.py", [], 600.0),
    (
        "Adaptive concurrency: default settings against the best fixed setting",
        "bench_adaptive.py",
        ["--quick"],
        1200.0,
    ),
]

#: How the reference clients were pointed at the local server: the only change made to them.
PATCHES = """\
## How the reference clients reach the local server

They are installed unmodified, at their newest releases that install together (`make bench`
builds `.venv-bench` with `pip install --upgrade -e ".[bench]"`), and used as their docs show:

- huggingface_hub `InferenceClient(model=URL)`, llama-index `TextEmbeddingsInference(base_url=URL)`:
  an endpoint URL, no change.
- langchain-huggingface `HuggingFaceEndpointEmbeddings` refuses URLs (`model` must be a Hub id)
  and llama-index `HuggingFaceInferenceAPIEmbedding` takes a Hub id: both go through
  huggingface_hub to the router. The local server serves the router layout with the id
  `BAAI/bge-small-en-v1.5`, and the benchmark's child process sets, before importing them,
  `HF_ENDPOINT=URL` (huggingface_hub's own setting: the provider look-up goes to the local
  server's `/api/models`) and one line,
  `huggingface_hub.constants.INFERENCE_PROXY_TEMPLATE = URL + "/{provider}"` (the router's address).
  No token is set or sent.
- Where a documented path fails on the workload, the row below it is the workaround a user would
  write next with the same class (`benchmarks/_embed_runners.py`: batches of 32 in 8 threads, or
  on one event loop for the async-only one, each batch retried after 1 s on any error).
"""

PACKAGES = [
    "hfrag",
    "httpx",
    "numpy",
    "aiohttp",
    "langchain-core",
    "llama-index-core",
    "ray",
    "langchain-huggingface",
    "llama-index-embeddings-huggingface-api",
    "llama-index-embeddings-text-embeddings-inference",
    "huggingface-hub",
    "matplotlib",
]


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _load() -> tuple[float, float, float]:
    return os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)


def _machine() -> list[str]:
    load = _load()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return [
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- Machine: {platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs",
        f"- Load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"- Python: {platform.python_version()} ({sys.executable})",
        "- Packages: " + ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
    ]


def _run(script: str, args: list[str], timeout: float) -> tuple[str, int, float]:
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        out = done.stdout + (f"\n[stderr]\n{done.stderr[-2000:]}" if done.returncode else "")
        code = done.returncode
    except subprocess.TimeoutExpired:
        out, code = f"did not finish within {timeout:g} s", -1
    return out.rstrip(), code, time.monotonic() - start


def _loaded(load: tuple[float, float, float]) -> str:
    """A warning line when the machine was busy before the run (1-minute load >= half the CPUs)."""
    cpus = os.cpu_count() or 1
    if load[0] < cpus / 2:
        return ""
    return (
        f"**Measured on a loaded machine** (load average {load[0]:.2f} on {cpus} CPUs at the "
        "start): the absolute times and the ratios to the latency-model limit are pessimistic; "
        "the ratios between clients of one table are still measured side by side."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only scripts whose name has these words")
    parser.add_argument("--timeout", type=float, help="seconds per script (default: per script)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--note", default="", help="a line added under the header")
    parser.add_argument("--quick", action="store_true", help="bulk embedding at 1,000 texts")
    ns = parser.parse_args()
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    load = _load()
    head = ["# Benchmark results", "", *_machine(), ""]
    for note in (ns.note, _loaded(load)):
        if note:
            head += [note, ""]
    if ns.quick:
        head += [
            "**Reduced sizes (`--quick`)**: bulk embedding at 1,000 texts and a small scaling "
            "run; this proves the chain works, it is not the 10,000-text workload.",
            "",
        ]
    head += [
        "Produced by `python benchmarks/report.py` (run by `make bench`); each section below "
        "the Targets is the table one script printed, with its arguments. Times depend on the "
        "machine and its load: compare the ratios within a table, measured in the same run.",
        "",
    ]
    body: list[str] = []
    bench: dict[str, object] | None = None
    decode: str | None = None
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        sidecar = Path(tmp) / "bench_embeddings.json"
        for title, script, args, allowed in RUNS:
            if ns.only and not any(word in script for word in ns.only):
                continue
            if script == BULK:
                plot = ns.out.parent / "scaling.png"
                args = [*args, *(["--quick"] if ns.quick else []), "--plot", str(plot)]
            shown = " ".join(args)
            if script == BULK:
                args = [*args, "--json", str(sidecar)]
            print(f"running {script} {shown}", flush=True)
            out, code, seconds = _run(script, args, ns.timeout or allowed)
            failed += code != 0
            if script == BULK and sidecar.exists():
                bench = json.loads(sidecar.read_text())
            if script == DECODE:
                decode = out
            status = "" if code == 0 else f" (exit status {code})"
            body += [f"## {title}", "", f"`python benchmarks/{script} {shown}`: "
                     f"{seconds:.0f} s{status}", ""]  # fmt: skip
            if script == BULK and bench and bench.get("scaling"):
                body += ["![wall time against corpus size and max_concurrency](scaling.png)", ""]
            body += ["```text", out, "```", ""]
    lines = [*head, *_targets.section(bench, decode)]
    if bench is not None:
        lines += [PATCHES]
    ns.out.write_text("\n".join([*lines, *body]))
    print(f"wrote {ns.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
