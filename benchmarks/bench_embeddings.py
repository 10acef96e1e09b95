"""Embedding a corpus: hfrag against the reference clients, a bare httpx pool and the limit.

Starts hfrag's local server in a subprocess (``_steered_server.py``) with a latency model (a
fixed latency per request plus a cost per text, a concurrency cap, TEI's batch limit of 32) and
embeds the same corpus with:

- hfrag's task client (sync and async) and its LangChain / LlamaIndex adapters;
- the reference clients as their docs show, from ``make bench``'s own environment:
  huggingface_hub's ``InferenceClient.feature_extraction``, langchain-huggingface's
  ``HuggingFaceEndpointEmbeddings``, llama-index's ``HuggingFaceInferenceAPIEmbedding`` and
  ``TextEmbeddingsInference``; where one fails on the workload, the failure is recorded and the
  workaround a user would write next is run too (see ``_embed_runners.py``);
- a bare httpx pool posting the same batches of 32, ``max_concurrency`` at once, no checks.

Every client runs in a fresh process (so its peak memory is its own) against the same server,
whose cold-start clock, fault sequence and request counters are reset right before the client
starts. Columns: wall time, ratio to the limit the latency model allows any client (every text in
batches of 32, the server's concurrency), ratio to the bare pool, requests the server answered,
vectors equal to the hashing model's, peak resident memory above the process's size before the
call, client CPU seconds. A client still running after ``--run-timeout`` seconds (60; scaled with
the corpus in the scaling runs) is stopped and recorded as not finished, with the requests the
server had answered by then.

Three scenarios: a clean server, a cold start (503 "loading" with ``estimated_time`` for the
first seconds), 10% injected faults (503 loading, 429 with Retry-After, 500, dropped connection).
Then scaling: hfrag and the bare pool against corpus size and against ``max_concurrency``
(table, and a plot with ``--plot``). ``--json PATH`` writes every number for ``report.py``.

Usage: ``python benchmarks/bench_embeddings.py [--texts 10000] [--quick] [--json out.json]``
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _embed_runners import ANCHORS, BARE, BATCH, DIM, HFRAG, RUNNERS, WORKAROUNDS, child

HERE = Path(__file__).resolve().parent
SYNC = HFRAG[0]


@contextlib.contextmanager
def local_server(*args: str) -> Iterator[str]:
    """``hfrag serve`` on a free port in a subprocess; yields its URL (bench_rerank, bench_ray)."""
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


class SteeredServer:
    """``_steered_server.py`` in a subprocess: one command line in, one JSON line out."""

    def __init__(self) -> None:
        cmd = [sys.executable, str(HERE / "_steered_server.py"), str(DIM), str(BATCH)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().split()[-1].rstrip("/")
        self._lock = threading.Lock()

    def command(self, line: str) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@contextlib.contextmanager
def steered_server() -> Iterator[SteeredServer]:
    server = SteeredServer()
    try:
        yield server
    finally:
        server.close()


def measure(
    server: SteeredServer, runner: str, texts: int, concurrency: int, timeout: float
) -> dict[str, Any]:
    """One client in a fresh process: built, then timed from the server's reset on."""
    spec = {"runner": runner, "url": server.url, "texts": texts, "concurrency": concurrency}
    server.command("reset")  # again once the client is built: its set-up is not counted
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the reference clients' warnings and stray tracebacks
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        proc.kill()

    watchdog = threading.Timer(timeout, stop)
    watchdog.start()
    result: dict[str, Any] = {}
    went = math.nan  # when the timed part began: a run cut by the watchdog ran this long
    try:
        for line in proc.stdout:
            if line.strip() == "ready":
                server.command("reset")
                proc.stdin.write("go\n")
                proc.stdin.flush()
                went = time.perf_counter()
            elif line.startswith("result "):
                result = json.loads(line.removeprefix("result "))
                break
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
    if not result:
        outcome = (
            f"DID NOT FINISH in {timeout:g} s"
            if timed_out.is_set()
            else f"FAILS: its process exited with status {proc.returncode} (not installed?)"
        )
        # Timed from "go", as a finished run is: not the start-up the watchdog also covered.
        waited = time.perf_counter() - went
        result = {"wall": waited if timed_out.is_set() else math.nan, "outcome": outcome}
        result.update(cpu=math.nan, base_mib=math.nan, peak_mib=math.nan, out_mib=math.nan)
        result.update(right=0)
    stats = server.command("stats")
    result.update(name=runner, texts=texts, concurrency=concurrency)
    result.update(requests=stats["requests"], statuses=stats["statuses"])
    result.update(server_cpu=stats["cpu"])
    return result


