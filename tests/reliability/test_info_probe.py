"""An endpoint's GET /info: asked briefly, once per client while its answer holds: an answer or a
404 for good, a failure (a waking endpoint's 503) for a bounded time, then asked again."""

from __future__ import annotations

import asyncio
import time

import pytest

from hfrag.errors import InferenceError
from hfrag.tasks import EmbeddingsClient, RerankClient, wire_choice
from tests.reliability.rawserver import RawServer, embeddings, hang, in_turn, respond

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


RERANKER_INFO = {"model_id": "m", "model_type": {"reranker": {"id2label": {"0": "LABEL_0"}}}}


def test_a_failed_probe_is_asked_again_after_a_while(
    raw_server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A waking endpoint: /info answers 503 first. Without it, "auto" takes the HF pipeline form
    # (POST /), which this TEI re-ranker refuses; once /info is asked again the form is TEI's.
    monkeypatch.setattr(wire_choice, "PROBE_MEMORY", 0.3)
    raw_server.route(
        "/info", in_turn(respond(503, {"error": "loading"}), respond(200, RERANKER_INFO))
    )
    raw_server.route("/", respond(404, {"error": "no such route"}))
    raw_server.route(
        "/rerank", respond(200, [{"index": 1, "score": 0.9}, {"index": 0, "score": 0.1}])
    )
    client = RerankClient(endpoint_url=raw_server.url, max_retries=0)
    with pytest.raises(InferenceError):
        client.score("q", ["a", "b"])
    with pytest.raises(InferenceError):  # within the memory: the failed probe still holds
        client.score("q", ["a", "b"])
    assert raw_server.stats.paths().count("/info") == 1
    time.sleep(0.4)
    assert client.score("q", ["a", "b"]).tolist() == pytest.approx([0.1, 0.9])
    assert client.protocol == "tei"
    assert raw_server.stats.paths().count("/info") == 2
    client.score("q", ["a", "b"])
    time.sleep(0.4)
    client.score("q", ["a", "b"])
    assert raw_server.stats.paths().count("/info") == 2  # an answer is kept for good


def test_no_info_route_is_remembered_for_good(
    raw_server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire_choice, "PROBE_MEMORY", 0.1)
    raw_server.route("/info", respond(404, {"error": "no such route"}))
    client = _client(raw_server)
    client.embed(["a"])
    time.sleep(0.2)
    client.embed(["b"])
    assert raw_server.stats.paths().count("/info") == 1
