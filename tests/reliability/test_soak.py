"""Soak: many texts through a server that fails one request in ten, in mixed ways.

Every vector right and in order (the server's deterministic backend says what each must be), each
text answered successfully exactly once (no text sent again after a success), sockets and threads
back to their baseline after close, and memory bounded while it runs and after. The faults: 503
loading with estimated_time, 429 with Retry-After, 500, dropped connections, stalls past the
timeout, truncated bodies. Smaller soaks for reranking and for streamed chat, where a stream cut
mid-way raises and never ends as a shortened answer.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from hfrag.errors import InferenceError
from hfrag.server import FaultConfig
from hfrag.server.testing import ServerHandle
from hfrag.tasks import ChatClient, EmbeddingOptions, EmbeddingsClient, RerankClient
from hfrag.tasks.generation import TextDelta
from tests.adapters import EMBED_MODEL, RERANK_MODEL, expected, rerank_scores
from tests.llm import ANSWER, LLAMA, PROMPT
from tests.sockets import open_connections

pytestmark = pytest.mark.timeout(240)

#: One request in ten fails: 1.67% each of loading, 429, 500, dropped connection, a stall past
#: the client's timeout, truncated body.
SIXTH = 0.1 / 6
MIXED = FaultConfig(
    seed=13,
    p_loading=SIXTH,
    estimated_time=0.01,
    p_rate_limit=SIXTH,
    retry_after=0.01,
    p_500=SIXTH,
    p_drop=SIXTH,
    p_stall=SIXTH,
    stall_seconds=4.0,
    p_truncate=SIXTH,
)
FAULT_KINDS = {"loading", "rate_limit", "500", "drop", "stall", "truncate"}
#: The attempt timeout that a stall outlasts by far, and ample for the hashing model's answers
#: on a loaded machine (an answer that came after its client gave up would be counted twice).
FAST_RETRIES = {"max_retries": 10, "max_retry_wait": 0.02, "timeout": 2.0}
SOAK_TEXTS = 50_000


def _eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _baseline_threads(server: ServerHandle) -> int:
    """Threads once hfrag's one process-wide I/O loop thread runs (it outlives clients, by
    design): anything above this after close is a leak."""
    warm = EmbeddingsClient(model=EMBED_MODEL, router_url=server.url)
    warm.embed(["warm"])
    warm.close()
    server.reset()
    return threading.active_count()


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class _PeakRSS:
    """The highest resident memory seen while the ``with`` block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> _PeakRSS:
        self.peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _port(server: ServerHandle) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.mark.slow
def test_embedding_soak_under_mixed_faults(server: ServerHandle) -> None:
    texts = [f"soak text {i} about item {i * 7919 % 10007}" for i in range(SOAK_TEXTS)]
    want = expected(server, texts)
    threads_before = _baseline_threads(server)
    server.set_faults(MIXED)
    gc.collect()
    rss_before = _rss()
    client = EmbeddingsClient(
        model=EMBED_MODEL,
        router_url=server.url,
        options=EmbeddingOptions(max_concurrency=8),
        **FAST_RETRIES,
    )
    with _PeakRSS() as sampled:
        got = client.embed(texts)
    client.close()
    gc.collect()
    grown = _rss() - rss_before
    assert got.shape == want.shape
    assert np.array_equal(got, want), "a vector is wrong or out of order"
    faulted = server.counters.total() - server.counters.total(status=200)
    assert faulted > SOAK_TEXTS // 32 // 20, "the faults did not happen: the test proves nothing"
    assert set(server.counters.faults) >= FAULT_KINDS, server.counters.faults
    answered = server.counters.texts_ok
    assert len(answered) == SOAK_TEXTS
    assert set(answered.values()) == {1}, "a text was sent again after a success"
    assert _eventually(lambda: open_connections(_port(server)) == 0)
    assert _eventually(lambda: threading.active_count() <= threads_before)
    # What stays after close: the output (and the expected copy) plus slack for the allocator;
    # a client holding every response body or request would stay far above this.
    assert grown < 3 * want.nbytes + 60_000_000, grown
    # While it runs: the output plus the batches in flight (and the in-process server's own
    # answers), far below what a client keeping every parsed answer would hold (~8x the output).
    assert sampled.peak - rss_before < 2 * want.nbytes + 100_000_000, sampled.peak - rss_before


def test_rerank_soak_under_mixed_faults(server: ServerHandle) -> None:
    docs = [f"document {i} on river {i % 97} and town {i % 31}" for i in range(3000)]
    query = "river 5 town 3"
    threads_before = _baseline_threads(server)
    server.set_faults(MIXED)
    client = RerankClient(model=RERANK_MODEL, router_url=server.url, **FAST_RETRIES)
    got = client.score(query, docs)
    client.close()
    assert [float(s) for s in got] == pytest.approx(rerank_scores(server, query, docs), abs=1e-6)
    assert server.counters.total() > server.counters.total(status=200), "no fault happened"
    assert set(server.counters.texts_ok.values()) == {1}
    assert _eventually(lambda: open_connections(_port(server)) == 0)
    assert _eventually(lambda: threading.active_count() <= threads_before)


def test_streamed_chat_soak_never_returns_a_shortened_answer(server: ServerHandle) -> None:
    # Streams cut mid-way (truncate) or carrying an error event: each must raise, never end
    # early as if finished; the others give the whole answer.
    messages = [{"role": "user", "content": PROMPT}]
    warm = ChatClient(model=LLAMA, router_url=server.url)
    warm.chat(messages)  # starts the in-process server's generation thread: the server's own
    warm.close()
    threads_before = _baseline_threads(server)
    server.set_faults(FaultConfig(seed=5, p_truncate=0.15, p_stream_error=0.15))
    client = ChatClient(model=LLAMA, router_url=server.url, max_retries=0)
    whole = failed = 0
    for _ in range(60):
        text = ""
        try:
            for chunk in client.stream_chat(messages):
                if isinstance(chunk, TextDelta):
                    text += chunk.text
        except InferenceError:
            failed += 1
            continue
        assert text.strip() == ANSWER, f"a stream ended short: {text!r}"
        whole += 1
    client.close()
    assert whole, failed
    assert failed, whole
    assert _eventually(lambda: open_connections(_port(server)) == 0)
    assert _eventually(lambda: threading.active_count() <= threads_before)
