"""The adaptive engine against the local server with a capacity cap: rise, back off, ceiling,
one budget per endpoint across threads and event loops, token-capped batches.

The server serves ``max_concurrency`` requests at once and, with ``max_queue=0``, answers TEI's
429 "Model is overloaded" to any request beyond them: the capacity cap of a TEI deployment.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from hfrag.server import FaultConfig, ServerConfig
from hfrag.server.testing import ServerHandle, serve_in_thread
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from hfrag.tasks.adaptive import AdaptiveLimit
from hfrag.tasks.budget import budget_for, endpoint_key, forget_budgets
from tests.tasks.conftest import expected

TEXTS = [f"text number {i}" for i in range(1200)]


def capped(capacity: int, latency: float = 0.02, queue: int | None = 0) -> FaultConfig:
    return FaultConfig(
        latency=latency, latency_per_item=0.0002, max_concurrency=capacity, max_queue=queue
    )


@pytest.fixture
def srv() -> Iterator[ServerHandle]:
    forget_budgets()
    with serve_in_thread(ServerConfig(max_client_batch_size=16)) as handle:
        yield handle
    forget_budgets()


def budget_of(server: ServerHandle) -> object:
    return budget_for(endpoint_key(server.url, True), 64)


def test_the_limit_rises_to_the_capacity_and_backs_off_beyond_it(srv: ServerHandle) -> None:
    srv.set_faults(capped(8))
    client = EmbeddingsClient(endpoint_url=srv.url)
    for _ in range(2):
        vectors = client.embed(TEXTS)
    np.testing.assert_allclose(vectors, expected(srv, TEXTS), atol=1e-6)
    budget = budget_of(srv)
    assert srv.counters.max_in_flight == 8  # it reached the capacity (it started at 2)
    assert 7 <= budget.limit.limit <= 12  # type: ignore[attr-defined]
    # It probed past the capacity and was refused, then backed off: few refusals, no failure.
    refused = srv.counters.total(status=429)
    assert refused <= budget.sent // 4  # type: ignore[attr-defined]
    assert srv.counters.total("/", 200) == budget.answered  # type: ignore[attr-defined]


def test_a_small_endpoint_gets_no_more_than_it_serves(srv: ServerHandle) -> None:
    srv.set_faults(capped(2))
    client = EmbeddingsClient(endpoint_url=srv.url)
    vectors = client.embed(TEXTS[:400])
    np.testing.assert_allclose(vectors, expected(srv, TEXTS[:400]), atol=1e-6)
    budget = budget_of(srv)
    assert srv.counters.max_in_flight == 2  # it used the capacity...
    assert budget.limit.limit < 6  # type: ignore[attr-defined]  (...and stayed near it)
    assert srv.counters.total(status=429) <= budget.sent // 3  # type: ignore[attr-defined]


def test_rising_latency_holds_the_limit_down_without_any_429(srv: ServerHandle) -> None:
    # Two served at once, the rest queue without bound: more in flight only adds latency.
    srv.set_faults(capped(2, latency=0.01, queue=None))
    client = EmbeddingsClient(endpoint_url=srv.url)
    client.embed(TEXTS)
    assert srv.counters.total(status=429) == 0
    assert budget_of(srv).limit.limit <= 16  # type: ignore[attr-defined]  (slow start: 64)
    assert srv.counters.max_open <= 16  # slow start overshoots a little, far below 64


def test_the_ceiling_is_a_setting(srv: ServerHandle) -> None:
    srv.set_faults(capped(32, latency=0.01))
    client = EmbeddingsClient(endpoint_url=srv.url, options=EmbeddingOptions(concurrency_ceiling=3))
    client.embed(TEXTS)
    client.embed(TEXTS)
    assert srv.counters.max_open == 3


def test_a_fixed_number_keeps_a_fixed_count_outside_any_budget(srv: ServerHandle) -> None:
    srv.set_faults(capped(32, latency=0.01))
    client = EmbeddingsClient(endpoint_url=srv.url, options=EmbeddingOptions(max_concurrency=5))
    client.embed(TEXTS)
    assert srv.counters.max_open == 5
    assert budget_of(srv).sent == 0  # type: ignore[attr-defined]


def test_one_budget_is_shared_by_clients_threads_and_event_loops(srv: ServerHandle) -> None:
    # Capacity 4, no queue: each caller alone would take 4 and three at once would be refused.
    srv.set_faults(capped(4))
    options = EmbeddingOptions(concurrency_ceiling=4)
    clients = [EmbeddingsClient(endpoint_url=srv.url, options=options) for _ in range(3)]
    results: dict[int, np.ndarray] = {}

    def in_thread(i: int) -> None:
        if i == 0:
            results[i] = clients[i].embed(TEXTS)  # blocking, from a thread
        else:  # each its own event loop in its own thread
            results[i] = asyncio.run(clients[i].aembed(TEXTS))

    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    want = expected(srv, TEXTS)
    for i in range(3):
        np.testing.assert_allclose(results[i], want, atol=1e-6)
    assert srv.counters.max_open <= 4
    assert srv.counters.total(status=429) == 0


def test_langchain_and_llama_index_classes_share_one_budget(srv: ServerHandle) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from hfrag.langchain import HuggingFaceInferenceEmbeddings
    from hfrag.llama_index import HuggingFaceInferenceEmbedding

    srv.set_faults(capped(4))
    lc = HuggingFaceInferenceEmbeddings(endpoint_url=srv.url, concurrency_ceiling=4)
    li = HuggingFaceInferenceEmbedding(endpoint_url=srv.url, concurrency_ceiling=4)
    texts = TEXTS[:600]
    threads = [
        threading.Thread(target=lc.embed_documents, args=(texts,)),
        threading.Thread(target=li.get_text_embedding_batch, args=(texts,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert srv.counters.total("/", 200) == 2 * -(-600 // 16)
    assert srv.counters.max_open <= 4
    assert srv.counters.total(status=429) == 0


def test_batches_keep_within_max_batch_tokens() -> None:
    forget_budgets()
    texts = [("word " * 40).strip() + f" {i}" for i in range(60)]  # ~205 bytes each
    with serve_in_thread(ServerConfig(max_batch_tokens=700)) as server:
        vectors = EmbeddingsClient(endpoint_url=server.url).embed(texts)
        np.testing.assert_allclose(vectors, expected(server, texts), atol=1e-6)
        # A bound of UTF-8 bytes + 2 per text: three of them fit in 700, four do not.
        assert max(server.counters.batch_sizes) == 3
        assert sum(server.counters.batch_sizes) == 60


def test_a_router_rate_limit_pauses_the_endpoint_and_nothing_fails(srv: ServerHandle) -> None:
    srv.set_faults(FaultConfig(rate_limit=10, rate_window=0.25))
    client = EmbeddingsClient(model="hfrag/hash-embed", router_url=srv.url)
    texts = TEXTS[:640]
    vectors = client.embed(texts, batch_size=16)  # 40 requests: four windows at least
    np.testing.assert_allclose(vectors, expected(srv, texts), atol=1e-6)
    # The first refusal's ``ratelimit: ...;t=`` pauses the whole endpoint until the window
    # turns, so each window costs about one refusal per request in flight, not a storm.
    assert srv.counters.total(status=200) == 40
    assert srv.counters.total(status=429) <= 3 * 8


def test_the_controller_rules_on_their_own() -> None:
    limit = AdaptiveLimit(ceiling=10)
    assert limit.allowed == 2
    for _ in range(20):  # slow start, capped at the ceiling
        limit.on_sample(0.01, in_flight=limit.allowed, now=1.0)
    assert limit.allowed == 10
    limit.on_overload(others=9, now=2.0)
    assert limit.allowed == 9
    assert not limit.slow_start
    for others in range(8, 3, -1):  # a burst of refusals while 4 are still being served
        limit.on_overload(others=others, now=2.0)
    assert limit.allowed == 4
    idle = limit.limit
    limit.on_sample(0.01, in_flight=1, now=3.0)  # unused limit: no rise
    assert limit.limit == idle
    limit.on_sample(0.05, in_flight=4, now=4.0)  # latency far above twice the baseline
    assert limit.limit < idle


def _child_embeds(url: str, queue: object) -> None:
    from hfrag.tasks import budget

    fresh = not budget._REGISTRY  # the parent's budgets (and in-flight counts) are not here
    vectors = EmbeddingsClient(endpoint_url=url).embed(TEXTS[:50])
    queue.put((fresh, vectors.shape))  # type: ignore[attr-defined]


def test_a_forked_child_starts_with_its_own_budgets(srv: ServerHandle) -> None:
    import multiprocessing

    client = EmbeddingsClient(endpoint_url=srv.url)
    client.embed(TEXTS[:100])
    assert budget_of(srv).sent > 0  # type: ignore[attr-defined]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_embeds, args=(srv.url, queue))
    child.start()
    fresh, shape = queue.get(timeout=60)
    child.join(timeout=30)
    assert fresh
    assert shape == (50, 384)
