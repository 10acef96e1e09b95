"""hfrag as Ray Data's embedding stage, on a local 2-CPU Ray, against the local server.

Each test runs one Ray Data job (actor start-up dominates their time, so there are few).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from hfrag.errors import InferenceError, InvalidRequestError
from hfrag.ray import Embedder, embed_dataset
from hfrag.server import FaultConfig, ServerConfig
from hfrag.server.testing import CannedResponse
from tests.ray.conftest import rows
from tests.tasks.conftest import expected

ray = pytest.importorskip("ray")
from ray.data import ActorPoolStrategy  # noqa: E402

TOKEN = "hf_PLANTEDrayTOKEN4567"
AMBIENT = "hf_PLANTEDambientTOKEN890"
FAST = {"max_retries": 10, "max_retry_wait": 0.05}


def matrix(column: np.ndarray) -> np.ndarray:
    """A vector column read back in numpy format as ``(rows, dim)`` (Ray hands a fixed-size list
    back as an object array of 1-D arrays, a tensor column as a 2-D array)."""
    return np.stack(list(column)) if column.dtype == object else np.asarray(column)


def collect(ds: Any) -> dict[str, np.ndarray]:
    """Every row of ``ds`` as numpy columns, in the dataset's order."""
    batches = list(ds.iter_batches(batch_format="numpy", batch_size=None))
    return {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}


def session_files_containing(session: Path, needle: str) -> list[str]:
    """Files under Ray's session directory (logs included) whose bytes contain ``needle``."""
    found = []
    for path in session.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle.encode() in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_twenty_thousand_texts_with_faults_through_two_workers(ray_ready, make_server):
    cap = 4
    # 32-dimensional vectors: the point is 20,000 rows, not the JSON of 384 floats each.
    srv = make_server(
        ServerConfig.default(embed_dim=32, max_client_batch_size=32, max_concurrent_requests=cap)
    )
    srv.set_faults(
        FaultConfig(
            seed=12,
            p_loading=0.02,
            estimated_time=0.01,
            p_rate_limit=0.02,
            retry_after=0.01,
            p_500=0.02,
            p_502=0.02,
            p_drop=0.01,
            p_truncate=0.01,
            latency=0.03,  # latency-bound, so the requests in flight overlap
            max_concurrency=cap,
        )
    )
    data = rows(20_000)
    ds = ray.data.from_items(data, override_num_blocks=8)
    # max_in_flight is not given: the endpoint's /info says 4.
    out = collect(embed_dataset(ds, endpoint_url=srv.url, workers=2, **FAST))

    assert len(out["id"]) == 20_000
    assert sorted(out["id"].tolist()) == list(range(20_000))
    # Each row still holds its own text, and the vector of exactly that text.
    assert [data[i]["text"] for i in out["id"]] == out["text"].tolist()
    vectors = matrix(out["embedding"])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected(srv, out["text"]), rtol=1e-5, atol=1e-6)

    failures = sum(n for (_, status), n in srv.counters.requests.items() if status != 200)
    assert failures > 20, "the fault mix must actually have fired"
    # Every text answered exactly once: nothing lost, nothing sent again after success.
    assert len(srv.counters.texts_ok) == 20_000
    assert max(srv.counters.texts_ok.values()) == 1
    # Never more requests open at the server than the capacity, across both workers.
    assert 1 < srv.counters.max_open <= cap
    assert srv.counters.total("/info") <= 1 + 2  # once on the driver, once per worker client


def test_numpy_pandas_and_pyarrow_batches_through_ray(ray_ready, make_server):
    formats = ["numpy", "pandas", "pyarrow"]
    servers = {
        kind: make_server(ServerConfig.default(embed_dim=32, max_concurrent_requests=2))
        for kind in formats
    }
    for srv in servers.values():
        srv.set_faults(FaultConfig(latency=0.005))
    data = rows(600)
    ds = ray.data.from_items(data, override_num_blocks=3)
    for kind in formats:  # three stages, one per format, each with its own server
        ds = embed_dataset(
            ds,
            endpoint_url=servers[kind].url,
            output_column=f"vec_{kind}",
            batch_format=kind,
            workers=1,
            batch_size=16,
            num_cpus=0.25,
        )
    out = collect(ds)
    want = expected(servers["numpy"], out["text"])
    for kind in formats:
        got = matrix(out[f"vec_{kind}"])
        assert got.shape == (600, 32)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        srv = servers[kind]
        assert len(srv.counters.texts_ok) == 600
        assert max(srv.counters.texts_ok.values()) == 1
        assert srv.counters.max_open <= 2
        assert max(srv.counters.batch_sizes) <= 16
    assert sorted(out["id"].tolist()) == list(range(600))


def test_a_failed_batch_fails_its_task_with_the_typed_error_and_writes_nothing(
    ray_ready, make_server, tmp_path
):
    srv = make_server(ServerConfig(max_client_batch_size=10))
    # A hostile answer that echoes the credential: the error text must not carry it.
    srv.script("/", CannedResponse(400, {"error": f"bad input (Bearer {TOKEN})"}))
    ds = ray.data.from_items(rows(200), override_num_blocks=4)
    out = embed_dataset(
        ds,
        endpoint_url=srv.url,
        token=TOKEN,
        workers=1,
        max_in_flight=2,
        rows_per_call=50,
        max_retries=0,
    )
    with pytest.raises(InvalidRequestError) as info:
        out.write_parquet(str(tmp_path / "vectors"))
    error = info.value
    assert isinstance(error, InferenceError)
    assert error.status == 400
    assert error.positions is not None
    assert set(range(10)) <= set(error.positions) <= set(range(50))  # rows of its Ray batch
    assert TOKEN not in str(error)
    assert "***" in error.message

    # Whatever other batches wrote is whole and right; none of the failed request's rows is.
    failed_texts = set(srv.counters.bodies[0]["inputs"])
    written = [pq.read_table(p) for p in (tmp_path / "vectors").rglob("*.parquet")]
    for table in written:
        texts = table.column("text").to_pylist()
        assert not failed_texts & set(texts)
        vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
        np.testing.assert_allclose(vectors, expected(srv, texts), rtol=1e-5, atol=1e-6)
    assert session_files_containing(ray_ready, TOKEN) == []


