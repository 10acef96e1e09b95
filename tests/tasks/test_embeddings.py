"""The embeddings task client against the local server: correctness, batching, faults, inputs."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from hfrag.errors import (
    BackendError,
    ConfigurationError,
    InputError,
    InvalidRequestError,
    MalformedResponseError,
)
from hfrag.server.config import ServerConfig
from hfrag.server.faults import FaultConfig
from hfrag.server.testing import CannedResponse
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from tests.sockets import open_connections
from tests.tasks.conftest import EMBED_MODEL, expected, target_kwargs

ROUTER_PATH = f"/hf-inference/models/{EMBED_MODEL}/pipeline/feature-extraction"
FAST = {"max_retries": 8, "max_retry_wait": 0.05}


def corpus(n: int) -> list[str]:
    return [f"passage {i} about topic {i % 13} and item {i * 7 % 101}" for i in range(n)]


def job_threads() -> set[str]:
    """Live threads, less the loop's pooled resolver workers (reused and bounded, not per job)."""
    return {t.name for t in threading.enumerate() if not t.name.startswith("asyncio_")}


def client_for(target: str, url: str, **kw: Any) -> EmbeddingsClient:
    options = {k: kw.pop(k) for k in list(kw) if k in EmbeddingOptions.__dataclass_fields__}
    return EmbeddingsClient(**target_kwargs(target, url), options=EmbeddingOptions(**options), **kw)


def test_vectors_match_the_backend_in_input_order(server, target, embed):
    texts = corpus(100)
    out = embed(client_for(target, server.url, batch_size=8), texts)
    assert out.dtype == np.float32
    assert out.shape == (100, 384)
    np.testing.assert_allclose(out, expected(server, texts), rtol=1e-5, atol=1e-6)
    assert sum(server.counters.texts_ok.values()) == 100


def test_thousand_texts_with_faults_come_back_whole_and_in_order(make_server, target, embed):
    srv = make_server(ServerConfig(max_client_batch_size=32))
    srv.set_faults(
        FaultConfig(
            seed=11,
            p_loading=0.04,
            estimated_time=0.01,
            p_rate_limit=0.04,
            retry_after=0.01,
            p_500=0.03,
            p_502=0.03,
            p_drop=0.03,
            p_truncate=0.03,
        )
    )
    texts = corpus(1000)
    client = client_for(target, srv.url, batch_size=64, max_concurrency=4, **FAST)
    out = embed(client, texts)
    np.testing.assert_allclose(out, expected(srv, texts), rtol=1e-5, atol=1e-6)
    failures = sum(n for (path, status), n in srv.counters.requests.items() if status != 200)
    assert failures > 0, "the fault mix must actually have fired"
    # Every text was answered exactly once: nothing lost, nothing sent again after success.
    assert set(srv.counters.texts_ok) == set(texts)
    assert max(srv.counters.texts_ok.values()) == 1


def test_too_large_batch_is_split_and_the_size_remembered(make_server, embed):
    srv = make_server(ServerConfig(max_client_batch_size=16))
    client = client_for("router", srv.url, batch_size=50, max_concurrency=1)
    texts = corpus(200)
    out = embed(client, texts)
    np.testing.assert_allclose(out, expected(srv, texts), rtol=1e-5, atol=1e-6)
    # TEI answers 413 (older) or 422 with its batch-size message; either is split, once.
    assert srv.counters.total(status=413) + srv.counters.total(status=422) == 1
    sizes = srv.counters.batch_sizes
    assert sizes[0] == 50
    assert max(sizes[1:]) <= 16


def test_413_without_a_limit_halves_the_batch(server, embed):
    server.script(ROUTER_PATH, CannedResponse(413, "Payload Too Large", content_type="text/plain"))
    client = client_for("router", server.url, batch_size=40, max_concurrency=1)
    texts = corpus(80)
    out = embed(client, texts)
    np.testing.assert_allclose(out, expected(server, texts), rtol=1e-5, atol=1e-6)
    ok_sizes = server.counters.batch_sizes[1:]  # the first request got the canned 413
    assert max(ok_sizes) <= 20


