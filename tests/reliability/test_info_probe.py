"""An endpoint's GET /info: asked once per client, briefly, and remembered whatever it answered."""

from __future__ import annotations

import asyncio
import time

import pytest

from hfrag.tasks import EmbeddingsClient
from tests.reliability.rawserver import RawServer, embeddings, hang, respond

pytestmark = pytest.mark.timeout(30)


def _client(srv: RawServer, **kwargs: object) -> EmbeddingsClient:
    srv.route("/embed", embeddings())
    return EmbeddingsClient(endpoint_url=srv.url + "/embed", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "behaviour",
    [
        respond(503, {"error": "loading"}, {"Retry-After": "0.2"}),
        respond(500, {"error": "boom"}),
        respond(401, {"error": "no"}),
        respond(302, b"", {"Location": "/login"}),
        respond(200, b"not json"),
    ],
    ids=["503", "500", "401", "302", "not-json"],
)
def test_failing_info_is_tried_once_without_retries(
    raw_server: RawServer, behaviour: object
) -> None:
    raw_server.route("/info", behaviour)  # type: ignore[arg-type]
    client = _client(raw_server, max_retries=4)
    for _ in range(3):
        assert client.embed(["a", "b"]).shape == (2, 4)
    assert raw_server.stats.paths().count("/info") == 1
    assert raw_server.stats.paths().count("/embed") == 3


def test_hanging_info_is_given_up_briefly_and_remembered(raw_server: RawServer) -> None:
    raw_server.route("/info", hang())
    client = _client(raw_server, timeout=0.5, max_retries=4)
    start = time.monotonic()
    client.embed(["a"])
    first = time.monotonic() - start
    start = time.monotonic()
    client.embed(["b"])
    assert time.monotonic() - start < first  # the second call does not wait for /info again
    assert first < 3.0
    assert raw_server.stats.paths().count("/info") == 1


def test_a_good_info_is_remembered_and_used(raw_server: RawServer) -> None:
    raw_server.route("/info", respond(200, {"max_client_batch_size": 2}))
    client = _client(raw_server)
    client.embed(["a", "b", "c"])
    asyncio.run(client.aembed(["d", "e", "f", "g", "h"]))
    sizes = [len(r.json()["inputs"]) for r in raw_server.stats.requests if r.path == "/embed"]
    assert max(sizes) == 2
    assert raw_server.stats.paths().count("/info") == 1


def test_concurrent_first_calls_share_one_probe(raw_server: RawServer) -> None:
    raw_server.route("/info", respond(200, {"max_client_batch_size": 8}))
    client = _client(raw_server)

    async def many() -> None:
        await asyncio.gather(*(client.aembed([f"t{i}"]) for i in range(8)))

    asyncio.run(many())
    assert raw_server.stats.paths().count("/info") == 1
