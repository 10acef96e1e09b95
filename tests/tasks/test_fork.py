"""A forked worker inherits a client: it keeps what was learned, and never waits on the parent."""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any

import pytest

from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from hfrag.transport import run_sync
from tests.tasks.conftest import EMBED_MODEL

# What these tests check on top of tests/reliability/test_fork.py (the route learned before the
# fork, a route lock held at fork time) is hfrag.tasks'.
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork")


def _embed_in_child(client: EmbeddingsClient, queue: Any) -> None:
    queue.put(client.embed(["a text in the child"]).shape)


def _run_forked(client: EmbeddingsClient) -> tuple[int, int]:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_embed_in_child, args=(client, queue))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0, "the child hung or failed"
    return tuple(queue.get(timeout=5))


def test_child_uses_the_route_the_parent_learned(server):
    options = EmbeddingOptions(provider="together", hub_url=server.url)
    client = EmbeddingsClient(model=EMBED_MODEL, router_url=server.url, options=options)
    client.embed(["warm"])
    assert _run_forked(client) == (1, 384)
    assert server.counters.total(f"/api/models/{EMBED_MODEL}") == 1


def test_child_forked_while_a_first_call_held_the_lock_does_not_hang(server):
    options = EmbeddingOptions(provider="together", hub_url=server.url)
    client = EmbeddingsClient(model=EMBED_MODEL, router_url=server.url, options=options)

    async def hold() -> None:  # as if another thread were half-way through its first call
        await client.route()
        client._wire._value = None
        assert client._wire._lock is not None
        await client._wire._lock.acquire()

    run_sync(hold())
    assert _run_forked(client) == (1, 384)