def test_a_single_input_too_large_for_any_batch_is_an_input_error(server, embed):
    server.script(ROUTER_PATH, CannedResponse(413, "Payload Too Large", content_type="text/plain"))
    client = client_for("router", server.url, batch_size=1)
    with pytest.raises(InvalidRequestError) as info:
        embed(client, ["just one"])
    assert info.value.positions == (0,)


def test_endpoint_info_batch_limit_is_respected_up_front(make_server, embed):
    srv = make_server(ServerConfig(max_client_batch_size=16))
    client = client_for("endpoint", srv.url, batch_size=100)
    embed(client, corpus(100))
    embed(client, corpus(50))
    assert srv.counters.total(status=413) + srv.counters.total(status=422) == 0
    assert max(srv.counters.batch_sizes) <= 16
    assert srv.counters.total("/info") == 1


def test_concurrency_is_bounded(make_server, embed):
    srv = make_server(ServerConfig())
    srv.set_faults(FaultConfig(latency=0.05))
    client = client_for("endpoint", srv.url, batch_size=4, max_concurrency=3)
    embed(client, corpus(48))
    assert srv.counters.max_in_flight == 3


def test_single_string_answered_1d_is_accepted(server, embed):
    server.script(ROUTER_PATH, CannedResponse(200, [0.5, 0.25, 0.125]))
    out = embed(client_for("router", server.url), ["one"])
    np.testing.assert_allclose(out, [[0.5, 0.25, 0.125]])


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_token_level_output_is_pooled(server, target, embed, pooling):
    texts = ["short text", "a somewhat longer text with more tokens in it", "x"]
    kwargs: dict[str, Any] = {"pooling": pooling}
    if target == "router":
        client = EmbeddingsClient(
            model="hfrag/hash-embed-tokens",
            router_url=server.url,
            options=EmbeddingOptions(**kwargs),
        )
    else:
        path = "/embed"
        tokens = server.config.model("hfrag/hash-embed-tokens").backend
        payload = [tokens.token_embeddings(t).tolist() for t in texts]
        server.script(path, CannedResponse(200, payload))
        client = EmbeddingsClient(
            endpoint_url=server.url + path, options=EmbeddingOptions(**kwargs)
        )
    out = embed(client, texts)
    backend = server.config.model("hfrag/hash-embed-tokens").backend
    for row, text in zip(out, texts, strict=True):
        tokens = np.asarray(backend.token_embeddings(text), dtype=np.float64)
        want = tokens.mean(axis=0) if pooling == "mean" else tokens[0]
        want = want / np.linalg.norm(want)
        np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-5)


def test_pooled_token_output_keeps_its_scale_with_normalize_false(server):
    server.script("/embed", CannedResponse(200, [[[3.0, 4.0], [5.0, 12.0]], [[0.0, 2.0]]]))
    client = client_for("endpoint", server.url + "/embed", normalize=False)
    np.testing.assert_allclose(client.embed(["a", "b"]), [[4.0, 8.0], [0.0, 2.0]])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], "2 vectors for 3 inputs"),
        ([[1.0, 2.0], [1.0, 2.0, 3.0], [1.0, 2.0]], "different shapes"),
        ([["a", "b"], ["c", "d"], ["e", "f"]], "non-numeric"),
        ([[True, False], [True, False], [True, False]], "non-numeric"),
        ([[], [], []], "empty vectors"),
        ({"embeddings": [[1.0]]}, "expected a JSON array"),
        (b"[[NaN, 1.0], [1.0, 1.0], [1.0, 1.0]]", "NaN or infinite"),
        (b"[[Infinity, 1.0], [1.0, 1.0], [1.0, 1.0]]", "NaN or infinite"),
        ([[[1.0, 2.0]], [[1.0, 2.0, 3.0]], [[1.0, 2.0]]], "different shapes"),
    ],
)
def test_malformed_responses_name_the_batch(server, embed, body, words):
    canned = CannedResponse(200, body, content_type="application/json")
    server.script(ROUTER_PATH, canned)
    client = client_for("router", server.url, batch_size=3)
    with pytest.raises(MalformedResponseError) as info:
        embed(client, ["a b", "c d", "e f"])
    assert words in str(info.value)
    assert "inputs 0-2" in str(info.value)
    assert info.value.positions == (0, 1, 2)


