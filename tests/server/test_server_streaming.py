"""Generation streams token by token: each token leaves as the model makes it, off the loop.

No timing: a ``Gated`` generator holds its second token until the test has received the first
event over HTTP, so a server that buffers the answer only gets past the gate by its timeout (and
the test fails on ``waited_out``). Disconnects and cancellation are proven by counting the
tokens the generator made and by its iterator being closed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from hfrag.errors import BackendError
from hfrag.server import HashingBackend, ModelSpec, ServerConfig
from hfrag.server.generation import GenResult, Step, StopHoldback, make_token
from hfrag.tasks import ChatClient, TextGenerationClient
from tests.gated import Gated, Scripted

GEN = "t/gen"
PROMPT = (
    "Berlin is the capital of Germany. Paris is the capital of France. Rome is in Italy.\n"
    "Question: What is the capital of France?"
)
CHAT = "/v1/chat/completions"


def config(backend: Any, **kwargs: Any) -> ServerConfig:
    spec = ModelSpec(GEN, "generate", backend, max_input_length=1000, max_total_tokens=10**7)
    return ServerConfig(models=[spec], **kwargs)


def payloads(lines: Iterator[str]) -> Iterator[Any]:
    """The decoded ``data:`` payloads of an SSE body, as they arrive."""
    for line in lines:
        if line.startswith("data:"):
            data = line[5:].strip()
            yield data if data == "[DONE]" else json.loads(data)


def tgi_text(event: Any) -> str:
    token = event["token"]
    return "" if token["special"] else token["text"]


def chat_text(event: Any) -> str:
    if event == "[DONE]" or not event["choices"]:
        return ""
    return event["choices"][0]["delta"].get("content") or ""


def messages(prompt: str = PROMPT) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


# route -> (path, body, text of one event)
ROUTES: dict[str, tuple[str, dict[str, Any], Callable[[Any], str]]] = {
    "generate_stream": ("/generate_stream", {"inputs": PROMPT}, tgi_text),
    "tgi root": ("/", {"inputs": PROMPT, "stream": True}, tgi_text),
    "router": (f"/hf-inference/models/{GEN}", {"inputs": PROMPT, "stream": True}, tgi_text),
    "chat": (CHAT, {"model": GEN, "messages": messages(), "stream": True}, chat_text),
}


def wait_until(condition: Callable[[], bool], what: str = "condition") -> None:
    pause = threading.Event()
    for _ in range(1000):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError(f"{what} not reached in 10 s")


def stream_text(
    client: httpx.Client, url: str, path: str, body: dict[str, Any], text_of: Callable[[Any], str]
) -> str:
    """The text of a whole streamed answer."""
    with client.stream("POST", url + path, json=body) as r:
        assert r.status_code == 200
        return "".join(text_of(e) for e in payloads(r.iter_lines()))


def hold_a_stream(
    pool: ThreadPoolExecutor, client: httpx.Client, url: str, backend: Gated
) -> Future[str]:
    """A ``/generate_stream`` answer on the model thread, held before its second token."""
    running = pool.submit(stream_text, client, url, *ROUTES["generate_stream"])
    wait_until(lambda: backend.produced == 1, "the first stream's first token")
    return running


def whole_answer(url: str, route: str, body: dict[str, Any]) -> str:
    """The non-streamed answer to the same request."""
    if route == "chat":
        r = httpx.post(f"{url}{CHAT}", json={**body, "stream": False}, timeout=30)
        return str(r.json()["choices"][0]["message"]["content"])
    r = httpx.post(f"{url}/generate", json={**body, "stream": False}, timeout=30)
    return str(r.json()["generated_text"])


@pytest.mark.parametrize("route", list(ROUTES))
def test_the_first_token_is_sent_while_the_model_makes_the_second(make_server, route):
    backend = Gated(HashingBackend(16))
    srv = make_server(config(backend))
    path, body, text_of = ROUTES[route]
    with httpx.Client(timeout=60) as client, client.stream("POST", srv.url + path, json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        events = payloads(r.iter_lines())
        first = next(events)
        held = not backend.release.is_set() and backend.produced == 1
        backend.release.set()
        rest = list(events)
    assert held
    assert not backend.waited_out, "the first event came only after the whole answer"
    assert text_of(first)
    streamed = text_of(first) + "".join(text_of(e) for e in rest)
    assert streamed == whole_answer(srv.url, route, body) == "Paris is the capital of France."
    assert len(rest) > 3


def test_a_client_leaving_while_the_model_works_stops_it_at_its_next_token(make_server):
    backend = Gated(Scripted([" tok"] * 1000))
    srv = make_server(config(backend))
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", f"{srv.url}/generate_stream", json={"inputs": "x"}) as r:
            assert tgi_text(next(payloads(r.iter_lines()))) == " tok"
        # The connection is closed while the model is held inside its second token: the
        # server notices without any token to write, and ends the request.
        wait_until(lambda: srv.counters.total("/generate_stream") == 1, "the request's end")
        backend.release.set()
        assert backend.closed.wait(10), "the generator was never closed"
        assert backend.produced == 2  # the token in the making when the client left, no more
        r2 = client.post(
            f"{srv.url}/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 3}}
        )
    assert r2.json()["generated_text"] == " tok tok tok"  # the model thread is free again
    wait_until(lambda: srv.models.waiting("generate") == 0, "an idle model thread")


@pytest.mark.parametrize("route", ["generate_stream", "chat"])
def test_a_client_that_stops_reading_an_endless_answer_stops_the_model(make_server, route):
    endless = Scripted(iter(lambda: " x", None))  # never ends by itself
    srv = make_server(config(endless))
    path, _, text_of = ROUTES[route]
    body: dict[str, Any] = {"inputs": "x", "parameters": {"max_new_tokens": 10**6}}
    if route == "chat":
        body = {"model": GEN, "messages": messages("x"), "max_tokens": 10**6, "stream": True}
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", srv.url + path, json=body) as r:
            events = payloads(r.iter_lines())
            assert [text_of(next(events)) for _ in range(3)] == [" x"] * 3
        assert endless.closed.wait(10), "the model kept generating for nobody"
        made = endless.pulled
        assert made < 10**6
        assert (
            client.post(
                f"{srv.url}/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 2}}
            ).status_code
            == 200
        )
    assert endless.pulled <= made + 2


def test_a_stream_whose_client_left_while_queued_never_starts(make_server):
    backend = Gated(HashingBackend(16))
    srv = make_server(config(backend))
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=60) as client:
        running = hold_a_stream(pool, client, srv.url, backend)
        request = json.dumps({"model": GEN, "messages": messages(), "stream": True}).encode()
        head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        with socket.create_connection(("127.0.0.1", srv.port)) as queued:
            queued.sendall(f"{head}Content-Length: {len(request)}\r\n\r\n".encode() + request)
            wait_until(lambda: srv.models.waiting("generate") == 2, "the second stream queued")
        wait_until(lambda: srv.counters.total(CHAT) == 1, "the queued request's end")
        backend.release.set()
        assert running.result() == "Paris is the capital of France."
    assert backend.calls == 1  # the queued generation was dropped before it began
    assert srv.counters.total(CHAT, -1) == 1
    wait_until(lambda: srv.models.waiting("generate") == 0, "an idle model thread")


def test_two_streams_and_queued_answers_share_one_model_thread(make_server):
    backend = Gated(HashingBackend(16))
    srv = make_server(config(backend))
    other = "Rome is in Italy. Oslo is cold.\nQuestion: Where is Rome?"
    with ThreadPoolExecutor(6) as pool, httpx.Client(timeout=60) as client:
        first = hold_a_stream(pool, client, srv.url, backend)
        chat_body = {"model": GEN, "messages": messages(other), "stream": True}
        second = pool.submit(stream_text, client, srv.url, CHAT, chat_body, chat_text)
        plain = [
            pool.submit(client.post, f"{srv.url}/generate", json={"inputs": p})
            for p in (PROMPT, other, PROMPT)
        ]
        wait_until(lambda: srv.models.waiting("generate") == 5, "every request queued")
        assert httpx.get(f"{srv.url}/health", timeout=5).status_code == 200  # loop not blocked
        backend.release.set()
        assert first.result() == "Paris is the capital of France."
        assert second.result() == "Rome is in Italy."
        answers = [f.result().json()["generated_text"] for f in plain]
    assert answers == [
        "Paris is the capital of France.",
        "Rome is in Italy.",
        "Paris is the capital of France.",
    ]
    assert not backend.waited_out


def test_a_full_queue_refuses_a_stream_with_429_not_a_200_stream(make_server):
    backend = Gated(HashingBackend(16))
    srv = make_server(config(backend, max_concurrent_requests=1))
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=60) as client:
        running = hold_a_stream(pool, client, srv.url, backend)
        try:
            for route in ("generate_stream", "chat"):
                p, b, _ = ROUTES[route]
                refused = client.post(srv.url + p, json=b)
                assert refused.status_code == 429
                assert refused.json()["error"] == "Model is overloaded"
        finally:
            backend.release.set()
        assert running.result() == "Paris is the capital of France."


@pytest.mark.parametrize("fail_at", [0, 2])
def test_a_failing_model_ends_the_stream_with_an_error_event(make_server, fail_at):
    backend = Scripted([" one", " two", " three"], fail_at=fail_at)
    srv = make_server(config(backend))
    with httpx.Client(timeout=30) as client:
        r = client.post(f"{srv.url}/generate_stream", json={"inputs": "x"})
        assert r.status_code == 200
        events = list(payloads(iter(r.text.splitlines())))
        assert [tgi_text(e) for e in events[:-1]] == [" one", " two"][:fail_at]
        assert events[-1] == {
            "error": "Request failed during generation: model exploded",
            "error_type": "generation",
        }
        chat = {"model": GEN, "messages": messages("x"), "stream": True}
        r = client.post(srv.url + CHAT, json=chat)
        assert r.status_code == 200
        events = list(payloads(iter(r.text.splitlines())))
        assert "[DONE]" not in events
        assert events[-1] == {
            "error": {
                "message": "Request failed during generation: model exploded",
                "http_status_code": 424,
            }
        }
        assert not any(e.get("generated_text") for e in events)
    with pytest.raises(BackendError, match="model exploded"):
        list(TextGenerationClient(endpoint_url=srv.url, max_retries=0).stream("x"))
    with pytest.raises(BackendError, match="model exploded"):
        list(ChatClient(endpoint_url=srv.url, max_retries=0).stream_chat(messages("x")))
    assert srv.counters.items_ok == 0  # no failed stream counted as delivered
    backend.fail_at = None
    assert httpx.post(f"{srv.url}/generate", json={"inputs": "x"}).json()["generated_text"] == (
        " one two three"
    )


def test_max_new_tokens_ends_the_stream_without_asking_the_model_for_more(make_server):
    backend = Scripted([f" w{i}" for i in range(10)])
    srv = make_server(config(backend))
    body = {"inputs": "x", "parameters": {"max_new_tokens": 3, "details": True, "seed": 7}}
    streamed = list(
        payloads(iter(httpx.post(f"{srv.url}/generate_stream", json=body).text.splitlines()))
    )
    assert backend.pulled == 3
    assert backend.closed.is_set()
    whole = httpx.post(f"{srv.url}/generate", json=body).json()
    assert [e["index"] for e in streamed] == [1, 2, 3]
    assert all(e["generated_text"] is None and e["details"] is None for e in streamed[:-1])
    last = streamed[-1]
    assert last["generated_text"] == whole["generated_text"] == " w0 w1 w2"
    assert last["details"] == {
        "finish_reason": "length",
        "generated_tokens": 3,
        "seed": 7,
        "input_length": 1,
    }
    assert whole["details"]["finish_reason"] == "length"
    assert [t["text"] for t in whole["details"]["tokens"]] == [tgi_text(e) for e in streamed]

    chat = {"model": GEN, "messages": messages("x"), "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    events = list(payloads(iter(httpx.post(srv.url + CHAT, json=chat).text.splitlines())))
    plain = httpx.post(srv.url + CHAT, json={**chat, "stream": False}).json()
    assert "".join(chat_text(e) for e in events) == plain["choices"][0]["message"]["content"]
    assert events[-1] == "[DONE]"
    assert events[-2]["usage"] == plain["usage"]
    assert plain["usage"]["completion_tokens"] == 3
    assert events[-3]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert plain["choices"][0]["finish_reason"] == "length"


# A stop sequence split over three tokens, a near miss, and a stop that never comes.
STOP_CASES = [
    (["The", " cap", "ital", " is", " Par", "is", "."], ["al is Pa"]),
    (["The", " cap", "ital", " is", " Par", "is", "."], ["is X", "s Pa"]),
    (["ab", "a", "ab", "c"], ["aac", "abc"]),
    (["Hello", " wo", "rld"], ["world!"]),
]


@pytest.mark.parametrize(("pieces", "stop"), STOP_CASES)
def test_stop_sequences_split_across_tokens(make_server, pieces, stop):
    srv = make_server(config(Scripted(pieces)))
    text = "".join(pieces)
    hits = [text.find(s) for s in stop if s in text]
    body = {"inputs": "x", "parameters": {"stop": stop, "details": True}}
    streamed = list(
        payloads(iter(httpx.post(f"{srv.url}/generate_stream", json=body).text.splitlines()))
    )
    whole = httpx.post(f"{srv.url}/generate", json=body).json()
    assert streamed[-1]["generated_text"] == whole["generated_text"]
    assert streamed[-1]["details"]["finish_reason"] == whole["details"]["finish_reason"]
    assert whole["details"]["finish_reason"] == ("stop_sequence" if hits else "eos_token")

    chat = {"model": GEN, "messages": messages("x"), "stop": stop, "stream": True}
    events = list(payloads(iter(httpx.post(srv.url + CHAT, json=chat).text.splitlines())))
    plain = httpx.post(srv.url + CHAT, json={**chat, "stream": False}).json()
    content = plain["choices"][0]["message"]["content"]
    assert content == (text[: min(hits)] if hits else text)
    assert "".join(chat_text(e) for e in events) == content
    assert all(chat_text(e) for e in events if e != "[DONE]" and e["choices"][0]["delta"])


def _steps(pieces: list[str], final: Step | None) -> Iterator[GenResult]:
    result = GenResult()
    for piece in pieces:
        result.add(Step(make_token(piece)))
        yield result
    if final is not None:
        result.add(final)
        yield result


def test_holdback_sends_only_what_cannot_begin_a_stop_sequence():
    holdback = StopHoldback(["world", "wx", ""])
    sent = [holdback.feed(r) for r in _steps(["Hello w", "o", "n", "der"], None)]
    assert sent == ["Hello ", "", "won", "der"]
    holdback = StopHoldback(["world"])
    final = Step(make_token("ld"), "stop_sequence", stop_at=6)
    assert [holdback.feed(r) for r in _steps(["Hello w", "or"], final)] == ["Hello ", "", ""]
    holdback = StopHoldback(["xyz"])
    final = Step(make_token("xy"), "length")  # the answer ends: the held text goes out
    assert [holdback.feed(r) for r in _steps(["ab x"], final)] == ["ab ", "xxy"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_chat_client_leaving_a_stream_early_stops_the_model(make_server, mode):
    backend = Gated(Scripted([" tok"] * 500))
    srv = make_server(config(backend))
    client = ChatClient(endpoint_url=srv.url, max_retries=0)

    async def first_async() -> Any:
        stream = client.astream_chat(messages("x"))
        try:
            return await stream.__anext__()
        finally:
            await stream.aclose()

    if mode == "sync":
        stream = client.stream_chat(messages("x"))
        first = next(stream)
        stream.close()
    else:
        first = asyncio.run(first_async())
    assert first.text == " tok"
    wait_until(lambda: srv.counters.total(CHAT) == 1, "the request's end")
    backend.release.set()
    assert backend.closed.wait(10)
    assert backend.produced == 2
    client.close()


def test_stopping_the_server_mid_stream_stops_the_model(make_server):
    endless = Scripted(iter(lambda: " x", None))
    srv = make_server(config(endless))
    body = {"inputs": "x", "parameters": {"max_new_tokens": 10**6}}
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{srv.url}/generate_stream", json=body) as r,
    ):
        assert tgi_text(next(payloads(r.iter_lines()))) == " x"
        srv.stop()  # while this client holds the stream open without reading
        assert endless.closed.wait(10), "the model kept generating after the server stopped"
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("hfrag-generate")],
        "no generation thread",
    )