def test_a_token_echoed_into_a_decoders_error_shows_nowhere(ray_ready, make_server, tmp_path):
    # The transport scrubs its own errors; this one is built by the OpenAI-form decoder, which
    # quotes the bad index: it is scrubbed where it leaves the worker's client.
    srv = make_server()
    data = [{"object": "embedding", "index": f"Bearer {TOKEN}", "embedding": [0.1, 0.2]}] * 8
    srv.script("/v1/embeddings", *[CannedResponse(200, {"object": "list", "data": data})] * 5)
    ds = ray.data.from_items(rows(8), override_num_blocks=1)
    out = embed_dataset(
        ds, endpoint_url=srv.url + "/v1", token=TOKEN, workers=1, rows_per_call=8, max_retries=0
    )
    with pytest.raises(InferenceError) as info:
        out.write_parquet(str(tmp_path / "vectors"))
    assert srv.counters.total("/v1/embeddings", 200) >= 1  # the echoing answer was read
    assert TOKEN not in str(info.value)
    assert "***" in str(info.value)
    assert session_files_containing(ray_ready, TOKEN) == []


def test_rays_own_task_retry_recovers_a_failed_batch(ray_ready, make_server):
    srv = make_server(ServerConfig(max_client_batch_size=10))
    srv.script("/", CannedResponse(400, {"error": "transient nonsense", "error_type": "x"}))
    ds = ray.data.from_items(rows(100), override_num_blocks=2)
    # The typed error pickles (InferenceError.__reduce__), so Ray matches it by class.
    ds.context.actor_task_retry_on_errors = [InferenceError]
    out = embed_dataset(
        ds,
        endpoint_url=srv.url,
        workers=1,
        max_in_flight=2,
        rows_per_call=50,
        max_retries=0,
        map_batches_args={"max_task_retries": 2},
    )
    got = collect(out)
    assert sorted(got["id"].tolist()) == list(range(100))
    np.testing.assert_allclose(
        matrix(got["embedding"]), expected(srv, got["text"]), rtol=1e-5, atol=1e-6
    )
    assert srv.counters.total(status=400) == 1
    assert len(srv.counters.texts_ok) == 100


def test_an_explicit_token_reaches_the_workers_and_shows_nowhere(ray_ready, make_server):
    # embed_dataset wraps the string in a Secret: it pickles with its value into the actors'
    # constructor arguments and has no text form that shows it.
    srv = make_server(ServerConfig(api_key=TOKEN))  # answers 401 without exactly this token
    ds = ray.data.from_items(rows(64), override_num_blocks=2)
    out = embed_dataset(ds, endpoint_url=srv.url, token=TOKEN, workers=2, max_in_flight=2)
    got = collect(out)
    assert len(got["id"]) == 64
    assert srv.counters.total(status=401) == 0
    assert srv.counters.total(status=200) > 0
    assert TOKEN not in str(out)
    assert TOKEN not in out.stats()
    assert session_files_containing(ray_ready, TOKEN) == []


class EnvReportingEmbedder(Embedder):
    """The Embedder, plus a column saying what HF_TOKEN its worker process sees."""

    def __call__(self, batch: Any) -> Any:
        out = super().__call__(batch)
        out["hf_token_seen"] = np.array([os.environ.get("HF_TOKEN", "")] * len(out["id"]))
        return out


def test_a_workers_ambient_token_is_not_sent_to_a_local_server(ray_ready, make_server):
    srv = make_server()
    ds = ray.data.from_items(rows(40), override_num_blocks=2)
    out = ds.map_batches(
        EnvReportingEmbedder,
        fn_constructor_kwargs={"endpoint_url": srv.url, "token": None},
        batch_format="numpy",
        compute=ActorPoolStrategy(size=1),
        num_cpus=0.25,
        runtime_env={"env_vars": {"HF_TOKEN": AMBIENT}},
    )
    got = collect(out)
    assert set(got["hf_token_seen"].tolist()) == {AMBIENT}  # the worker did have it
    assert srv.counters.total(status=200) > 0
    assert all("authorization" not in headers for headers in srv.counters.headers)


def test_adaptive_workers_reach_the_capacity_and_never_pass_it(ray_ready, make_server):
    # A hard cap (429 beyond 4): each of two workers' adaptive clients has a share of 2.
    cap = 4
    srv = make_server(ServerConfig.default(embed_dim=32, max_concurrent_requests=cap))
    srv.set_faults(FaultConfig(latency=0.02, max_concurrency=cap, max_queue=0))
    ds = ray.data.from_items(rows(4000), override_num_blocks=4)
    out = collect(embed_dataset(ds, endpoint_url=srv.url, workers=2, **FAST))
    assert sorted(out["id"].tolist()) == list(range(4000))
    assert srv.counters.total(status=429) == 0  # the split keeps the job within the capacity
    assert srv.counters.max_in_flight == cap  # and the adaptive clients reach it
