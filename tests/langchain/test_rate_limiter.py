"""LangChain's ``rate_limiter`` on the embedding and rerank classes: acquired before every request
they send, like a chat model's before every call."""

from __future__ import annotations

import asyncio
import copy

import pytest
from langchain_core.documents import Document
from langchain_core.rate_limiters import BaseRateLimiter, InMemoryRateLimiter

from hfrag.errors import ConfigurationError
from hfrag.langchain import (
    HuggingFaceInferenceCrossEncoder,
    HuggingFaceInferenceEmbeddings,
    HuggingFaceInferenceReranker,
)
from hfrag.server import FaultConfig
from hfrag.server.testing import ServerHandle
from tests.adapters import rerank_kwargs

TEXTS = [f"passage {i}" for i in range(100)]


class Counting(BaseRateLimiter):
    """A limiter that admits everything and counts how often it was asked."""

    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True


def embedding_posts(srv: ServerHandle) -> int:
    return sum(n for (path, _), n in srv.counters.requests.items() if path == "/")


def test_the_embedding_class_acquires_once_per_request(server: ServerHandle) -> None:
    limiter = Counting()
    emb = HuggingFaceInferenceEmbeddings(
        endpoint_url=server.url, batch_size=8, rate_limiter=limiter
    )
    emb.embed_documents(TEXTS)
    asyncio.run(emb.aembed_documents(TEXTS[:20]))
    emb.embed_query("one query")
    assert limiter.acquired == embedding_posts(server) == 13 + 3 + 1


def test_a_request_sent_again_after_an_overload_acquires_again(server: ServerHandle) -> None:
    server.set_faults(FaultConfig(latency=0.02, max_concurrency=2, max_queue=0))
    limiter = Counting()
    emb = HuggingFaceInferenceEmbeddings(
        endpoint_url=server.url, batch_size=4, rate_limiter=limiter
    )
    emb.embed_documents(TEXTS)
    assert limiter.acquired == embedding_posts(server)  # 429s included: each was a request


def test_an_in_memory_rate_limiter_paces_the_requests(server: ServerHandle) -> None:
    limiter = InMemoryRateLimiter(requests_per_second=50, check_every_n_seconds=0.005)
    emb = HuggingFaceInferenceEmbeddings(
        endpoint_url=server.url, batch_size=10, rate_limiter=limiter
    )
    assert len(emb.embed_documents(TEXTS)) == len(TEXTS)
    assert embedding_posts(server) == 10


def test_the_rerank_classes_acquire_once_per_request(rerank_srv: ServerHandle) -> None:
    limiter = Counting()
    url = rerank_srv.url
    reranker = HuggingFaceInferenceReranker(
        **rerank_kwargs("endpoint", url), batch_size=10, rate_limiter=limiter
    )
    cross = HuggingFaceInferenceCrossEncoder(
        **rerank_kwargs("endpoint", url), batch_size=10, rate_limiter=limiter
    )
    reranker.compress_documents([Document(page_content=t) for t in TEXTS[:30]], "which?")
    cross.score([("q", t) for t in TEXTS[:25]])
    posts = sum(n for (path, _), n in rerank_srv.counters.requests.items() if path != "/info")
    assert limiter.acquired == posts == 3 + 3


def test_the_field_is_reassignable_shared_by_copies_and_left_out_of_dumps(
    server: ServerHandle,
) -> None:
    emb = HuggingFaceInferenceEmbeddings(endpoint_url=server.url)
    first, second = Counting(), Counting()
    emb.rate_limiter = first
    emb.embed_query("a")
    emb.rate_limiter = second
    emb.embed_query("b")
    assert (first.acquired, second.acquired) == (1, 1)
    clone = copy.deepcopy(emb)
    clone.embed_query("c")
    assert "rate_limiter" not in emb.model_dump()
    with pytest.raises((ConfigurationError, ValueError)):
        HuggingFaceInferenceEmbeddings(endpoint_url=server.url, rate_limiter="fast")
