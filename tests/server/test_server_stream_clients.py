"""Streams and clients that misbehave: one that stops reading, one that leaves while queued,
and a model whose own failure looks like a network error.

No timing: every wait is for an event (a generator closed, a queue count reached), with a
generous bound only so that a wrong server fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from hfrag.server import HashingBackend, ModelSpec, ServerConfig
from hfrag.server.backends import GenerationParams
from tests.gated import Gated, Scripted

GEN = "t/gen"
CHAT = "/v1/chat/completions"


def config(backend: Any, **kwargs: Any) -> ServerConfig:
    spec = ModelSpec(GEN, "generate", backend, max_input_length=1000, max_total_tokens=10**7)
    return ServerConfig(models=[spec], **kwargs)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    pause = threading.Event()
    for _ in range(2000):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError(f"{what} not reached in 20 s")


def raw_post(
    port: int, path: str, body: dict[str, Any], rcvbuf: int | None = None
) -> socket.socket:
    """A request sent on a bare socket that the test never reads from."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def payloads(text: str) -> list[Any]:
    out: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


@pytest.mark.parametrize("path", ["/generate_stream", CHAT])
def test_a_connected_client_that_stops_reading_does_not_freeze_other_generations(make_server, path):
    endless = Scripted(iter(lambda: " " + "x" * 2000, None))  # big tokens, never ends
    srv = make_server(config(endless))
    body: dict[str, Any] = {"inputs": "x", "parameters": {"max_new_tokens": 9_000_000}}
    if path == CHAT:
        body = {"model": GEN, "messages": [{"role": "user", "content": "x"}], "stream": True}
        body["max_tokens"] = 10**6
    stuck = raw_post(srv.port, path, body, rcvbuf=4096)
    try:
        # The client never reads but stays connected: the model must not wait for it.
        assert endless.closed.wait(60), "the model thread is held by a client that never reads"
        endless.pieces = [" a", " b"]
        r = httpx.post(f"{srv.url}/generate", json={"inputs": "x"}, timeout=60)
        assert r.json()["generated_text"] == " a b"
    finally:
        stuck.close()
    wait_until(lambda: srv.models.waiting("generate") == 0, "an idle model thread")


class Resetting(HashingBackend):
    """A model behind a socket of its own, whose connection resets at token ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__(dim=16)
        self.at = at

    def generate_tokens(self, prompt: str, params: GenerationParams) -> Iterator[str]:
        for i in range(5):
            if i == self.at:
                raise ConnectionResetError("upstream model server reset")
            yield " t"


@pytest.mark.parametrize("at", [0, 2])
def test_a_model_raising_connection_reset_is_a_failed_generation_not_a_client_gone(make_server, at):
    srv = make_server(config(Resetting(at)))
    message = "Request failed during generation: upstream model server reset"
    with httpx.Client(timeout=30) as client:
        r = client.post(f"{srv.url}/generate_stream", json={"inputs": "x"})
        assert r.status_code == 200
        events = payloads(r.text)
        assert len(events) == at + 1
        assert events[-1] == {"error": message, "error_type": "generation"}
        chat = {"model": GEN, "messages": [{"role": "user", "content": "x"}], "stream": True}
        r = client.post(srv.url + CHAT, json=chat)
        assert r.status_code == 200
        assert payloads(r.text)[-1] == {"error": {"message": message, "http_status_code": 424}}


def test_a_queued_stream_whose_client_left_gives_its_queue_place_back_at_once(make_server):
    backend = Gated(HashingBackend(16))
    srv = make_server(config(backend, max_concurrent_requests=2))
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=60) as client:

        def first() -> int:
            with client.stream("POST", f"{srv.url}/generate_stream", json={"inputs": "x"}) as r:
                return len(list(r.iter_lines()))

        running = pool.submit(first)
        try:
            wait_until(lambda: backend.produced == 1, "the first stream's first token")
            queued = raw_post(srv.port, "/generate_stream", {"inputs": "x"})
            wait_until(lambda: srv.models.waiting("generate") == 2, "the second stream queued")
            queued.close()
            # The first stream still holds the model thread, yet the place is free again.
            wait_until(lambda: srv.models.waiting("generate") == 1, "the queue place back")
            other = raw_post(srv.port, "/generate_stream", {"inputs": "x"})
            wait_until(lambda: srv.models.waiting("generate") == 2, "a new stream queued")
            other.close()
            wait_until(lambda: srv.models.waiting("generate") == 1, "the new place back")
        finally:
            backend.release.set()
        assert running.result() > 0
    assert backend.calls == 1
    wait_until(lambda: srv.models.waiting("generate") == 0, "an idle model thread")


@pytest.mark.parametrize("route", ["generate", "chat"])
def test_a_client_leaving_a_non_streamed_answer_stops_the_model(make_server, route):
    endless = Scripted(iter(lambda: " x", None))  # never ends by itself
    srv = make_server(config(endless))
    if route == "generate":
        path, body = "/generate", {"inputs": "x", "parameters": {"max_new_tokens": 9_000_000}}
    else:
        path = CHAT
        body = {
            "model": GEN,
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 9_000_000,
        }
    leaving = raw_post(srv.port, path, body)
    wait_until(lambda: endless.pulled > 0, "the model started")
    leaving.close()
    assert endless.closed.wait(60), "the model kept generating for nobody"
    wait_until(lambda: srv.models.waiting("generate") == 0, "an idle model thread")
    endless.pieces = [" a", " b"]
    r = httpx.post(f"{srv.url}/generate", json={"inputs": "x"}, timeout=60)
    assert r.json()["generated_text"] == " a b"


def test_stopping_the_server_stops_a_non_streamed_generation(make_server):
    endless = Scripted(iter(lambda: " x", None))
    srv = make_server(config(endless))
    body = {"inputs": "x", "parameters": {"max_new_tokens": 9_000_000}}
    waiting = raw_post(srv.port, "/generate", body)
    try:
        wait_until(lambda: endless.pulled > 0, "the model started")
        srv.stop()
        assert endless.closed.wait(60), "the model outlived the server"
    finally:
        waiting.close()


class CutByLength(HashingBackend):
    """A backend that counts tokens, not pieces (as llama.cpp does with multi-byte text): it
    stops after two pieces and returns ``"length"`` to say why."""

    def generate_tokens(self, prompt: str, params: GenerationParams) -> Iterator[str]:
        yield " caf"
        yield "é"
        return "length"


def test_a_backend_that_ended_by_length_is_reported_as_length_not_eos(make_server):
    srv = make_server(config(CutByLength(16)))
    body = {"inputs": "x", "parameters": {"max_new_tokens": 5, "details": True}}
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{srv.url}/generate", json=body).json()
        events = payloads(client.post(f"{srv.url}/generate_stream", json=body).text)
    assert answer["generated_text"] == " café"
    assert answer["details"]["finish_reason"] == "length"
    assert "</s>" not in [t["text"] for t in answer["details"]["tokens"]]
    assert events[-1]["details"]["finish_reason"] == "length"
    assert events[-1]["generated_text"] == " café"
