"""SmolLM2-135M-Instruct served for real through llama.cpp: TGI, router and chat routes.

Greedy decoding is deterministic, so every answer through the server is compared with the same
backend called in process on the same prompt.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from hfrag.server import GenerationParams, ModelSpec
from hfrag.server.models_real import GENERATE_MODEL

MESSAGES = [
    {"role": "system", "content": "You answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def generator(real_specs: list[ModelSpec]) -> Any:
    return real_specs[2].backend


def greedy(generator: Any, prompt: str, n: int) -> str:
    pieces = list(generator.generate_tokens(prompt, GenerationParams(max_new_tokens=n)))
    return "".join(pieces[:n])


def events(text: str) -> list[Any]:
    out = []
    for line in text.splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_chat_prompt_is_the_models_own_template(generator):
    prompt = generator.render_chat(MESSAGES)
    assert prompt.startswith("<|im_start|>system\nYou answer in one short sentence.<|im_end|>")
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    tokens = generator.tokenize(prompt)
    assert tokens[0] == "<|im_start|>"  # special tokens are single tokens
    # with no system message, SmolLM2's template adds its own
    assert "SmolLM" in generator.render_chat(MESSAGES[1:])


def test_generate_matches_in_process_greedy(real_server, generator):
    prompt = generator.render_chat(MESSAGES)
    r = httpx.post(
        f"{real_server.url}/generate",
        json={"inputs": prompt, "parameters": {"max_new_tokens": 12, "details": True}},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["generated_text"] == greedy(generator, prompt, 12)
    assert body["generated_text"].strip()
    assert body["details"]["finish_reason"] in ("length", "eos_token")


def test_generate_stream_pieces_add_up(real_server, generator):
    prompt = generator.render_chat(MESSAGES)
    r = httpx.post(
        f"{real_server.url}/generate_stream",
        json={"inputs": prompt, "parameters": {"max_new_tokens": 12}},
        timeout=120,
    )
    assert r.status_code == 200
    evs = events(r.text)
    text = "".join(e["token"]["text"] for e in evs if not e["token"]["special"])
    assert text == evs[-1]["generated_text"] == greedy(generator, prompt, 12)
    assert len(evs) > 3


def test_chat_completion(real_server, generator):
    body = {"model": GENERATE_MODEL, "messages": MESSAGES, "max_tokens": 24}
    r = httpx.post(f"{real_server.url}/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    answer = r.json()
    prompt = generator.render_chat(MESSAGES)
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": greedy(generator, prompt, 24),
    }
    assert answer["usage"]["prompt_tokens"] == len(generator.tokenize(prompt))
    assert answer["choices"][0]["finish_reason"] in ("stop", "length")


def test_chat_stream_deltas_add_up(real_server, generator):
    body = {"model": GENERATE_MODEL, "messages": MESSAGES, "max_tokens": 24, "stream": True}
    r = httpx.post(f"{real_server.url}/v1/chat/completions", json=body, timeout=120)
    evs = events(r.text)
    assert evs[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in evs[:-1] if e["choices"])
    assert text == greedy(generator, generator.render_chat(MESSAGES), 24)


def test_stop_sequence_and_router_layout(real_server, generator):
    prompt = generator.render_chat(MESSAGES)
    full = greedy(generator, prompt, 24)
    word = full.split()[1]
    r = httpx.post(
        f"{real_server.url}/hf-inference/models/{GENERATE_MODEL}",
        json={"inputs": prompt, "parameters": {"max_new_tokens": 24, "stop": [word]}},
        timeout=120,
    )
    assert r.status_code == 200
    text = r.json()[0]["generated_text"]
    assert text.endswith(word)  # TGI keeps the stop sequence
    assert full.startswith(text)


def test_over_long_prompt_is_refused_with_the_real_count(real_server, generator):
    prompt = "word " * 3000
    r = httpx.post(
        f"{real_server.url}/generate", json={"inputs": prompt, "parameters": {"max_new_tokens": 4}}
    )
    assert r.status_code == 422
    assert f"Given: {len(generator.tokenize(prompt))}" in r.json()["error"]


def test_info_of_a_generation_primary(real_specs):
    from hfrag.server import ServerConfig
    from hfrag.server.testing import serve_in_thread

    config = ServerConfig(models=real_specs).with_primary(GENERATE_MODEL)
    with serve_in_thread(config) as srv:
        info = httpx.get(f"{srv.url}/info").json()
    assert info["model_id"] == GENERATE_MODEL
    assert info["max_total_tokens"] == 2048
    assert info["max_input_tokens"] == 1536


@pytest.mark.parametrize("seed", [0, 2**32 + 5, 2**63 - 1])
def test_sampling_with_any_tgi_seed(real_server, seed):
    body = {
        "inputs": "Once upon a time",
        "parameters": {"max_new_tokens": 4, "do_sample": True, "temperature": 0.8, "seed": seed},
    }
    first = httpx.post(f"{real_server.url}/generate", json=body, timeout=120)
    again = httpx.post(f"{real_server.url}/generate", json=body, timeout=120)
    assert first.status_code == 200, first.text
    assert first.json() == again.json()  # the same seed samples the same text


def test_odd_chat_messages(real_server):
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "user", "content": None},
        ],
        "max_tokens": 2,
    }
    r = httpx.post(f"{real_server.url}/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] <= 2


# -- streaming token by token ---------------------------------------------------------------------


def test_streams_equal_the_whole_greedy_answer(real_server, generator):
    prompt = generator.render_chat(MESSAGES)
    params = {"max_new_tokens": 24, "details": True}
    whole = httpx.post(
        f"{real_server.url}/generate", json={"inputs": prompt, "parameters": params}, timeout=120
    ).json()
    r = httpx.post(
        f"{real_server.url}/generate_stream",
        json={"inputs": prompt, "parameters": params},
        timeout=120,
    )
    evs = events(r.text)
    assert len(evs) > 5
    text = "".join(e["token"]["text"] for e in evs if not e["token"]["special"])
    assert text == evs[-1]["generated_text"] == whole["generated_text"]
    assert evs[-1]["details"]["finish_reason"] == whole["details"]["finish_reason"]
    assert evs[-1]["details"]["generated_tokens"] == whole["details"]["generated_tokens"]

    body = {"model": GENERATE_MODEL, "messages": MESSAGES, "max_tokens": 24, "temperature": 0}
    plain = httpx.post(f"{real_server.url}/v1/chat/completions", json=body, timeout=120).json()
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    r = httpx.post(f"{real_server.url}/v1/chat/completions", json=streamed, timeout=120)
    evs = events(r.text)
    deltas = [e["choices"][0]["delta"].get("content") for e in evs[:-3]]
    assert len(deltas) > 5
    assert "".join(deltas) == plain["choices"][0]["message"]["content"]
    assert evs[-3]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert evs[-2]["usage"] == plain["usage"]


def test_the_real_model_streams_its_first_token_before_making_the_second(real_specs, generator):
    from hfrag.server import ServerConfig
    from hfrag.server.testing import serve_in_thread
    from tests.gated import Gated

    gated = Gated(generator)
    spec = real_specs[2]
    held = ModelSpec(spec.name, "generate", gated, max_input_length=1536, max_total_tokens=2048)
    body = {"model": GENERATE_MODEL, "messages": MESSAGES, "max_tokens": 16, "stream": True}
    with (
        serve_in_thread(ServerConfig(models=[held])) as srv,
        httpx.Client(timeout=120) as client,
        client.stream("POST", f"{srv.url}/v1/chat/completions", json=body) as r,
    ):
        lines = (line for line in r.iter_lines() if line.startswith("data:"))
        first = json.loads(next(lines)[5:])
        was_held = gated.produced == 1 and not gated.release.is_set()
        gated.release.set()
        rest = [json.loads(line[5:]) for line in lines if line.strip() != "data: [DONE]"]
    assert was_held
    assert not gated.waited_out
    pieces = [e["choices"][0]["delta"].get("content") or "" for e in [first, *rest]]
    assert "".join(pieces) == greedy(generator, generator.render_chat(MESSAGES), 16)


def test_chat_client_streams_the_same_answer(real_server, generator):
    from hfrag.tasks import ChatClient, GenerationOptions
    from hfrag.tasks.generation import TextDelta

    client = ChatClient(
        GENERATE_MODEL,
        router_url=real_server.url,
        options=GenerationOptions(max_new_tokens=24, temperature=0.0),
        timeout=120,
    )
    try:
        whole = client.chat(MESSAGES)
        pieces = [c.text for c in client.stream_chat(MESSAGES) if isinstance(c, TextDelta)]
    finally:
        client.close()
    assert len(pieces) > 5
    assert "".join(pieces) == whole.text == greedy(generator, generator.render_chat(MESSAGES), 24)


def test_chat_stream_with_a_stop_sequence_matches_the_whole_answer(real_server, generator):
    full = greedy(generator, generator.render_chat(MESSAGES), 24)
    stop = full[len(full) // 3 : len(full) // 3 + 5]  # likely split across tokens
    body = {"model": GENERATE_MODEL, "messages": MESSAGES, "max_tokens": 24, "stop": [stop]}
    plain = httpx.post(f"{real_server.url}/v1/chat/completions", json=body, timeout=120).json()
    r = httpx.post(
        f"{real_server.url}/v1/chat/completions", json={**body, "stream": True}, timeout=120
    )
    evs = events(r.text)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in evs[:-1] if e["choices"])
    assert text == plain["choices"][0]["message"]["content"] == full[: full.find(stop)]
    assert evs[-2]["choices"][0]["finish_reason"] == "stop"


def test_a_stream_left_early_leaves_the_model_answering_as_before(real_server, generator):
    body = {"model": GENERATE_MODEL, "messages": MESSAGES, "max_tokens": 48, "stream": True}
    with (
        httpx.Client(timeout=120) as client,
        client.stream("POST", f"{real_server.url}/v1/chat/completions", json=body) as r,
    ):
        lines = (line for line in r.iter_lines() if line.startswith("data:"))
        assert [next(lines), next(lines)]  # two tokens, then the client hangs up
    plain = {**body, "stream": False, "max_tokens": 24}
    answer = httpx.post(f"{real_server.url}/v1/chat/completions", json=plain, timeout=120).json()
    prompt = generator.render_chat(MESSAGES)
    assert answer["choices"][0]["message"]["content"] == greedy(generator, prompt, 24)
