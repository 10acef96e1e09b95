"""TGI layout and chat: /generate, /generate_stream, POST /, /v1/chat/completions, /info.

Validation messages and statuses follow TGI's router/src/validation.rs and server.rs
(ValidationError -> 422 "validation", GenerationError -> 424 "generation").
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from hfrag.server import HashingBackend, ModelSpec, ServerConfig

CONTEXT = "Context: Paris is the capital of France. Bananas are yellow fruit."
PROMPT = CONTEXT + "\nQuestion: What is the capital of France?"
ANSWER = "Paris is the capital of France."
CHAT = [
    {"role": "system", "content": "Answer from this context. " + CONTEXT[9:]},
    {"role": "user", "content": "What colour are bananas?"},
]


def sse_payloads(r: httpx.Response) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in r.iter_lines() if line.startswith("data:")]


def stream(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[int, list[str]]:
    with client.stream("POST", path, json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        return r.status_code, sse_payloads(r)


@pytest.fixture
def small(make_server):
    """A generator with tiny limits: 10 input tokens, 20 total."""
    spec = ModelSpec(
        "hfrag/tiny", "generate", HashingBackend(), max_input_length=10, max_total_tokens=20
    )
    srv = make_server(ServerConfig(models=[spec]))
    with httpx.Client(base_url=srv.url) as c:
        yield c


def test_generate_answers_extractively(client):
    out = client.post("/generate", json={"inputs": PROMPT}).json()
    assert out == {"generated_text": ANSWER}


def test_generate_details_end_with_a_special_eos_token(client):
    body = {"inputs": PROMPT, "parameters": {"details": True, "seed": 7}}
    details = client.post("/generate", json=body).json()["details"]
    assert details["finish_reason"] == "eos_token"
    assert details["seed"] == 7
    tokens = details["tokens"]
    assert details["generated_tokens"] == len(tokens) == 7
    assert tokens[-1]["special"] is True
    assert tokens[-1]["text"] == "</s>"
    assert "".join(t["text"] for t in tokens if not t["special"]) == ANSWER
    assert set(tokens[0]) == {"id", "text", "logprob", "special"}


def test_max_new_tokens_gives_finish_length(client):
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 2, "details": True}}
    out = client.post("/generate", json=body).json()
    assert out["generated_text"] == "Paris is"
    assert out["details"]["finish_reason"] == "length"
    assert out["details"]["generated_tokens"] == 2


def test_stop_sequence_is_kept_in_tgi_text(client):
    body = {"inputs": PROMPT, "parameters": {"stop": ["capital"], "details": True}}
    out = client.post("/generate", json=body).json()
    assert out["generated_text"] == "Paris is the capital"
    assert out["details"]["finish_reason"] == "stop_sequence"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"max_new_tokens": 0}, "`max_new_tokens` must be strictly positive"),
        ({"temperature": 0.0}, "`temperature` must be strictly positive"),
        ({"top_p": 1.0}, "`top_p` must be > 0.0 and < 1.0"),
        ({"top_k": 0}, "`top_k` must be strictly positive"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "`stop` supports up to 4 stop sequences. Given: 5"),
    ],
)
def test_generate_parameter_validation(client, parameters, message):
    r = client.post("/generate", json={"inputs": PROMPT, "parameters": parameters})
    assert r.status_code == 422
    assert r.json() == {"error": f"Input validation error: {message}", "error_type": "validation"}


def test_generate_input_validation(small):
    r = small.post("/generate", json={"inputs": ""})
    assert r.json() == {
        "error": "Input validation error: `inputs` cannot be empty",
        "error_type": "validation",
    }
    fifteen = " ".join(f"w{i}" for i in range(15))
    r = small.post("/generate", json={"inputs": fifteen, "parameters": {"max_new_tokens": 2}})
    assert (r.status_code, r.json()["error"]) == (
        422,
        "Input validation error: `inputs` must have less than 10 tokens. Given: 15",
    )
    r = small.post("/generate", json={"inputs": fifteen, "parameters": {"max_new_tokens": 10}})
    assert r.json()["error"] == (
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 20. "
        "Given: 15 `inputs` tokens and 10 `max_new_tokens`"
    )
    body = {"inputs": fifteen, "parameters": {"max_new_tokens": 2, "truncate": 5}}
    assert small.post("/generate", json=body).status_code == 200
    body["parameters"]["truncate"] = 11
    assert (
        "`truncate` must be strictly positive and less than 10. Given: 11"
        in (small.post("/generate", json=body).json()["error"])
    )


def test_generate_missing_inputs_is_axum_422_text(client):
    r = client.post("/generate", json={"parameters": {}})
    assert r.status_code == 422
    assert r.text.startswith("Failed to deserialize the JSON body into the target type: ")


def test_generate_stream_events_and_no_done(client):
    status, payloads = stream(client, "/generate_stream", {"inputs": PROMPT})
    assert status == 200
    events = [json.loads(p) for p in payloads]
    assert [e["index"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["generated_text"] is None and e["details"] is None for e in events[:-1])
    last = events[-1]
    assert last["generated_text"] == ANSWER
    assert last["token"]["special"] is True
    assert last["details"]["finish_reason"] == "eos_token"
    assert last["details"]["generated_tokens"] == len(events)
    assert "input_length" in last["details"]
    assert "[DONE]" not in payloads


def test_generate_stream_sends_data_without_space(client):
    with client.stream("POST", "/generate_stream", json={"inputs": PROMPT}) as r:
        first = next(line for line in r.iter_lines() if line)
    assert first.startswith('data:{"index":1')


def test_validation_error_of_a_stream_is_an_event_in_a_200(client):
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 0}}
    status, payloads = stream(client, "/generate_stream", body)
    assert status == 200
    assert [json.loads(p) for p in payloads] == [
        {
            "error": "Input validation error: `max_new_tokens` must be strictly positive",
            "error_type": "validation",
        }
    ]


def test_post_root_of_a_generator_is_wrapped_and_streams(make_server):
    srv = make_server(ServerConfig.default(primary="hfrag/extractive-gen"))
    with httpx.Client(base_url=srv.url) as c:
        assert c.post("/", json={"inputs": PROMPT}).json() == [{"generated_text": ANSWER}]
        _status, payloads = stream(c, "/", {"inputs": PROMPT, "stream": True})
        assert json.loads(payloads[-1])["generated_text"] == ANSWER
        info = c.get("/info").json()
    assert info["model_id"] == "hfrag/extractive-gen"
    assert info["max_input_tokens"] == 4096
    assert info["max_total_tokens"] == 8192
    assert info["router"] == "text-generation-router"


# -- chat ---------------------------------------------------------------------------------------


def test_chat_completion_shape(client):
    r = client.post(
        "/v1/chat/completions", json={"model": "hfrag/extractive-gen", "messages": CHAT}
    )
    out = r.json()
    assert out["object"] == "chat.completion"
    assert out["model"] == "hfrag/extractive-gen"
    choice = out["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Bananas are yellow fruit."}
    assert choice["finish_reason"] == "stop"
    usage = out["usage"]
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + 4


def test_chat_model_selection(client):
    for model in ("hfrag/extractive-gen:hf-inference", "tgi", None):
        body: dict[str, Any] = {"messages": CHAT}
        if model:
            body["model"] = model
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    r = client.post("/v1/chat/completions", json={"model": "org/unknown", "messages": CHAT})
    assert (r.status_code, r.json()) == (404, {"error": "Model org/unknown does not exist"})
    r = client.post("/v1/chat/completions", json={"model": "hfrag/hash-embed", "messages": CHAT})
    assert r.status_code == 400


def test_chat_max_tokens_stop_and_openai_defaults(client):
    body = {"messages": CHAT, "max_tokens": 1, "temperature": 0, "top_p": 1}
    out = client.post("/v1/chat/completions", json=body).json()
    assert out["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "Bananas"},
        "logprobs": None,
        "finish_reason": "length",
    }
    out = client.post("/v1/chat/completions", json={"messages": CHAT, "stop": " yellow"}).json()
    assert out["choices"][0]["message"]["content"] == "Bananas are"
    assert out["choices"][0]["finish_reason"] == "stop"


def test_chat_missing_messages_is_422(client):
    r = client.post("/v1/chat/completions", json={"model": "tgi"})
    assert r.status_code == 422
    assert "missing field `messages`" in r.text


def test_chat_stream_chunks_usage_and_done(client):
    body = {"messages": CHAT, "stream": True, "stream_options": {"include_usage": True}}
    status, payloads = stream(client, "/v1/chat/completions", body)
    assert status == 200
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Bananas are yellow fruit."
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "stop"
    assert set(finish[:-1]) == {None}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    status, plain = stream(client, "/v1/chat/completions", {"messages": CHAT, "stream": True})
    assert all("usage" not in json.loads(p) for p in plain[:-1])


def test_chat_stream_uses_data_with_a_space(client):
    with client.stream(
        "POST", "/v1/chat/completions", json={"messages": CHAT, "stream": True}
    ) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[0].startswith("data: {")
    assert lines[-1] == "data: [DONE]"


def test_chat_stream_validation_error_is_an_openai_error_event(client):
    body = {"messages": CHAT, "stream": True, "max_tokens": 0}
    status, payloads = stream(client, "/v1/chat/completions", body)
    assert status == 200
    assert [json.loads(p) for p in payloads] == [
        {
            "error": {
                "message": "Input validation error: `max_new_tokens` must be strictly positive",
                "http_status_code": 422,
            }
        }
    ]


def test_chat_empty_messages(client):
    r = client.post("/v1/chat/completions", json={"messages": []})
    assert r.status_code == 422
    assert r.json()["error_type"] == "validation"
