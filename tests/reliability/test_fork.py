"""A client made before ``os.fork()`` works in the child, and the parent is not disturbed.

The child opens its own pool and I/O loop (the parent's loop thread does not exist there, and
its pooled sockets are shared with the parent: using them would mix the two processes' answers).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hfrag.tasks import EmbeddingsClient
from hfrag.transport import Request, SyncTransport, TransportConfig
from tests.tasks.conftest import EMBED_MODEL, expected

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]


def _in_child(work: Callable[[], Any]) -> tuple[int, int]:
    """Fork; the child runs ``work`` and reports its JSON result on a pipe. (pid, read fd)."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        code = 0
        try:
            out = json.dumps({"ok": work()})
        except BaseException as exc:
            out, code = json.dumps({"error": f"{type(exc).__name__}: {exc}"}), 1
        os.write(write, out.encode())
        os._exit(code)
    os.close(write)
    return pid, read


def _result(pid: int, read: int, limit: float = 30.0) -> Any:
    end = time.monotonic() + limit
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > end:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.02)
    with os.fdopen(read, "rb") as fh:
        report = json.loads(fh.read() or b'{"error": "no report"}')
    assert "error" not in report, report["error"]
    assert os.waitstatus_to_exitcode(status) == 0
    return report["ok"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_client_works_in_a_forked_child(local: Any, mode: str) -> None:
    client = EmbeddingsClient(model=EMBED_MODEL, router_url=local.url, max_retries=0)
    client.embed(["warm the pool and the I/O loop"])

    def child() -> list[list[float]]:
        if mode == "sync":
            return client.embed(["child one", "child two"]).tolist()
        import asyncio

        return asyncio.run(client.aembed(["child one", "child two"])).tolist()

    pid, read = _in_child(child)
    mine = [client.embed([f"parent {i}"]) for i in range(20)]  # while the child works
    got = np.asarray(_result(pid, read), dtype=np.float32)
    np.testing.assert_allclose(got, expected(local, ["child one", "child two"]), atol=1e-6)
    for i, vectors in enumerate(mine):
        np.testing.assert_allclose(vectors, expected(local, [f"parent {i}"]), atol=1e-6)
    assert client.embed(["after"]).shape[0] == 1  # the parent's pool still works


def test_sync_transport_works_in_a_forked_child(local: Any) -> None:
    transport = SyncTransport(TransportConfig(timeout=10))
    url = local.url + "/embed"
    transport.request(Request(url, json={"inputs": ["warm"]}))

    def child() -> Any:
        return transport.request(Request(url, json={"inputs": ["child"]}))

    pid, read = _in_child(child)
    mine = [transport.request(Request(url, json={"inputs": [f"p{i}"]})) for i in range(20)]
    np.testing.assert_allclose(_result(pid, read), expected(local, ["child"]), atol=1e-6)
    for i, vectors in enumerate(mine):
        np.testing.assert_allclose(vectors, expected(local, [f"p{i}"]), atol=1e-6)


_SHARED: dict[str, EmbeddingsClient] = {}


def _embed_in_worker(text: str) -> list[float]:
    return _SHARED["client"].embed([text])[0].tolist()


def test_client_works_in_multiprocessing_fork_workers(local: Any) -> None:
    client = EmbeddingsClient(model=EMBED_MODEL, router_url=local.url, max_retries=0)
    client.embed(["warm"])
    _SHARED["client"] = client
    texts = [f"text {i}" for i in range(6)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            got = pool.map_async(_embed_in_worker, texts).get(timeout=30)
    np.testing.assert_allclose(np.asarray(got), expected(local, texts), atol=1e-6)
    assert client.embed(["after"]).shape[0] == 1
