"""Cohere/Jina-style rerank on the local server (/v1/rerank, /v2/rerank), and multi-label
classifiers on the router and TEI layouts."""

from __future__ import annotations

import math

import httpx
import pytest

from hfrag.server import FaultConfig, ServerConfig
from hfrag.server.backends import sigmoid
from hfrag.server.config import ModelSpec, default_models
from hfrag.server.hashing import HashingBackend

RERANK = "hfrag/hash-rerank"
LONG = " ".join(f"word{i}" for i in range(600))
QUERY = "capital of France"
TEXTS = ["bananas are yellow", "Paris is the capital of France", "the capital city", "France"]


def expected(server, query, text):
    return sigmoid(server.config.model(RERANK).backend.score(query, text))


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_results_are_sorted_with_indices_and_relevance_scores(server, client, path):
    r = client.post(path, json={"query": QUERY, "documents": TEXTS})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == RERANK
    assert body["usage"]["total_tokens"] > 0
    results = body["results"]
    assert [set(x) for x in results] == [{"index", "relevance_score"}] * len(TEXTS)
    assert sorted(x["index"] for x in results) == list(range(len(TEXTS)))
    scores = [x["relevance_score"] for x in results]
    assert scores == sorted(scores, reverse=True)
    assert [x["index"] for x in results] != list(range(len(TEXTS)))  # not input order
    for x in results:
        assert math.isclose(x["relevance_score"], expected(server, QUERY, TEXTS[x["index"]]))
    assert server.counters.texts_ok == {t: 1 for t in TEXTS}
    assert server.counters.batch_sizes == [len(TEXTS)]


def test_top_n_return_documents_and_document_objects(client):
    docs = [{"text": t} for t in TEXTS[:2]] + TEXTS[2:]
    body = {"query": QUERY, "documents": docs, "top_n": 2, "return_documents": True}
    results = client.post("/v1/rerank", json=body).json()["results"]
    assert len(results) == 2
    assert results[0] == {
        "index": 1,
        "relevance_score": results[0]["relevance_score"],
        "document": {"text": TEXTS[1]},
    }
    assert results[1]["document"]["text"] == TEXTS[results[1]["index"]]


def test_ties_put_the_lower_index_first(client):
    results = client.post("/v1/rerank", json={"query": "q", "documents": ["x", "x", "x"]}).json()
    assert [x["index"] for x in results["results"]] == [0, 1, 2]


def test_model_names_a_served_reranker(client):
    ok = client.post("/v1/rerank", json={"model": RERANK, "query": "q", "documents": ["d"]})
    assert ok.status_code == 200
    for name in ("nope/model", "hfrag/hash-embed"):
        r = client.post("/v1/rerank", json={"model": name, "query": "q", "documents": ["d"]})
        assert r.status_code == 404
        assert r.json()["error"]["message"] == f"The model `{name}` does not exist."


def test_validation_is_teis(client):
    r = client.post("/v1/rerank", json={"query": "q", "documents": []})
    assert (r.status_code, r.json()["error"]) == (400, "`documents` cannot be empty")
    r = client.post("/v1/rerank", json={"query": "q", "documents": ["t"] * 33})
    assert r.status_code == 413
    assert r.json()["error"] == "batch size 33 > maximum allowed batch size 32"
    r = client.post("/v1/rerank", json={"query": "q", "documents": [LONG]})
    assert r.status_code == 413
    assert "must have less than 512 tokens" in r.json()["error"]
    r = client.post("/v1/rerank", json={"documents": ["t"]})
    assert r.status_code == 422
    assert "missing field `query`" in r.text
    r = client.post("/v1/rerank", json={"query": "q", "documents": [1]})
    assert r.status_code == 422
    r = client.post("/v1/rerank", json={"query": "q", "documents": ["t"], "top_n": 0})
    assert r.status_code == 422
    assert (
        client.post(
            "/v1/rerank", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )


def test_auto_truncate_server_truncates(make_server):
    srv = make_server(ServerConfig.default(auto_truncate=True))
    r = httpx.post(f"{srv.url}/v1/rerank", json={"query": "q", "documents": [LONG]})
    assert r.status_code == 200


def test_faults_and_counters_apply(server, client):
    server.set_faults(FaultConfig(p_500=1.0), route="/v1/rerank")
    r = client.post("/v1/rerank", json={"query": "q", "documents": ["d"]})
    assert r.status_code == 500
    assert server.counters.total("/v1/rerank", 500) == 1
    assert server.counters.texts_ok == {}
    server.set_faults(FaultConfig(p_rate_limit=1.0, retry_after=0.5), route="/v2/rerank")
    r = client.post("/v2/rerank", json={"query": "q", "documents": ["d"]})
    assert (r.status_code, r.headers["Retry-After"]) == (429, "0.5")


def test_without_a_reranker_it_is_424(make_server):
    srv = make_server(ServerConfig(models=default_models()[:1]))
    r = httpx.post(f"{srv.url}/v1/rerank", json={"query": "q", "documents": ["t"]})
    assert r.status_code == 424
    assert "model is not a re-ranker model" in r.json()["error"]


# -- multi-label classifiers ----------------------------------------------------------------------


@pytest.fixture
def classifier(make_server):
    spec = ModelSpec("org/nli", "rerank", HashingBackend(), labels=("contradiction", "entailment"))
    return make_server(ServerConfig(models=[spec, *default_models()]))


def test_router_classifier_softmax_by_default_sorted_and_top_k(classifier):
    path = f"{classifier.url}/hf-inference/models/org/nli"
    pairs = [{"text": QUERY, "text_pair": t} for t in TEXTS]
    out = httpx.post(path, json={"inputs": pairs}).json()
    backend = classifier.config.model("org/nli").backend
    for labels, text in zip(out, TEXTS, strict=True):
        assert [x["score"] for x in labels] == sorted((x["score"] for x in labels), reverse=True)
        scores = {x["label"]: x["score"] for x in labels}
        assert set(scores) == {"contradiction", "entailment"}
        assert scores["entailment"] == pytest.approx(sigmoid(backend.score(QUERY, text)))
        assert sum(scores.values()) == pytest.approx(1.0)
    raw = httpx.post(path, json={"inputs": pairs, "parameters": {"function_to_apply": "none"}})
    for labels, text in zip(raw.json(), TEXTS, strict=True):
        scores = {x["label"]: x["score"] for x in labels}
        assert scores == pytest.approx(
            {"contradiction": 0.0, "entailment": backend.score(QUERY, text)}
        )
    top = httpx.post(path, json={"inputs": pairs, "parameters": {"top_k": 1}}).json()
    assert [len(labels) for labels in top] == [1] * len(TEXTS)
    sig = httpx.post(path, json={"inputs": pairs, "parameters": {"function_to_apply": "sigmoid"}})
    assert all(
        x["score"] == 0.5 for labels in sig.json() for x in labels if x["label"] == "contradiction"
    )


def test_tei_calls_a_multi_label_model_a_classifier_and_rerank_refuses_it(classifier):
    info = httpx.get(f"{classifier.url}/info").json()
    assert set(info["model_type"]) == {"classifier"}
    assert info["model_type"]["classifier"]["id2label"] == {"0": "contradiction", "1": "entailment"}
    r = httpx.post(f"{classifier.url}/rerank", json={"query": "q", "texts": ["t"]})
    assert r.status_code == 424
    assert "model is not a re-ranker model" in r.json()["error"]
