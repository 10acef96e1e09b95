"""Fault injection, scripted answers and counters, as a client sees them."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from hfrag.server import FaultConfig, ServerConfig
from hfrag.server.testing import CannedResponse

BODY = {"inputs": ["a b c"]}
FE = "/hf-inference/models/hfrag/hash-embed/pipeline/feature-extraction"
GEN = {"inputs": "Paris is the capital of France. Rome is old. What is the capital of France?"}


def statuses(client: httpx.Client, n: int, path: str = "/embed") -> list[int]:
    out = []
    for _ in range(n):
        try:
            out.append(client.post(path, json=BODY).status_code)
        except httpx.TransportError:
            out.append(-1)
    return out


MIX = FaultConfig(
    seed=5,
    p_loading=0.1,
    estimated_time=0.01,
    p_rate_limit=0.1,
    retry_after=0.01,
    p_500=0.1,
    p_502=0.1,
    p_drop=0.1,
)


def test_same_seed_same_faults(server, client):
    server.set_faults(MIX)
    first = statuses(client, 60)
    server.set_faults(MIX)
    assert statuses(client, 60) == first
    assert {200, 503, 429, 500, 502, -1} <= set(first)
    server.set_faults(FaultConfig(**{**MIX.__dict__, "seed": 6}))
    assert statuses(client, 60) != first


def test_counters_record_every_answer_including_drops(server, client):
    server.set_faults(MIX)
    seen = statuses(client, 30)
    for status in set(seen):
        assert server.counters.total("/embed", status) == seen.count(status)
    assert server.counters.total() == 30


def test_loading(server, client):
    server.set_faults(FaultConfig(p_loading=1.0, estimated_time=3.5))
    r = client.post("/embed", json=BODY)
    assert (r.status_code, r.json()) == (
        503,
        {"error": "Model hfrag/hash-embed is currently loading", "estimated_time": 3.5},
    )
    r = client.post("/hf-inference/models/hfrag/hash-rerank", json={"inputs": "x"})
    assert r.json()["error"] == "Model hfrag/hash-rerank is currently loading"


def test_rate_limit_with_fractional_retry_after(server, client):
    server.set_faults(FaultConfig(p_rate_limit=1.0, retry_after=0.05))
    r = client.post("/embed", json=BODY)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "0.05"
    assert r.json() == {"error": "Model is overloaded", "error_type": "Overloaded"}
    assert client.post("/generate", json=GEN).json()["error_type"] == "overloaded"
    assert "error" in client.post(FE, json=BODY).json()


def test_500_and_502(server, client):
    server.set_faults(FaultConfig(p_500=1.0))
    r = client.post("/embed", json=BODY)
    assert (r.status_code, r.json()) == (500, {"error": "Internal Server Error"})
    server.set_faults(FaultConfig(p_502=1.0))
    r = client.post("/embed", json=BODY)
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in r.text


def test_drop_closes_without_a_response(server, client):
    server.set_faults(FaultConfig(p_drop=1.0))
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        client.post("/embed", json=BODY)
    assert server.counters.requests[("/embed", -1)] == 1


def test_stall_delays_the_answer(server, client):
    server.set_faults(FaultConfig(p_stall=1.0, stall_seconds=0.3))
    with pytest.raises(httpx.ReadTimeout):
        client.post("/embed", json=BODY, timeout=0.1)
    start = time.monotonic()
    assert client.post("/embed", json=BODY).status_code == 200
    assert time.monotonic() - start >= 0.3


def test_an_answer_to_a_client_that_left_is_not_counted_as_delivered(server, client):
    # The client gives up during the stall; the answer made after it cannot reach anyone, so
    # its texts are not "answered" (a retry of them is no second success) and its status is -1.
    server.set_faults(FaultConfig(p_stall=1.0, stall_seconds=1.0))
    with pytest.raises(httpx.ReadTimeout):
        client.post("/embed", json={"inputs": ["gone"]}, timeout=httpx.Timeout(10, read=0.1))
    deadline = time.monotonic() + 10
    while server.counters.total("/embed") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.counters.requests[("/embed", -1)] == 1
    assert server.counters.texts_ok["gone"] == 0
    assert server.counters.faults == {"stall": 1}
    server.set_faults(FaultConfig())
    assert client.post("/embed", json={"inputs": ["gone"]}).status_code == 200
    assert server.counters.texts_ok["gone"] == 1
    assert server.counters.faults == {"stall": 1, "none": 1}


def test_truncate_sends_half_the_body(server, client):
    server.set_faults(FaultConfig(p_truncate=1.0))
    with client.stream("POST", "/embed", json=BODY) as r:
        assert r.status_code == 200
        length = int(r.headers["content-length"])
        with pytest.raises(httpx.RemoteProtocolError, match=r"complete message body"):
            r.read()
    assert length > 1000


def test_truncated_stream(server, client):
    server.set_faults(FaultConfig(p_truncate=1.0))
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/generate_stream", json=GEN) as r,
    ):
        for _ in r.iter_lines():
            pass


def test_stream_error_mid_generate_stream(server, client):
    server.set_faults(FaultConfig(p_stream_error=1.0))
    with client.stream("POST", "/generate_stream", json=GEN) as r:
        assert r.status_code == 200
        events = [json.loads(line[5:]) for line in r.iter_lines() if line]
    assert "token" in events[0]
    assert events[-1] == {
        "error": "Request failed during generation: injected fault",
        "error_type": "generation",
    }
    assert not any(e.get("generated_text") for e in events)


def test_stream_error_mid_chat_stream(server, client):
    server.set_faults(FaultConfig(p_stream_error=1.0))
    body = {"messages": [{"role": "user", "content": GEN["inputs"]}], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        payloads = [line[6:] for line in r.iter_lines() if line]
    assert "[DONE]" not in payloads
    last = json.loads(payloads[-1])
    assert last["error"]["message"] == "Request failed during generation: injected fault"
    # a request that cannot stream is answered normally
    assert client.post("/generate", json=GEN).status_code == 200


def test_cold_start_then_loaded(server, client):
    server.set_faults(FaultConfig(cold_start=0.4))
    r = client.post("/embed", json=BODY)
    assert r.status_code == 503
    assert 0 < r.json()["estimated_time"] <= 0.4
    assert client.get("/info").status_code == 200  # GET routes never see faults
    time.sleep(0.45)
    assert client.post("/embed", json=BODY).status_code == 200


def test_cold_start_holds_requests_that_wait_for_the_model(server, client):
    server.set_faults(FaultConfig(cold_start=0.3))
    start = time.monotonic()
    r = client.post("/embed", json=BODY, headers={"x-wait-for-model": "true"})
    assert r.status_code == 200
    assert time.monotonic() - start >= 0.25
    assert server.counters.headers[-1]["x-wait-for-model"] == "true"


def test_latency_and_latency_per_item(server, client):
    server.set_faults(FaultConfig(latency=0.1))
    start = time.monotonic()
    client.post("/embed", json=BODY)
    assert 0.1 <= time.monotonic() - start < 0.5
    server.set_faults(FaultConfig(latency_per_item=0.02))
    start = time.monotonic()
    client.post("/embed", json={"inputs": ["x"] * 10})
    assert 0.2 <= time.monotonic() - start < 0.6


def test_max_concurrency_queues_the_rest(server):
    server.set_faults(FaultConfig(latency=0.1, max_concurrency=2))
    results: list[int] = []

    def worker() -> None:
        results.append(httpx.post(f"{server.url}/embed", json=BODY, timeout=10).status_code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 8
    assert server.counters.max_in_flight == 2
    assert time.monotonic() - start >= 0.4


def test_route_override_and_removal(server, client):
    server.set_faults(FaultConfig(p_500=1.0))
    server.set_faults(FaultConfig(), route="/rerank")
    assert client.post("/embed", json=BODY).status_code == 500
    assert client.post("/rerank", json={"query": "q", "texts": ["t"]}).status_code == 200
    server.set_faults(None, route="/rerank")
    assert client.post("/rerank", json={"query": "q", "texts": ["t"]}).status_code == 500
    server.set_faults(None)
    assert client.post("/embed", json=BODY).status_code == 200


def test_faults_from_the_config_and_reset(make_server):
    srv = make_server(ServerConfig.default(faults=FaultConfig(p_500=1.0)))
    with httpx.Client(base_url=srv.url) as c:
        assert c.post("/embed", json=BODY).status_code == 500
        srv.set_faults(FaultConfig())
        assert c.post("/embed", json=BODY).status_code == 200
        srv.reset()
        assert srv.counters.total() == 0
        assert c.post("/embed", json=BODY).status_code == 500


def test_fault_config_checks_its_numbers():
    with pytest.raises(ValueError, match="add up to"):
        FaultConfig(p_500=0.6, p_502=0.6)
    with pytest.raises(ValueError):
        FaultConfig(p_drop=-0.1)
    with pytest.raises(ValueError):
        FaultConfig(max_concurrency=0)


# -- scripts ------------------------------------------------------------------------------------


def test_scripts_answer_in_order_before_faults(server, client):
    server.set_faults(FaultConfig(p_500=1.0))
    server.script(
        "/embed",
        CannedResponse(200, [[1.0, 0.0]]),
        CannedResponse(418, "teapot", headers={"X-Test": "1"}),
        CannedResponse(200, b"\x00raw", content_type="application/octet-stream"),
    )
    r1, r2, r3, r4 = (client.post("/embed", json=BODY) for _ in range(4))
    assert r1.json() == [[1.0, 0.0]]
    assert (r2.status_code, r2.text, r2.headers["x-test"]) == (418, "teapot", "1")
    assert r2.headers["content-type"].startswith("text/plain")
    assert (r3.content, r3.headers["content-type"]) == (b"\x00raw", "application/octet-stream")
    assert r4.status_code == 500


def test_path_scripts_before_any_path_scripts(server, client):
    server.script(None, CannedResponse(201, {"any": True}))
    server.script("/rerank", CannedResponse(202, {"rerank": True}))
    assert client.post("/rerank", json={}).status_code == 202
    assert client.post("/rerank", json={}).status_code == 201
    assert client.get("/health").status_code == 200


def test_scripted_sse_and_drop(server, client):
    server.script(
        "/generate_stream",
        CannedResponse(sse=[": keep-alive", 'data:{"token": 1}', "", "data: [DONE]", ""]),
        CannedResponse(drop=True),
    )
    with client.stream("POST", "/generate_stream", json=GEN) as r:
        assert r.headers["content-type"] == "text/event-stream"
        assert r.read() == b': keep-alive\ndata:{"token": 1}\n\ndata: [DONE]\n\n'
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/generate_stream", json=GEN)
    assert server.counters.total("/generate_stream", -1) == 1


def test_counters_headers_bodies_and_reset(server, client):
    client.post("/embed", json={"inputs": ["one", "two"]}, headers={"User-Agent": "hfrag-test/1"})
    client.post("/embed", content=b"not json", headers={"content-type": "application/json"})
    client.get("/health")
    c = server.counters
    assert [h["user-agent"] for h in c.headers] == [
        "hfrag-test/1",
        client.headers["user-agent"],
        client.headers["user-agent"],
    ]
    assert c.bodies == [{"inputs": ["one", "two"]}, "not json"]
    assert c.texts_ok == {"one": 1, "two": 1}
    assert (c.items_ok, c.batch_sizes) == (2, [2])
    assert c.total(status=200) == 2
    assert c.total("/embed") == 2
    assert c.total(status=400) == 1
    server.reset()
    assert (c.total(), c.items_ok, c.batch_sizes, c.headers, c.bodies) == (0, 0, [], [], [])


def test_cut_answers_do_not_count_as_delivered(server, client):
    server.set_faults(FaultConfig(p_truncate=1.0))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/embed", json={"inputs": ["lost text"]})
    assert server.counters.requests[("/embed", 200)] == 1  # the status line did go out
    assert (server.counters.texts_ok, server.counters.items_ok) == ({}, 0)
    server.set_faults(FaultConfig())
    client.post("/embed", json={"inputs": ["lost text"]})
    assert server.counters.texts_ok == {"lost text": 1}
