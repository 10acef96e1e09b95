"""The Embedder called in this process, as a Spark or Ray worker calls it: formats, settings,
errors, and the capacity arithmetic. No Ray cluster is needed here (see test_ray_data.py)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hfrag.errors import ConfigurationError, InputError, InvalidRequestError
from hfrag.ray import WAVES, Embedder, plan_embedding
from hfrag.server import ServerConfig
from hfrag.server.testing import CannedResponse
from hfrag.transport import Secret
from tests.ray.conftest import rows
from tests.tasks.conftest import expected

TOKEN = "hf_PLANTEDrayTOKEN4567"


def texts(n: int, offset: int = 0) -> list[str]:
    return [row["text"] for row in rows(n, offset)]


def as_format(kind: str, n: int, offset: int = 0) -> Any:
    data = {"id": np.arange(offset, offset + n), "text": np.array(texts(n, offset), dtype=object)}
    if kind == "numpy":
        return data
    if kind == "pandas":
        return pd.DataFrame(data)
    return pa.table({"id": data["id"], "text": pa.array(texts(n, offset))})


def vectors_of(batch: Any, column: str = "embedding") -> np.ndarray:
    if isinstance(batch, dict):
        return batch[column]
    if isinstance(batch, pd.DataFrame):
        cells = batch[column].to_list()
        return np.stack(cells) if cells else np.zeros((0, 0), dtype=np.float32)
    flat = np.asarray(batch.column(column).combine_chunks().flatten())
    return flat.reshape(batch.num_rows, -1) if batch.num_rows else flat.reshape(0, 0)


@pytest.mark.parametrize("kind", ["numpy", "pandas", "pyarrow"])
def test_each_format_comes_back_in_its_format_with_float32_vectors(server, kind):
    embedder = Embedder(endpoint_url=server.url, batch_size=8, max_concurrency=2)
    batch = as_format(kind, 50)
    out = embedder(batch)
    assert type(out) is type(batch)
    got = vectors_of(out)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected(server, texts(50)), rtol=1e-5, atol=1e-6)
    if kind == "pyarrow":
        assert out.schema.field("embedding").type == pa.list_(pa.float32(), 384)
        assert out.column_names == ["id", "text", "embedding"]
    elif kind == "numpy":
        assert out["embedding"].shape == (50, 384)
        assert set(out) == {"id", "text", "embedding"}
    else:
        assert list(out.columns) == ["id", "text", "embedding"]
        assert "embedding" not in batch.columns  # the caller's frame is left alone
    assert sum(server.counters.texts_ok.values()) == 50


def test_pandas_rows_keep_their_index(server):
    # Spark's mapInPandas and filtered frames hand over frames whose index is not 0..n-1.
    frame = as_format("pandas", 6).set_index(pd.Index([10, 3, 7, 1, 0, 99]))
    out = Embedder(endpoint_url=server.url)(frame)
    got = np.stack(out.loc[[10, 3, 7, 1, 0, 99], "embedding"].to_list())
    np.testing.assert_allclose(got, expected(server, texts(6)), rtol=1e-5, atol=1e-6)


def test_an_existing_output_column_is_replaced(server):
    table = as_format("pyarrow", 4).append_column("embedding", pa.array([1, 2, 3, 4]))
    out = Embedder(endpoint_url=server.url)(table)
    assert out.column_names == ["id", "text", "embedding"]
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 384)


@pytest.mark.parametrize("kind", ["numpy", "pandas", "pyarrow"])
def test_an_empty_batch_sends_nothing(server, kind):
    embedder = Embedder(endpoint_url=server.url)
    out = embedder(as_format(kind, 0))
    assert len(vectors_of(out)) == 0
    assert server.counters.total() == 0


def test_the_dimension_of_empty_batches_follows_the_first_answer(server):
    embedder = Embedder(endpoint_url=server.url)
    embedder(as_format("numpy", 3))
    assert embedder(as_format("numpy", 0))["embedding"].shape == (0, 384)


def test_a_changed_dimension_fails_the_batch(server):
    embedder = Embedder(endpoint_url=server.url)
    embedder(as_format("numpy", 2))
    server.script("/", CannedResponse(200, [[0.1, 0.2], [0.3, 0.4]]))
    with pytest.raises(Exception, match="2 dimensions after 384") as info:
        embedder(as_format("numpy", 2))
    assert info.value.positions == (0, 1)


def test_query_kind_uses_the_query_prompt(server):
    out = Embedder(endpoint_url=server.url, kind="query", query_prompt_name="query")(
        as_format("numpy", 2)
    )
    assert server.counters.bodies[-1]["prompt_name"] == "query"
    assert out["embedding"].shape == (2, 384)


def test_a_missing_column_names_the_columns_there(server):
    with pytest.raises(ConfigurationError, match=r"no column 'body'.*\['id', 'text'\]"):
        Embedder("body", endpoint_url=server.url)(as_format("pandas", 2))


@pytest.mark.parametrize(
    ("values", "error"),
    [(["fine", None], TypeError), (["fine", "   "], InputError), ([1, 2], TypeError)],
)
def test_bad_cells_fail_before_anything_is_sent(server, values, error):
    with pytest.raises(error, match="1" if error is InputError else "input"):
        Embedder(endpoint_url=server.url)(pa.table({"text": values}))
    assert server.counters.total() == 0


def test_an_unknown_batch_type_is_a_type_error(server):
    with pytest.raises(TypeError, match=r"pyarrow\.Table"):
        Embedder(endpoint_url=server.url)([{"text": "a"}])


def test_settings_are_the_adapters_with_their_defaults(server):
    embedder = Embedder(endpoint_url=server.url, api_key=TOKEN, normalize=False, timeout=7)
    client = embedder.client
    assert client.options.normalize is False
    assert client.options.batch_size == "auto"  # the client's default, declared once there
    assert client.config.timeout == 7
    assert client.config.token == Secret(TOKEN)
    assert TOKEN not in repr(embedder)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"endpoint_url": "http://127.0.0.1:1", "batchsize": 4}, "did you mean batch_size"),
        ({"endpoint_url": "http://127.0.0.1:1", "max_concurency": 4}, "max_concurrency"),
        ({"endpoint_url": "http://127.0.0.1:1", "token": "a", "api_key": "b"}, "repeats"),
        ({"endpoint_url": "http://127.0.0.1:1", "batch_size": 0}, "batch_size"),
        ({}, "neither was given"),
        ({"endpoint_url": "http://127.0.0.1:1", "output_column": "text"}, "overwrite"),
        ({"endpoint_url": "http://127.0.0.1:1", "column": ""}, "non-empty"),
        ({"endpoint_url": "http://127.0.0.1:1", "kind": "passage"}, "kind"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        Embedder(**kwargs)


def test_a_failed_batch_raises_with_its_positions_and_returns_nothing(make_server):
    srv = make_server(ServerConfig(max_client_batch_size=8))
    embedder = Embedder(endpoint_url=srv.url, batch_size=8, max_concurrency=1, max_retries=0)
    srv.script("/", CannedResponse(200, np.zeros((8, 384)).tolist()))
    srv.script("/", CannedResponse(400, {"error": "bad input", "error_type": "Validation"}))
    batch = as_format("pyarrow", 20)
    with pytest.raises(InvalidRequestError) as info:
        embedder(batch)
    assert info.value.positions == tuple(range(8, 20))
    assert batch.column_names == ["id", "text"]  # nothing was added to the caller's batch


def test_the_spark_recipe_shape_works_on_pandas_frames(server):
    # What mapInPandas does: an iterator of frames in, an iterator of frames out.
    def embed_partition(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        embedder = Embedder(endpoint_url=server.url, token=Secret(TOKEN))
        for frame in frames:
            yield embedder(frame)

    frames = [as_format("pandas", 5), as_format("pandas", 7, offset=5)]
    out = pd.concat(list(embed_partition(iter(frames))))
    got = np.stack(out["embedding"].to_list())
    np.testing.assert_allclose(got, expected(server, texts(12)), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_an_embedder_used_again_after_a_fork_builds_its_own_client(server):
    embedder = Embedder(endpoint_url=server.url)
    batch = {"text": np.array(["parent text", "another"], dtype=object)}
    embedder(batch)  # the parent's pool now holds an open connection
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            out = embedder({"text": np.array(["child text"], dtype=object)})
            want = expected(server, ["child text"])
            code = 0 if np.allclose(out["embedding"], want, atol=1e-6) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert embedder(batch)["embedding"].shape == (2, 384)  # the parent's client still works
    assert server.counters.texts_ok["child text"] == 1


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_a_secret_pickles_with_its_value_and_stays_masked(protocol):
    # Handing a Secret to something that pickles it (Ray's constructor arguments) is the
    # explicit choice: the worker gets the value; the text forms still hide it.
    clone = pickle.loads(pickle.dumps(Secret(TOKEN), protocol=protocol))
    assert clone == Secret(TOKEN)
    assert clone.get_secret_value() == TOKEN
    assert TOKEN not in repr(clone)
    assert TOKEN not in str({"token": clone})


def test_an_embedder_pickles_into_a_working_copy_without_a_string_token(server):
    # As every client: a token given as a string stays in this process; a Secret travels.
    embedder = Embedder(endpoint_url=server.url, token=TOKEN)
    batch = {"text": np.array(["a"], dtype=object)}
    embedder(batch)  # a live pool and lock exist now
    data = pickle.dumps(embedder)
    assert TOKEN.encode() not in data
    pickle.loads(data)(batch)
    assert "authorization" not in server.counters.headers[-1]
    travels = pickle.loads(pickle.dumps(Embedder(endpoint_url=server.url, token=Secret(TOKEN))))
    out = travels({"text": np.array(["b"], dtype=object)})
    np.testing.assert_allclose(out["embedding"], expected(server, ["b"]), atol=1e-6)
    assert server.counters.headers[-1]["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(travels)
    embedder(batch)  # the original keeps its token and its client
    assert server.counters.headers[-1]["authorization"] == f"Bearer {TOKEN}"


# -- the capacity arithmetic ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workers", "cap", "max_concurrency", "workers_used", "per_worker"),
    [
        (4, 512, None, 4, 128),
        (4, 6, None, 4, 1),
        (2, 7, None, 2, 3),
        (8, 3, None, 3, 1),
        (1, 16, None, 1, 16),
        (4, 64, 8, 4, 8),
        (3, None, None, 3, 64),  # unknown capacity: each adaptive worker up to the ceiling
        (3, None, 10, 3, 10),
    ],
)
def test_plan_never_exceeds_the_capacity(workers, cap, max_concurrency, workers_used, per_worker):
    plan = plan_embedding(workers=workers, max_in_flight=cap, max_concurrency=max_concurrency)
    assert (plan.workers, plan.per_worker) == (workers_used, per_worker)
    assert plan.in_flight == workers_used * per_worker
    if cap is not None:
        assert plan.in_flight <= cap
    assert plan.rows_per_call == plan.request_batch * per_worker * WAVES


def test_plan_for_every_small_capacity_stays_within_it():
    for cap in range(1, 40):
        for workers in range(1, 10):
            plan = plan_embedding(workers=workers, max_in_flight=cap)
            assert 1 <= plan.in_flight <= cap
            assert plan.in_flight > cap - plan.workers  # floor division loses < one per worker


def test_plan_respects_the_servers_batch_limit_and_explicit_sizes():
    plan = plan_embedding(workers=2, max_in_flight=8, batch_size=100, server_batch_limit=16)
    assert plan.request_batch == 16
    assert plan_embedding(workers=2, max_in_flight=8, rows_per_call=10).rows_per_call == 10


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workers": 0, "max_in_flight": 4},
        {"workers": 2, "max_in_flight": 0},
        {"workers": 2, "max_in_flight": 2.5},
        {"workers": True, "max_in_flight": 4},
        {"workers": 2, "max_in_flight": 4, "rows_per_call": -1},
    ],
)
def test_plan_rejects_nonsense(kwargs):
    with pytest.raises(ConfigurationError):
        plan_embedding(**kwargs)


# -- imports --------------------------------------------------------------------------------------

_CHILD = """
import json, sys
for name in sys.argv[1:]:
    __import__(name)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("module", ["hfrag", "hfrag.ray"])
def test_importing_does_not_import_ray(module):
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, module],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(out.stdout))
    assert module in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in ("ray", "pyarrow", "pandas"))
    assert heavy == []