def latency_limit(texts: int, latency: float, per_item: float, servers: int) -> float:
    """The shortest time any client can take: batches of 32 on ``servers`` parallel slots."""
    sizes = [min(BATCH, texts - i) for i in range(0, texts, BATCH)]
    lanes = [0.0] * servers
    for size in sorted(sizes, reverse=True):  # longest first, each on the least loaded slot
        heapq.heapreplace(lanes, lanes[0] + latency + size * per_item)
    return max(lanes)


def scenarios(args: argparse.Namespace) -> dict[str, tuple[str, dict[str, Any]]]:
    load = {
        "latency": args.latency,
        "latency_per_item": args.per_item,
        "max_concurrency": args.server_concurrency,
    }
    faults = {"seed": 5, "p_loading": 0.025, "estimated_time": 1.0, "p_rate_limit": 0.025,
              "retry_after": 1.0, "p_500": 0.025, "p_drop": 0.025}  # fmt: skip
    return {
        "clean": ("Clean server", load),
        "cold": (
            f"Cold start: 503 loading (estimated_time = seconds left) for the first "
            f"{args.cold_start:g} s",
            {**load, "cold_start": args.cold_start},
        ),
        "faults": (
            "10% injected faults: 503 loading (estimated_time 1 s), 429 (Retry-After 1 s), 500, "
            "dropped connection, 2.5% each",
            {**load, **faults},
        ),
    }


def print_table(title: str, rows: list[dict[str, Any]], limit: float) -> None:
    bare = next((r["wall"] for r in rows if r["name"] == BARE and r["outcome"] == "ok"), None)
    print(f"\n{title}")
    head = (
        f"{'client':<54} {'seconds':>8} {'x limit':>8} {'x bare':>7} {'requests':>8} "
        f"{'vectors right':>13} {'peak MiB':>8} {'CPU s':>6}  outcome"
    )
    print(head)
    print("-" * (len(head) + 20))
    for r in rows:
        ok = r["outcome"] == "ok"
        vs_bare = f"{r['wall'] / bare:>7.2f}" if bare and ok else f"{'-':>7}"
        vs_limit = f"{r['wall'] / limit:>8.2f}" if ok else f"{'-':>8}"
        print(
            f"{r['label']:<54} {r['wall']:>8.2f} {vs_limit} {vs_bare} "
            f"{r['requests']:>8} {r['right']:>6}/{r['texts']:<6} "
            f"{r['peak_mib'] - r['base_mib']:>8.1f} {r['cpu']:>6.2f}  {r['outcome']}"
        )
    print(f"{'limit: the latency model':<54} {limit:>8.2f} {1:>8.2f}")


def run_scenario(
    server: SteeredServer, args: argparse.Namespace, faults: dict[str, Any]
) -> list[dict[str, Any]]:
    server.command("faults " + json.dumps(faults))
    rows = []
    for name in RUNNERS:
        row = measure(server, name, args.texts, args.concurrency, args.run_timeout)
        row["label"] = name
        rows.append(row)
        if name in WORKAROUNDS and row["outcome"] != "ok":
            label, _ = WORKAROUNDS[name]
            extra = measure(
                server, "workaround of " + name, args.texts, args.concurrency, args.run_timeout
            )
            extra["label"] = label
            extra["workaround_of"] = name
            rows.append(extra)
    return rows


def run_scaling(server: SteeredServer, args: argparse.Namespace) -> list[dict[str, Any]]:
    server.command("faults " + json.dumps(scenarios(args)["clean"][1]))
    points = [(n, args.concurrency) for n in args.sizes]
    points += [(args.texts, c) for c in args.concurrencies if (args.texts, c) not in points]
    rows = []
    for texts, concurrency in points:
        for name in (SYNC, BARE):
            allowed = args.run_timeout * max(1.0, texts / args.texts)
            row = measure(server, name, texts, concurrency, allowed)
            row["limit"] = latency_limit(
                texts, args.latency, args.per_item, min(concurrency, args.server_concurrency)
            )
            rows.append(row)
    print("\nScaling: wall seconds (x the latency-model limit at that size and concurrency)")
    print(f"{'texts':>7} {'concurrency':>11} {'limit s':>8} {'hfrag s':>14} {'bare pool s':>14}")
    by_point: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_point.setdefault((r["texts"], r["concurrency"]), {})[r["name"]] = r
    for (texts, concurrency), pair in by_point.items():
        cells = []
        for name in (SYNC, BARE):
            r = pair[name]
            ok = r["outcome"] == "ok"
            cells.append(f"{r['wall']:>6.2f} ({r['wall'] / r['limit']:.2f}x)" if ok else "FAILS")
        limit = pair[SYNC]["limit"]
        print(f"{texts:>7} {concurrency:>11} {limit:>8.2f} {cells[0]:>14} {cells[1]:>14}")
    return rows


