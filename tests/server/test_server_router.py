"""The HF router layout: /hf-inference/models/{org/name}/pipeline/{task} and the model root."""

from __future__ import annotations

import json
import math

import httpx
import numpy as np
import pytest

from hfrag.server.backends import sigmoid

BASE = "/hf-inference/models"
FE = f"{BASE}/hfrag/hash-embed/pipeline/feature-extraction"


def test_single_string_is_1d_and_a_list_is_2d(server, client):
    backend = server.config.model("hfrag/hash-embed").backend
    one = client.post(FE, json={"inputs": "hello"}).json()
    assert isinstance(one[0], float)
    np.testing.assert_array_equal(np.asarray(one, dtype=np.float32), backend.embed(["hello"])[0])
    many = client.post(FE, json={"inputs": ["hello", "world"]}).json()
    assert np.asarray(many).shape == (2, 384)


def test_options_sit_at_the_root(server, client):
    backend = server.config.model("hfrag/hash-embed").backend
    body = {"inputs": ["tower"], "prompt_name": "document", "normalize": False}
    out = np.asarray(client.post(FE, json=body).json(), dtype=np.float32)
    np.testing.assert_array_equal(out, backend.embed(["passage: tower"], normalize=False))


def test_model_without_pooling_gives_ragged_token_vectors(server, client):
    # The real router's shapes (tests/conformance/test_feature_extraction.py replays them):
    # [n][1][tokens][dim] for a list, [1][tokens][dim] for a string.
    path = f"{BASE}/hfrag/hash-embed-tokens/pipeline/feature-extraction"
    backend = server.config.model("hfrag/hash-embed-tokens").backend
    batch = client.post(path, json={"inputs": ["a", "b c d e"]}).json()
    assert [len(item) for item in batch] == [1, 1]
    assert [len(item[0]) for item in batch] == [1, 4]
    assert all(len(vec) == 384 for item in batch for vec in item[0])
    with pytest.raises(ValueError):
        np.asarray(batch, dtype=np.float32)  # ragged: a client must pool, not stack
    np.testing.assert_array_equal(
        np.asarray(batch[1][0], dtype=np.float32), backend.token_embeddings("b c d e")
    )
    single = client.post(path, json={"inputs": "b c d e"}).json()
    np.testing.assert_array_equal(
        np.asarray(single, dtype=np.float32), backend.token_embeddings("b c d e")[None]
    )


def test_unknown_model_is_404_with_hf_body(client):
    r = client.post(f"{BASE}/org/missing/pipeline/feature-extraction", json={"inputs": "x"})
    assert r.status_code == 404
    assert r.json() == {"error": "Model org/missing does not exist"}
    r = client.post(f"{BASE}/org/missing", json={"inputs": "x"})
    assert r.status_code == 404


def test_task_the_model_does_not_do_is_400(client):
    r = client.post(f"{BASE}/hfrag/hash-rerank/pipeline/feature-extraction", json={"inputs": "x"})
    assert r.status_code == 400
    assert "does not support task feature-extraction" in r.json()["error"]


def test_validation_errors_are_teis(client):
    r = client.post(FE, json={"inputs": ["x"] * 40})
    assert r.status_code == 413
    assert r.json()["error"] == "batch size 40 > maximum allowed batch size 32"
    assert client.post(FE, json={"inputs": []}).status_code == 400


def test_sentence_similarity(server, client):
    path = f"{BASE}/hfrag/hash-embed/pipeline/sentence-similarity"
    body = {"inputs": {"source_sentence": "a red cat", "sentences": ["a red cat", "a blue dog"]}}
    sims = client.post(path, json=body).json()
    assert sims[0] == pytest.approx(1.0)
    backend = server.config.model("hfrag/hash-embed").backend
    vecs = backend.embed(["a red cat", "a blue dog"]).astype(np.float64)
    assert sims[1] == pytest.approx(float(vecs[0] @ vecs[1]), rel=1e-5)
    empty = client.post(path, json={"inputs": {"source_sentence": "x", "sentences": []}})
    assert empty.status_code == 400
    assert empty.json()["error"] == "`inputs.sentences` cannot be empty"


