"""``hfrag serve``: options, and a real subprocess answering over HTTP."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import hfrag.cli
from hfrag.cli import build_parser, main
from hfrag.server.testing import serve_in_subprocess
from tests.sockets import free_base_port

SRC = str(Path(hfrag.cli.__file__).resolve().parents[1])


def serve_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["serve"]


def test_every_serve_option_has_help():
    actions = [a for a in serve_parser()._actions if a.option_strings]
    undocumented = [a.option_strings for a in actions if not a.help]
    assert undocumented == []
    flags = {flag for a in actions for flag in a.option_strings}
    for flag in (
        "--host",
        "--port",
        "--api-key",
        "--max-batch-size",
        "--max-input-length",
        "--auto-truncate",
        "--embed-dim",
        "--primary",
        "--latency",
        "--latency-per-item",
        "--max-concurrency",
        "--seed",
        "--cold-start",
        "--fault-loading",
        "--fault-rate-limit",
        "--fault-500",
        "--fault-502",
        "--fault-drop",
        "--fault-stall",
        "--fault-truncate",
        "--fault-stream-error",
        "--model",
    ):
        assert flag in flags


def test_help_never_shows_the_key_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("HFRAG_SERVER_API_KEY", "s3cret-from-env")
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "s3cret-from-env" not in capsys.readouterr().out


def test_bad_arguments(capsys):
    assert main([]) == 2
    with pytest.raises(SystemExit):
        main(["serve", "--fault-500", "2"])
    assert "not a probability" in capsys.readouterr().err
    assert main(["serve", "--models", "hash", "--primary", "org/unknown"]) == 2
    err = capsys.readouterr().err
    assert "unknown --primary 'org/unknown'; this server's models: hfrag/hash-embed," in err
    assert "hfrag/extractive-gen" in err


def test_help_shows_each_default_once(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    options = re.split(r"\n  (?=-)", out.split("options:", 1)[1])
    for option in options:
        assert option.lower().count("default") <= 1, option
    assert "(default: 8080)" in out
    assert "(default: info)" in out
    assert "(default: None)" not in out


def test_serve_subprocess_answers_and_stops(tmp_path):
    port = free_base_port()
    env = {**os.environ, "PYTHONPATH": SRC, "HFRAG_SERVER_API_KEY": "k"}
    cmd = [
        sys.executable,
        "-m",
        "hfrag",
        "serve",
        "--port",
        str(port),
        "--max-batch-size",
        "4",
        "--embed-dim",
        "32",
        "--log-level",
        "info",
        "--model",
        "acme/embedder=embed",
        "--model",
        "acme/gen=generate",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not become healthy"
            time.sleep(0.05)
        auth = {"Authorization": "Bearer k"}
        r = httpx.post(f"{url}/embed", json={"inputs": ["a", "b"]}, headers=auth)
        assert r.status_code == 200
        assert len(r.json()[0]) == 32
        assert httpx.post(f"{url}/embed", json={"inputs": ["a"]}).status_code == 401
        assert (
            httpx.post(f"{url}/embed", json={"inputs": ["a"] * 5}, headers=auth).status_code == 413
        )
        assert httpx.get(f"{url}/info", headers=auth).json()["model_id"] == "acme/embedder"
        # one listener per deployment: TGI two ports up, the router layout three
        tgi, router = f"http://127.0.0.1:{port + 2}", f"http://127.0.0.1:{port + 3}"
        assert httpx.get(f"{tgi}/info", headers=auth).json()["model_id"] == "acme/gen"
        assert httpx.post(f"{tgi}/embed", json={"inputs": ["a"]}, headers=auth).status_code == 404
        listed = httpx.get(f"{router}/v1/models", headers=auth).json()
        assert [m["id"] for m in listed["data"]] == ["acme/embedder", "acme/gen"]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[:4] == [
        "serving models:",
        "  acme/embedder (embed, HashingBackend, max input 512)",
        "  acme/gen (generate, RuleTools(HashingBackend), max input 512, tool calls by rule)",
        "listeners (each with its own /info):",
    ]
    assert [line.split()[:2] for line in lines[4:7]] == [
        [f"http://127.0.0.1:{port}", "TEI"],
        [f"http://127.0.0.1:{port + 2}", "TGI"],
        [f"http://127.0.0.1:{port + 3}", "router"],
    ]
    router_url = f"http://127.0.0.1:{port + 3}"
    assert lines[7].startswith(f"hfrag server ready on {router_url} (router layout")
    assert len(lines) == 8
    assert re.search(r"INFO hfrag\.server: POST /embed 200 items=2 \d+\.\dms", err), err
    assert re.search(r"POST /embed 401 items=1 ", err), err
    assert re.search(r"POST /embed 413 items=5 ", err), err
    assert re.search(r"GET /v1/models 200 items=- ", err), err
    assert "Bearer k" not in err


def test_models_hash_serves_the_hashing_models():
    from hfrag.cli import _config_from_args, build_parser

    args = build_parser().parse_args(["serve", "--models", "hash"])
    names = [m.name for m in _config_from_args(args).models]
    assert names[0] == "hfrag/hash-embed"


def test_models_real_serves_the_packaged_models_and_says_so():
    from hfrag.cli import _config_from_args, build_parser, describe_models
    from hfrag.server.backends_sparse import splade_tiny_dir
    from hfrag.server.models_real import missing_runtimes

    args = build_parser().parse_args(["serve", "--models", "real", "--max-input-length", "9"])
    if missing_runtimes():
        with pytest.raises(ValueError, match="--models real needs"):
            _config_from_args(args)
        return
    config = _config_from_args(args)
    assert [(m.name, m.kind) for m in config.models] == [
        ("sentence-transformers/all-MiniLM-L6-v2", "embed"),
        ("hfrag/minilm-cosine-rerank", "rerank"),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "generate"),
        *([("hfrag/splade-tiny", "sparse")] if splade_tiny_dir() else []),
    ]
    assert config.models[0].max_input_length == 256  # the model's limit, not --max-input-length
    text = describe_models(config)
    assert "sentence-transformers/all-MiniLM-L6-v2 (embed, onnxruntime-int8, max input 256)" in text
    assert (
        "HuggingFaceTB/SmolLM2-135M-Instruct (generate, llama.cpp, max input 1536, tool calls "
        "and response_format decided by the model under a llama.cpp grammar)"
    ) in text


def test_serve_in_subprocess_yields_a_live_server_and_stops_it():
    serving = serve_in_subprocess("--models", "hash", "--embed-dim", "16", "--log-level", "info")
    with serving as url, httpx.Client(timeout=10) as http:
        # A log line a request, about 100 KB in all: more than a pipe holds (64 KB) unless drained.
        for _ in range(1200):
            assert http.post(f"{url}/embed", json={"inputs": ["a"]}).status_code == 200
        assert len(http.post(f"{url}/embed", json={"inputs": ["a"]}).json()[0]) == 16
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)


def test_serve_in_subprocess_says_why_the_server_did_not_start():
    refused = pytest.raises(RuntimeError, match="exited before it was ready")
    with refused as info, serve_in_subprocess("--max-batch-size", "zero"):
        pass
    assert "zero" in str(info.value)


def test_provider_mapping_file_is_served_by_the_hub_api_and_the_provider_routes(tmp_path):
    mapping = {
        "hfrag/hash-embed": {
            "together": {
                "providerId": "togethercomputer/embed",
                "status": "live",
                "task": "feature-extraction",
            },
        },
        "org/chat-only": {
            "novita": {"providerId": "org/chat", "status": "staging", "task": "conversational"},
        },
    }
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping))
    serving = serve_in_subprocess(
        "--models", "hash", "--provider-mapping", str(path), "--mapping-form", "list"
    )
    with serving as url, httpx.Client(timeout=10) as http:
        params = {"expand[]": "inferenceProviderMapping"}
        listed = http.get(f"{url}/api/models/hfrag/hash-embed", params=params).json()
        assert listed["inferenceProviderMapping"] == [
            {"provider": "together", **mapping["hfrag/hash-embed"]["together"]}
        ]
        # The provider route knows the model by the provider's id from the file.
        body = {"model": "togethercomputer/embed", "input": ["a"]}
        assert http.post(f"{url}/together/v1/embeddings", json=body).status_code == 200
        body["model"] = "hfrag/hash-embed"
        assert http.post(f"{url}/together/v1/embeddings", json=body).status_code == 404


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("not json", "cannot read"),
        ("[]", "must hold {model_id"),
        ('{"m": {"p": "x"}}', "'m' is not {model_id"),
        ('{"m": {"p": {"providerId": 1, "task": "t"}}}', "'m' is not {model_id"),
        ('{"m": {"p": {"providerId": "x"}}}', "lacks providerId or task"),
    ],
)
def test_a_bad_provider_mapping_file_is_an_argument_error(tmp_path, capsys, content, words):
    path = tmp_path / "mapping.json"
    path.write_text(content)
    with pytest.raises(SystemExit):
        main(["serve", "--provider-mapping", str(path)])
    assert words in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--provider-mapping", str(tmp_path / "missing.json")])
    assert "cannot read" in capsys.readouterr().err
