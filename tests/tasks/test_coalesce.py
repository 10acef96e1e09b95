"""Coalesced queries against the local server: fewer requests, each caller its own vector, errors
only where their input caused them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from hfrag.errors import InputError, InvalidRequestError
from hfrag.server import FaultConfig, ServerConfig
from hfrag.server.testing import ServerHandle, serve_in_thread
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from hfrag.tasks.budget import forget_budgets
from tests.tasks.conftest import expected

QUERIES = [f"question {i} about topic {i % 7}" for i in range(100)]


@pytest.fixture
def srv() -> Iterator[ServerHandle]:
    forget_budgets()
    with serve_in_thread(ServerConfig()) as handle:
        handle.set_faults(FaultConfig(latency=0.01))
        yield handle


def posts(server: ServerHandle) -> list[int]:
    """The sizes of the embedding requests the server answered."""
    return list(server.counters.batch_sizes)


def test_concurrent_queries_share_requests_and_each_gets_its_own_vector(
    srv: ServerHandle,
) -> None:
    client = EmbeddingsClient(endpoint_url=srv.url)

    async def ask() -> list[np.ndarray]:
        return list(await asyncio.gather(*(client.aembed_query(q) for q in QUERIES)))

    vectors = asyncio.run(ask())
    np.testing.assert_allclose(np.stack(vectors), expected(srv, QUERIES), atol=1e-6)
    sizes = posts(srv)
    assert sum(sizes) == len(QUERIES)
    assert len(sizes) <= len(QUERIES) // 5


def test_queries_from_many_threads_are_joined_too(srv: ServerHandle) -> None:
    client = EmbeddingsClient(endpoint_url=srv.url)
    got: dict[int, np.ndarray] = {}
    start = threading.Barrier(40)

    def ask(i: int) -> None:
        start.wait()
        got[i] = client.embed_query(QUERIES[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    want = expected(srv, QUERIES[:40])
    for i in range(40):
        np.testing.assert_allclose(got[i], want[i], atol=1e-6)
    assert len(posts(srv)) < 40


def test_a_lone_query_goes_alone(srv: ServerHandle) -> None:
    client = EmbeddingsClient(endpoint_url=srv.url)
    for query in QUERIES[:3]:
        client.embed_query(query)
    assert posts(srv) == [1, 1, 1]


def test_a_window_of_zero_sends_every_query_alone(srv: ServerHandle) -> None:
    client = EmbeddingsClient(endpoint_url=srv.url, options=EmbeddingOptions(coalesce_window=0))

    async def ask() -> list[np.ndarray]:
        return list(await asyncio.gather(*(client.aembed_query(q) for q in QUERIES[:20])))

    asyncio.run(ask())
    assert posts(srv) == [1] * 20


@pytest.mark.parametrize("long_inputs", ["ignore", "warn"])
def test_an_input_error_reaches_only_the_caller_whose_query_caused_it(
    srv: ServerHandle, long_inputs: str
) -> None:
    # "ignore": the server refuses the long query (413), the batch is split down to it;
    # "warn": hfrag counts its tokens first and refuses it before sending (InputError).
    options = EmbeddingOptions(truncate=False, long_inputs=long_inputs)  # type: ignore[arg-type]
    client = EmbeddingsClient(endpoint_url=srv.url, options=options)
    too_long = " ".join(["word"] * 2000)  # beyond the model's 512 tokens, and not truncated
    asked = [*QUERIES[:10], too_long, *QUERIES[10:30]]

    async def ask() -> list[object]:
        first = asyncio.ensure_future(client.aembed_query("keeps one request in flight"))
        await asyncio.sleep(0.002)
        calls = (client.aembed_query(q) for q in asked)
        return [*await asyncio.gather(*calls, return_exceptions=True), await first]

    answers = asyncio.run(ask())[:-1]
    failed = [i for i, answer in enumerate(answers) if isinstance(answer, BaseException)]
    assert failed == [10]
    error = answers[10]
    if long_inputs == "ignore":
        assert isinstance(error, InvalidRequestError)
        assert error.status == 413
    else:
        assert isinstance(error, InputError)
    assert error.positions == (0,)
    good = [q for q in asked if q != too_long]
    got = np.stack([a for a in answers if isinstance(a, np.ndarray)])
    np.testing.assert_allclose(got, expected(srv, good), atol=1e-6)
    assert len(posts(srv)) < len(asked) // 2  # the others still went together


def test_a_caller_that_gives_up_leaves_the_others_their_vectors(srv: ServerHandle) -> None:
    srv.set_faults(FaultConfig(latency=0.2))
    client = EmbeddingsClient(endpoint_url=srv.url)

    async def ask() -> list[object]:
        first = asyncio.ensure_future(client.aembed_query("keeps the endpoint busy"))
        await asyncio.sleep(0.05)
        tasks = [asyncio.ensure_future(client.aembed_query(q)) for q in QUERIES[:10]]
        await asyncio.sleep(0.01)
        tasks[3].cancel()
        return list(await asyncio.gather(first, *tasks, return_exceptions=True))

    answers = asyncio.run(ask())
    assert isinstance(answers[4], asyncio.CancelledError)
    kept = [q for i, q in enumerate(QUERIES[:10]) if i != 3]
    got = np.stack([a for a in answers[1:] if isinstance(a, np.ndarray)])
    np.testing.assert_allclose(got, expected(srv, kept), atol=1e-6)
