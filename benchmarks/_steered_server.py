"""hfrag's local server in a child process that the benchmark steers over stdin.

``hfrag serve`` can only be configured at start; the bulk-embedding benchmark needs more from
one server: to restart the cold-start clock and the fault sequence right before each client
starts (so every client meets the same faults), and to read how many requests each client sent.
This runs ``hfrag.server.testing.ServerHandle`` (the test harness, the same app as ``hfrag
serve``) in its own process, so the server's CPU is not the client's, and answers one line per
command on stdin:

- ``faults {json}``: install ``FaultConfig(**json)`` server-wide and clear the counters;
- ``reset``: clear the counters and restart the current faults' cold-start clock and seed;
- ``stats``: a JSON line ``{"requests": n, "statuses": {"200": n, ...}, "max_open": n,
  "max_in_flight": n, "cpu": s}`` (every request answered since the last reset, GET ``/info``
  included; status -1 is a dropped connection; ``cpu``: the server process's CPU seconds since
  then).

It serves the hashing models under the router layout, with one of them also called
``BAAI/bge-small-en-v1.5`` (the model id the reference clients' docs use) and primary, so
``POST /``, ``/embed`` and ``/hf-inference/models/BAAI/bge-small-en-v1.5/...`` all embed.

Usage (by ``bench_embeddings.py``): ``python benchmarks/_steered_server.py DIM MAX_BATCH``;
``bench_adaptive.py`` adds ``real`` to serve the real int8 MiniLM embedder instead.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

from hfrag.server import FaultConfig, ModelSpec, ServerConfig, default_models
from hfrag.server.config import DEFAULT_PROMPTS
from hfrag.server.testing import ServerHandle

MODEL_ID = "BAAI/bge-small-en-v1.5"


def config(dim: int, max_batch: int) -> ServerConfig:
    models = default_models(embed_dim=dim)
    alias = ModelSpec(MODEL_ID, "embed", models[0].backend, prompts=dict(DEFAULT_PROMPTS))
    return ServerConfig(models=[alias, *models], max_client_batch_size=max_batch)


def real_config(max_batch: int) -> ServerConfig:
    """The real int8 MiniLM embedder (``--models real``), for ``bench_adaptive.py``."""
    from hfrag.server.models_real import real_models

    models = real_models("int8", generation=False)
    return ServerConfig(models=models, max_client_batch_size=max_batch)


def main() -> None:
    dim, max_batch = int(sys.argv[1]), int(sys.argv[2])
    real = sys.argv[3:] == ["real"]
    faults = FaultConfig()
    cpu_at_reset = time.process_time()
    with ServerHandle(real_config(max_batch) if real else config(dim, max_batch)) as srv:
        print(f"ready on {srv.url}", flush=True)
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command in ("faults", "reset"):
                if command == "faults":
                    faults = FaultConfig(**json.loads(arg))
                srv.counters.reset()
                srv.set_faults(faults)  # a fresh cold-start clock and fault sequence
                cpu_at_reset = time.process_time()
                reply: object = "ok"
            elif command == "stats":
                statuses: Counter[str] = Counter()
                for (_path, status), n in srv.counters.requests.items():
                    statuses[str(status)] += n
                reply = {
                    "requests": srv.counters.total(),
                    "statuses": dict(statuses),
                    "max_open": srv.counters.max_open,
                    "max_in_flight": srv.counters.max_in_flight,
                    "cpu": time.process_time() - cpu_at_reset,
                }
            else:
                reply = f"unknown command {command!r}"
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
