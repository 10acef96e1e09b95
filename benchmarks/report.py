"""Run every benchmark once at a quick size and collect their tables in ``benchmarks/RESULTS.md``.

The scripts are run as they are (each in its own process, as ``make bench`` always did); this
only captures what each prints, with the machine, Python and package versions and the date at
the top. The bulk-embedding scenario of the evidence issue (15 ms per request plus 0.2 ms per
text, batch limit 32, 8 requests served at once, 10,000 texts) is ``bench_embeddings.py`` with
those arguments.

Usage::

    python benchmarks/report.py            # quick sizes, writes benchmarks/RESULTS.md
    python benchmarks/report.py --only rerank stream
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (title, script, arguments): quick sizes, each run well under two minutes.
RUNS: list[tuple[str, str, list[str]]] = [
    (
        "Bulk embedding: 10,000 texts, 15 ms + 0.2 ms/text, batch 32, 8 served at once",
        "bench_embeddings.py",
        [
            "--texts",
            "10000",
            "--latency",
            "0.015",
            "--per-item",
            "0.0002",
            "--server-concurrency",
            "8",
            "--memory-texts",
            "20000",
        ],
    ),
    ("Reranking", "bench_rerank.py", ["--quick"]),
    ("Streaming", "bench_stream.py", ["--quick"]),
    ("Decoding vectors", "bench_decode.py", ["--quick"]),
    ("Ray Data", "bench_ray.py", ["--quick"]),
    ("The local server's latency model", "bench_server.py", []),
]

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
    "huggingface-hub",
]


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _machine() -> list[str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only scripts whose name has these words")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per script")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--note", default="", help="a line added under the header")
    ns = parser.parse_args()
    lines = ["# Benchmark results", "", *_machine(), ""]
    if ns.note:
        lines += [ns.note, ""]
    lines += [
        "Produced by `python benchmarks/report.py` (run by `make bench`); each section is the "
        "table one script printed, with its arguments. Times depend on the machine and its load: "
        "compare the ratios within a table, measured in the same run.",
        "",
    ]
    failed = 0
    for title, script, args in RUNS:
        if ns.only and not any(word in script for word in ns.only):
            continue
        print(f"running {script} {' '.join(args)}", flush=True)
        out, code, seconds = _run(script, args, ns.timeout)
        failed += code != 0
        status = "" if code == 0 else f" (exit status {code})"
        lines += [
            f"## {title}",
            "",
            f"`python benchmarks/{script} {' '.join(args)}`: {seconds:.0f} s{status}",
            "",
            "```text",
            out,
            "```",
            "",
        ]
    ns.out.write_text("\n".join(lines))
    print(f"wrote {ns.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
