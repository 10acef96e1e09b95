"""The sparse-embeddings client against the local server: values, order, batching, faults,
errors with positions, deadline, credentials, progress, sync and async."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import numpy as np
import pytest

from hfrag.errors import (
    AuthenticationError,
    BackendError,
    ConfigurationError,
    InferenceTimeoutError,
    InputError,
    MalformedResponseError,
)
from hfrag.server.config import ServerConfig
from hfrag.server.faults import FaultConfig
from hfrag.server.testing import CannedResponse, ServerHandle
from hfrag.tasks import SparseEmbeddingsClient, SparseOptions, SparseVector

FAST = {"max_retries": 8, "max_retry_wait": 0.05}


def corpus(n: int) -> list[str]:
    return [f"passage {i} about topic {i % 13} and item {i * 7 % 101}" for i in range(n)]


def served(server: ServerHandle, texts: list[str]) -> list[dict[int, float]]:
    """What the server answers for ``texts`` when asked directly, one request per text."""
    out = []
    for text in texts:
        row = httpx.post(server.url + "/embed_sparse", json={"inputs": [text]}).json()[0]
        out.append({e["index"]: e["value"] for e in row})
    return out


def same(got: list[SparseVector], want: list[dict[int, float]]) -> bool:
    """Equal up to the float32 the client keeps."""
    return [v.as_dict() for v in got] == [
        {i: float(np.float32(x)) for i, x in row.items()} for row in want
    ]


def client(url: str, **kw: Any) -> SparseEmbeddingsClient:
    options = {k: kw.pop(k) for k in list(kw) if k in SparseOptions.__dataclass_fields__}
    return SparseEmbeddingsClient(endpoint_url=url, options=SparseOptions(**options), **kw)


def test_vectors_match_the_server_in_input_order(server: ServerHandle) -> None:
    texts = corpus(40)
    out = client(server.url, batch_size=7).embed(texts)
    assert same(out, served(server, texts))
    assert all(isinstance(v, SparseVector) for v in out)
    assert out[0].indices.dtype == np.int64
    assert out[0].values.dtype == np.float32
    assert all((np.diff(v.indices) > 0).all() for v in out)
    assert server.counters.total("/embed_sparse", 200) == 40 + 6  # 40 direct, 6 batches


async def test_async_gives_the_same_vectors(server: ServerHandle) -> None:
    texts = corpus(10)
    c = client(server.url, batch_size=3)
    got = await c.aembed(texts)
    assert got == await asyncio.to_thread(c.embed, texts)
    assert (await c.aembed_query("topic 3")) == c.embed_query("topic 3")


def test_batches_stay_within_the_servers_limit(make_server: Any) -> None:
    srv = make_server(ServerConfig(max_client_batch_size=5))
    out = client(srv.url, batch_size=32).embed(corpus(23))
    assert len(out) == 23
    assert max(srv.counters.batch_sizes) == 5


def test_faults_are_retried_and_nothing_is_lost(make_server: Any) -> None:
    srv = make_server(ServerConfig(max_client_batch_size=8))
    srv.set_faults(FaultConfig(seed=5, p_rate_limit=0.2, retry_after=0.01, p_500=0.1, p_drop=0.1))
    texts = corpus(120)
    out = client(srv.url, batch_size=8, **FAST).embed(texts)
    srv.set_faults(None)
    assert same(out, served(srv, texts))
    assert srv.counters.total("/embed_sparse", 429) + srv.counters.total("/embed_sparse", 500) > 0


def test_a_batch_rejected_as_too_large_is_split(server: ServerHandle) -> None:
    too_large = {"error": "batch size 4 > maximum allowed batch size 2", "error_type": "Validation"}
    server.script("/embed_sparse", CannedResponse(413, too_large))
    out = client(server.url, batch_size=4).embed(corpus(4))
    assert len(out) == 4
    assert server.counters.batch_sizes[-2:] == [2, 2]


def test_a_failed_batch_names_the_positions_it_cost(server: ServerHandle) -> None:
    server.set_faults(FaultConfig(p_500=1.0), route="/embed_sparse")
    with pytest.raises(BackendError) as info:
        client(server.url, batch_size=4, max_retries=0, max_concurrency=1).embed(corpus(10))
    assert info.value.positions == tuple(range(10))


def test_malformed_answers_are_typed_errors_naming_inputs(server: ServerHandle) -> None:
    for body, why in [
        ([[{"index": 1, "value": 0.5}]], "1 vectors for 2 inputs"),
        ([[{"index": -1, "value": 0.5}], []], "entries must be"),
        ([[{"index": 1, "value": "x"}], []], "entries must be"),
        ([[{"index": 1, "value": 1.0}, {"index": 1, "value": 2.0}], []], "an index appears twice"),
        ({"error": "not a list"}, "expected a list"),
        # beyond int64, beyond any float, beyond float32 (it would become inf there)
        ([[{"index": 2**63, "value": 1.0}], []], "entries must be"),
        ([[{"index": 1, "value": 10**400}], []], "entries must be"),
        ([[{"index": 1, "value": 1e39}], []], "entries must be"),
    ]:
        server.script("/embed_sparse", CannedResponse(200, body))
        with pytest.raises(MalformedResponseError, match=why) as info:
            client(server.url, max_retries=0).embed(["a b", "c d"])
        assert info.value.positions == (0, 1)


def test_bad_inputs_are_refused_before_sending(server: ServerHandle) -> None:
    c = client(server.url)
    with pytest.raises(InputError) as info:
        c.embed(["fine", "  ", "ok"])
    assert info.value.positions == (1,)
    with pytest.raises(TypeError):
        c.embed("a string")  # type: ignore[arg-type]
    assert c.embed([]) == []
    assert server.counters.total("/embed_sparse") == 0


def test_the_deadline_ends_the_whole_call(server: ServerHandle) -> None:
    server.set_faults(FaultConfig(latency=2.0), route="/embed_sparse")
    started = time.monotonic()
    with pytest.raises(InferenceTimeoutError):
        client(server.url, deadline=0.5, max_retries=0).embed(corpus(3))
    assert time.monotonic() - started < 1.9


def test_the_token_is_sent_and_a_wrong_one_is_refused(make_server: Any) -> None:
    srv = make_server(ServerConfig(api_key="secret"))
    assert len(client(srv.url, token="secret").embed(["a b"])) == 1
    assert srv.counters.headers[-1]["authorization"] == "Bearer secret"
    with pytest.raises(AuthenticationError) as info:
        client(srv.url, token="wrong", max_retries=0).embed(["a b"])
    assert "wrong" not in str(info.value)


def test_progress_is_reported_per_batch(server: ServerHandle) -> None:
    seen: list[tuple[int, int]] = []
    client(server.url, batch_size=4, progress=lambda d, t: seen.append((d, t))).embed(corpus(10))
    assert sorted(seen)[-1] == (10, 10)
    assert len(seen) == 3


def test_prompt_names_and_truncation_options_are_sent(server: ServerHandle) -> None:
    c = client(server.url, query_prompt_name="query", truncate=False, truncation_direction="left")
    c.embed_query("what")
    assert server.counters.bodies[-1] == {
        "inputs": ["what"],
        "truncate": False,
        "truncation_direction": "left",
        "prompt_name": "query",
    }


def test_model_ids_and_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="endpoint_url"):
        SparseEmbeddingsClient(model="naver/splade-v3")
    with pytest.raises(ConfigurationError):
        SparseOptions(batch_size=0)
    with pytest.raises(ConfigurationError):
        SparseOptions(long_inputs="shout")  # type: ignore[arg-type]


def test_batches_keep_within_max_batch_tokens(make_server: Any) -> None:
    srv = make_server(ServerConfig(max_batch_tokens=100))
    texts = ["word " * 8 + str(i) for i in range(12)]  # at most 44 tokens each by UTF-8 size
    out = client(srv.url).embed(texts)
    assert len(out) == 12
    assert max(srv.counters.batch_sizes) == 2  # 2 x 44 <= 100 < 3 x 44