def test_inconsistent_dimension_across_batches(server, embed):
    server.script(
        ROUTER_PATH,
        CannedResponse(200, [[1.0, 0.0], [0.0, 1.0]]),
        CannedResponse(200, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    )
    client = client_for("router", server.url, batch_size=2, max_concurrency=1)
    with pytest.raises(MalformedResponseError, match="earlier batches had 2") as info:
        embed(client, ["a", "b", "c", "d"])
    assert info.value.positions == (2, 3)


def test_empty_list_sends_nothing(server, target, embed):
    out = embed(client_for(target, server.url), [])
    assert out.shape[0] == 0
    assert server.counters.total() == 0


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_empty_text_is_refused_before_sending(server, embed, bad):
    texts = ["fine", bad, "also fine", bad]
    with pytest.raises(InputError) as info:
        embed(client_for("endpoint", server.url), texts)
    assert info.value.positions == (1, 3)
    assert "1, 3" in str(info.value)
    assert server.counters.total() == 0


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["nested"]])
def test_non_string_is_a_type_error_naming_its_position(server, embed, bad):
    with pytest.raises(TypeError, match="input 2 is"):
        embed(client_for("endpoint", server.url), ["a", "b", bad])
    assert server.counters.total() == 0


def test_a_bare_string_is_a_type_error(server, embed):
    with pytest.raises(TypeError, match="single string"):
        embed(client_for("endpoint", server.url), "not a list")


def test_text_is_sent_as_is(server, embed):
    texts = ["line one\nline two", "  leading and trailing  ", "tab\tseparated"]
    embed(client_for("endpoint", server.url), texts)
    assert server.counters.bodies[-1]["inputs"] == texts


def test_payload_options_sit_at_the_root_and_none_is_dropped(server, embed):
    embed(client_for("router", server.url), ["hello"])
    assert server.counters.bodies[-1] == {"inputs": ["hello"], "truncate": True}
    client = client_for(
        "router",
        server.url,
        normalize=False,
        truncate=False,
        truncation_direction="left",
        dimensions=64,
    )
    out = embed(client, ["hello"])
    assert server.counters.bodies[-1] == {
        "inputs": ["hello"],
        "normalize": False,
        "truncate": False,
        "truncation_direction": "left",
        "dimensions": 64,
    }
    assert out.shape == (1, 64)


def test_query_and_document_prompts_and_instructions(server):
    client = client_for(
        "endpoint",
        server.url,
        query_prompt_name="query",
        document_prompt_name="document",
    )
    query = client.embed_query("where is the tower")
    assert server.counters.bodies[-1]["prompt_name"] == "query"
    np.testing.assert_allclose(query, expected(server, ["query: where is the tower"])[0], atol=1e-6)
    docs = client.embed(["the tower is in paris"])
    assert server.counters.bodies[-1]["prompt_name"] == "document"
    np.testing.assert_allclose(
        docs, expected(server, ["passage: the tower is in paris"]), atol=1e-6
    )

    plain = client_for(
        "endpoint", server.url, query_instruction="Query: ", document_instruction="Doc: "
    )
    plain.embed_query("q")
    assert server.counters.bodies[-1]["inputs"] == ["Query: q"]
    plain.embed(["d"])
    assert server.counters.bodies[-1]["inputs"] == ["Doc: d"]