def plot(rows: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_size, by_conc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, label, style in ((SYNC, "hfrag", "o-"), (BARE, "bare httpx pool", "s--")):
        size = sorted(
            (r["texts"], r["wall"], r["limit"])
            for r in rows
            if r["name"] == name and r["concurrency"] == args.concurrency
        )
        conc = sorted(
            (r["concurrency"], r["wall"], r["limit"])
            for r in rows
            if r["name"] == name and r["texts"] == args.texts
        )
        by_size.plot([p[0] for p in size], [p[1] for p in size], style, label=label)
        by_conc.plot([p[0] for p in conc], [p[1] for p in conc], style, label=label)
    size = sorted({(r["texts"], r["limit"]) for r in rows if r["concurrency"] == args.concurrency})
    conc = sorted({(r["concurrency"], r["limit"]) for r in rows if r["texts"] == args.texts})
    by_size.plot([p[0] for p in size], [p[1] for p in size], "k:", label="latency-model limit")
    by_conc.plot([p[0] for p in conc], [p[1] for p in conc], "k:", label="latency-model limit")
    by_size.set(xscale="log", yscale="log", xlabel="texts", ylabel="wall seconds")
    by_size.set_title(f"corpus size (max_concurrency {args.concurrency})")
    by_conc.set(xscale="log", yscale="log", xlabel="max_concurrency", ylabel="wall seconds")
    by_conc.set_title(f"{args.texts:,} texts (server serves {args.server_concurrency} at once)")
    by_conc.set_xticks(args.concurrencies, [str(c) for c in args.concurrencies])
    by_conc.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    for ax in (by_size, by_conc):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"Bulk embedding through hfrag's local server "
        f"({args.latency * 1000:g} ms + {args.per_item * 1000:g} ms/text, batches of {BATCH})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    limit = latency_limit(args.texts, args.latency, args.per_item, args.server_concurrency)
    print(
        f"{args.texts} texts, batches of {BATCH}, {args.concurrency} requests in flight per "
        f"client; server: {args.latency * 1000:g} ms + {args.per_item * 1000:g} ms/text per "
        f"request, {args.server_concurrency} at once; limit {limit:.2f} s. Each client runs in "
        "a fresh process; 'peak MiB' is its resident memory above its size before the call."
    )
    report: dict[str, Any] = {
        "texts": args.texts,
        "latency": args.latency,
        "per_item": args.per_item,
        "server_concurrency": args.server_concurrency,
        "concurrency": args.concurrency,
        "cold_start": args.cold_start,
        "limit": limit,
        "hfrag": HFRAG,
        "anchors": ANCHORS,
        "bare": BARE,
        "scenarios": {},
    }
    with steered_server() as server:
        for key, (title, faults) in scenarios(args).items():
            if args.only and key not in args.only:
                continue
            rows = run_scenario(server, args, faults)
            floor = limit + (args.cold_start if key == "cold" else 0.0)
            print_table(title, rows, floor)
            report["scenarios"][key] = {"title": title, "limit": floor, "rows": rows}
        if not args.only or "scaling" in args.only:
            report["scaling"] = run_scaling(server, args)
    if args.plot and report.get("scaling"):
        plot(report["scaling"], args, args.plot)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.015, help="server seconds per request")
    parser.add_argument("--per-item", type=float, default=0.0002, help="server seconds per text")
    parser.add_argument("--server-concurrency", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8, help="client requests in flight")
    parser.add_argument("--cold-start", type=float, default=3.0, help="seconds of 503 loading")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--concurrencies", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--run-timeout", type=float, default=60.0, help="seconds per client")
    parser.add_argument("--only", nargs="*", help="clean, cold, faults, scaling")
    parser.add_argument("--quick", action="store_true", help="1,000 texts, small scaling run")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--plot", type=Path, help="save the scaling plot here (PNG)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.quick:  # smaller defaults; what was given explicitly stays
        quick = {"texts": 1000, "sizes": [500, 1000, 4000], "concurrencies": [1, 4, 8]}
        quick.update(cold_start=1.0, run_timeout=40.0)
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    report = run(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