def test_text_classification_of_pairs(server, client):
    path = f"{BASE}/hfrag/hash-rerank"
    pairs = [
        {"text": "capital of France", "text_pair": "Paris is the capital of France"},
        {"text": "capital of France", "text_pair": "bananas are yellow"},
    ]
    out = client.post(path, json={"inputs": pairs}).json()
    assert len(out) == 2
    assert all(len(labels) == 1 and set(labels[0]) == {"label", "score"} for labels in out)
    backend = server.config.model("hfrag/hash-rerank").backend
    logits = [backend.score(p["text"], p["text_pair"]) for p in pairs]
    assert [labels[0]["score"] for labels in out] == pytest.approx([sigmoid(x) for x in logits])
    assert out[0][0]["score"] > 0.5 > out[1][0]["score"]
    raw = client.post(
        path, json={"inputs": pairs, "parameters": {"function_to_apply": "none", "top_k": 1}}
    ).json()
    assert [labels[0]["score"] for labels in raw] == pytest.approx(logits)
    soft = client.post(path, json={"inputs": pairs, "parameters": {"function_to_apply": "softmax"}})
    assert [labels[0]["score"] for labels in soft.json()] == [1.0, 1.0]
    assert server.counters.texts_ok["bananas are yellow"] == 3
    same = client.post(f"{path}/pipeline/text-classification", json={"inputs": pairs}).json()
    assert same == out


def test_text_classification_errors(client):
    path = f"{BASE}/hfrag/hash-rerank"
    pairs = [{"text": "q", "text_pair": "d"}]
    bad = client.post(path, json={"inputs": pairs, "parameters": {"function_to_apply": "relu"}})
    assert bad.status_code == 400
    assert client.post(path, json={"inputs": []}).status_code == 400
    assert client.post(path, json={"inputs": pairs * 33}).status_code == 413
    assert client.post(path, json={"inputs": [{"nope": 1}]}).status_code == 422


def test_text_generation_is_list_wrapped(client):
    path = f"{BASE}/hfrag/extractive-gen"
    prompt = (
        "Context: The Eiffel tower is in Paris. Rome has the Colosseum.\n"
        "Question: Where is the Eiffel tower?"
    )
    out = client.post(path, json={"inputs": prompt}).json()
    assert out == [{"generated_text": "The Eiffel tower is in Paris."}]
    full = client.post(path, json={"inputs": prompt, "parameters": {"return_full_text": True}})
    assert full.json()[0]["generated_text"] == prompt + "The Eiffel tower is in Paris."


def test_text_generation_stream_is_tgi_sse(client):
    path = f"{BASE}/hfrag/extractive-gen"
    body = {"inputs": "Rome has the Colosseum. What does Rome have?", "stream": True}
    with client.stream("POST", path, json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    events = [json.loads(line[len("data:") :]) for line in lines]
    assert events[-1]["generated_text"] == "Rome has the Colosseum."
    assert all(e["generated_text"] is None for e in events[:-1])
    assert "[DONE]" not in "".join(lines)


def test_model_id_with_slash_is_read_whole(make_server):
    from hfrag.server import HashingBackend, ModelSpec, ServerConfig

    spec = ModelSpec("BAAI/bge-small-en-v1.5", "embed", HashingBackend(dim=8))
    srv = make_server(ServerConfig(models=[spec]))
    r = httpx.post(
        f"{srv.url}{BASE}/BAAI/bge-small-en-v1.5/pipeline/feature-extraction", json={"inputs": "x"}
    )
    assert r.status_code == 200
    assert len(r.json()) == 8
    assert math.isclose(float(np.linalg.norm(r.json())), 1.0, rel_tol=1e-6)


def test_v1_models_lists_every_served_model_in_openai_shape(make_server) -> None:
    import httpx

    from hfrag.server import ServerConfig

    srv = make_server(ServerConfig.default(api_key="k"))
    assert httpx.get(f"{srv.url}/v1/models").status_code == 401
    body = httpx.get(f"{srv.url}/v1/models", headers={"Authorization": "Bearer k"}).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [m.name for m in srv.config.models]
    assert all(m["object"] == "model" and m["owned_by"] == "hfrag" for m in body["data"])


def test_access_log_counts_items(make_server, caplog) -> None:
    import logging

    import httpx

    caplog.set_level(logging.INFO, logger="hfrag.server")
    srv = make_server()
    httpx.post(f"{srv.url}/rerank", json={"query": "q", "texts": ["a", "b", "c"]})
    httpx.post(f"{srv.url}/embed", json={"inputs": "one"})
    httpx.get(f"{srv.url}/health")
    lines = [r.getMessage() for r in caplog.records if r.name == "hfrag.server"]
    assert lines[0].startswith("POST /rerank 200 items=3 ")
    assert lines[1].startswith("POST /embed 200 items=1 ")
    assert lines[2].startswith("GET /health 200 items=- ")
    assert all(line.endswith("ms") for line in lines)