def test_failure_after_retries_names_the_inputs_not_embedded(server, embed):
    dim2 = [[1.0, 0.0]] * 10
    server.script(ROUTER_PATH, CannedResponse(200, dim2), CannedResponse(200, dim2))
    server.set_faults(FaultConfig(p_500=1.0), route=ROUTER_PATH)
    client = client_for("router", server.url, batch_size=10, max_concurrency=1, max_retries=1)
    with pytest.raises(BackendError) as info:
        embed(client, corpus(35))
    assert info.value.status == 500
    assert info.value.positions == tuple(range(20, 35))
    assert "20-34" in str(info.value)


def test_failure_cancels_the_rest_and_leaves_nothing_behind(make_server, embed):
    srv = make_server(ServerConfig())
    client = client_for("endpoint", srv.url, batch_size=5, max_concurrency=4, max_retries=0)
    client.embed(["warm up"])  # starts hfrag's I/O thread once
    threads_before = job_threads()
    srv.set_faults(FaultConfig(seed=3, p_500=0.5, latency=0.05))
    with pytest.raises(BackendError) as info:
        embed(client, corpus(200))
    assert info.value.positions  # something was not embedded, and the error says what
    # Requests already on the wire may reach the (busy) server a little later; after that,
    # nothing new may arrive: 40 batches at 50 ms each would keep coming for longer than this.
    time.sleep(0.3)
    received = len(srv.counters.headers)
    time.sleep(0.5)
    assert len(srv.counters.headers) == received, "batches kept going after the failure"
    assert received < 40
    assert job_threads() - threads_before == set()  # no thread started by the job is left
    client.close()
    assert open_connections(int(srv.url.rsplit(":", 1)[1])) == 0


async def test_cancelling_the_caller_stops_the_job(make_server):
    srv = make_server(ServerConfig())
    srv.set_faults(FaultConfig(latency=0.2))
    client = client_for("endpoint", srv.url, batch_size=2, max_concurrency=2)
    task = asyncio.ensure_future(client.aembed(corpus(100)))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)  # requests already on the wire reach the server
    received = len(srv.counters.headers)  # requests that reached the server, answered or not
    await asyncio.sleep(0.5)
    assert len(srv.counters.headers) == received
    assert received < 50
    await client.aclose()


def test_sync_call_from_inside_a_running_loop(server):
    client = client_for("endpoint", server.url)

    async def inside() -> np.ndarray:
        return client.embed(["from a coroutine"])  # as a Jupyter cell would

    out = asyncio.run(inside())
    again = asyncio.run(client.aembed(["from a coroutine"]))
    np.testing.assert_array_equal(out, again)


def test_show_progress_draws_a_bar(server, capsys):
    client = client_for("endpoint", server.url, show_progress=True, batch_size=10)
    client.embed(corpus(30))
    assert "30/30" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "neither was given"),
        ({"model": "a/b", "endpoint_url": "http://127.0.0.1:1"}, "not both"),
        ({"model": "http://127.0.0.1:1/embed"}, "endpoint_url"),
        ({"endpoint_url": "127.0.0.1:8080"}, "absolute"),
        ({"model": "a/b", "router_url": "ftp://x"}, "router_url"),
    ],
)
def test_target_errors_say_what_to_do(kwargs, words):
    with pytest.raises(ConfigurationError, match=words):
        EmbeddingsClient(**kwargs)


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 0},
        {"max_concurrency": 0},
        {"dimensions": 0},
        {"pooling": "max"},
        {"truncation_direction": "middle"},
    ],
)
def test_bad_options_are_configuration_errors(options):
    with pytest.raises(ConfigurationError):
        EmbeddingOptions(**options)


def test_a_with_block_closes_the_clients_connections(server):
    port = int(server.url.rsplit(":", 1)[1])
    with EmbeddingsClient(endpoint_url=server.url) as client:
        client.embed(["one", "two"])
        assert open_connections(port) >= 1
    assert open_connections(port) == 0


async def test_an_async_with_block_closes_the_clients_connections(server):
    port = int(server.url.rsplit(":", 1)[1])
    async with EmbeddingsClient(endpoint_url=server.url) as client:
        await client.aembed(["one", "two"])
        assert open_connections(port) >= 1
    assert open_connections(port) == 0
