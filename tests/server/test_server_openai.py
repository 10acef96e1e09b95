"""OpenAI-form embeddings on the local server: TEI's /v1/embeddings, provider routes, /v1/models,
and the Hub model API that maps a model to its Inference Providers."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from hfrag.server import FaultConfig, ServerConfig

EMBED = "hfrag/hash-embed"
TEXTS = ["the tower is in paris", "bananas are yellow", "a third text"]


def want(server, texts, dims=None):
    vectors = np.asarray(server.config.model(EMBED).backend.embed(texts), dtype=np.float32)
    if dims is not None:
        vectors = vectors[:, :dims]
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def decoded(answer):
    rows = sorted(answer["data"], key=lambda d: d["index"])
    out = []
    for row in rows:
        emb = row["embedding"]
        if isinstance(emb, str):
            emb = np.frombuffer(base64.b64decode(emb), dtype="<f4")
        out.append(np.asarray(emb, dtype=np.float32))
    return np.stack(out)


@pytest.mark.parametrize("path", ["/v1/embeddings", "/embeddings"])
@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_tei_openai_route_float_and_base64(server, client, path, encoding):
    body = {"input": TEXTS, "model": "anything"}
    if encoding:
        body["encoding_format"] = encoding
    r = client.post(path, json=body)
    assert r.status_code == 200
    answer = r.json()
    assert answer["object"] == "list"
    assert [d["index"] for d in answer["data"]] == [0, 1, 2]
    kinds = {type(d["embedding"]) for d in answer["data"]}
    assert kinds == ({str} if encoding == "base64" else {list})
    np.testing.assert_allclose(decoded(answer), want(server, TEXTS), atol=1e-6)
    assert answer["usage"]["prompt_tokens"] > 0
    assert server.counters.texts_ok["bananas are yellow"] == 1


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_a_model_without_pooling_answers_token_vectors(make_server, encoding):
    # As llama.cpp's server does for such a model: each input's token vectors, as floats,
    # not normalised, whatever encoding_format asks.
    srv = make_server(ServerConfig.default(primary="hfrag/hash-embed-tokens"))
    texts = ["a cat", "a much longer sentence about a dog"]
    body = {"input": texts, "encoding_format": encoding}
    answer = httpx.post(srv.url + "/v1/embeddings", json=body).json()
    backend = srv.config.model("hfrag/hash-embed-tokens").backend
    for item, text in zip(answer["data"], texts, strict=True):
        want = np.asarray(backend.token_embeddings(text), dtype=np.float32)
        np.testing.assert_allclose(np.asarray(item["embedding"]), want, atol=1e-6)
    assert len(answer["data"][0]["embedding"]) < len(answer["data"][1]["embedding"])


def test_single_string_and_dimensions(server, client):
    r = client.post("/v1/embeddings", json={"input": "bananas are yellow", "dimensions": 32})
    answer = r.json()
    assert len(answer["data"]) == 1
    np.testing.assert_allclose(decoded(answer), want(server, [TEXTS[1]], 32), atol=1e-6)


def test_tei_layout_errors_have_tei_openai_shape(make_server):
    srv = make_server(ServerConfig(max_client_batch_size=2))
    r = httpx.post(f"{srv.url}/v1/embeddings", json={"input": TEXTS})
    assert r.status_code == 413
    assert r.json() == {
        "message": "batch size 3 > maximum allowed batch size 2",
        "code": 413,
        "type": "Validation",
    }
    assert httpx.post(f"{srv.url}/v1/embeddings", json={"input": []}).status_code == 400
    bad = httpx.post(f"{srv.url}/v1/embeddings", json={"input": ["a"], "encoding_format": "hex"})
    assert bad.status_code == 422
    assert "encoding_format" in bad.text
    assert httpx.post(f"{srv.url}/v1/embeddings", json={"inputs": ["a"]}).status_code == 422


@pytest.mark.parametrize(
    ("provider", "path", "model"),
    [
        ("together", "/together/v1/embeddings", EMBED),
        ("scaleway", "/scaleway/v1/embeddings", "hash-embed"),
        ("deepinfra", "/deepinfra/v1/openai/embeddings", EMBED),
    ],
)
def test_provider_routes_want_the_providers_model_id(server, client, provider, path, model):
    r = client.post(path, json={"input": TEXTS, "model": model, "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(decoded(r.json()), want(server, TEXTS), atol=1e-6)
    wrong = client.post(path, json={"input": TEXTS, "model": "hfrag/hash-rerank"})
    assert wrong.status_code == 404
    assert wrong.json()["error"]["code"] == "model_not_found"
    missing = client.post(path, json={"input": TEXTS})
    assert missing.status_code == 400
    assert "model" in missing.json()["error"]["message"]


def test_provider_route_says_too_many_inputs_in_openai_words(make_server):
    srv = make_server(ServerConfig(max_client_batch_size=2))
    r = httpx.post(f"{srv.url}/together/v1/embeddings", json={"input": TEXTS, "model": EMBED})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(
        "Too many inputs. The max number of inputs is 2."
    )


def test_unknown_provider_path_is_404(client):
    assert client.post("/nebula/v1/embeddings", json={"input": ["a"]}).status_code == 404
    assert client.post("/deepinfra/v1/embeddings", json={"input": ["a"]}).status_code == 404


def test_faults_and_counters_apply_to_openai_routes(server, client):
    server.set_faults(FaultConfig(p_500=1.0), route="/v1/embeddings")
    assert client.post("/v1/embeddings", json={"input": ["a"]}).status_code == 500
    assert client.post("/embed", json={"inputs": ["a"]}).status_code == 200
    assert server.counters.total("/v1/embeddings", 500) == 1
    assert server.counters.batch_sizes == [1]  # the faulted request never reached the handler


def test_models_list(client):
    data = client.get("/v1/models").json()["data"]
    assert data[0]["id"] == EMBED
    assert all(m["object"] == "model" for m in data)


@pytest.mark.parametrize("form", ["dict", "list"])
@pytest.mark.parametrize("param", ["expand[]", "expand"])
def test_hub_model_api_mapping_forms(make_server, form, param):
    srv = make_server(ServerConfig(mapping_form=form))
    r = httpx.get(f"{srv.url}/api/models/{EMBED}", params={param: "inferenceProviderMapping"})
    assert r.status_code == 200
    mapping = r.json()["inferenceProviderMapping"]
    if form == "list":
        mapping = {entry.pop("provider"): entry for entry in mapping}
    assert list(mapping) == ["hf-inference", "together", "scaleway", "deepinfra"]
    assert mapping["scaleway"] == {
        "providerId": "hash-embed",
        "status": "live",
        "task": "feature-extraction",
    }


def test_hub_model_api_without_expand_and_unknown_models(client):
    info = client.get(f"/api/models/{EMBED}").json()
    assert info["id"] == EMBED
    assert "inferenceProviderMapping" not in info
    gen = client.get("/api/models/hfrag/extractive-gen?expand[]=inferenceProviderMapping").json()
    assert gen["inferenceProviderMapping"] == {
        "together": {
            "providerId": "hfrag/extractive-gen",
            "status": "live",
            "task": "conversational",
        }
    }
    assert client.get("/api/models/nobody/nothing").status_code == 404


def test_configured_mapping_drives_hub_and_provider_routes(make_server):
    mapping = {
        EMBED: {
            "together": {
                "providerId": "tg/embed",
                "status": "staging",
                "task": "feature-extraction",
            }
        }
    }
    srv = make_server(ServerConfig(provider_mapping=mapping))
    info = httpx.get(f"{srv.url}/api/models/{EMBED}?expand[]=inferenceProviderMapping").json()
    assert info["inferenceProviderMapping"] == mapping[EMBED]
    ok = httpx.post(f"{srv.url}/together/v1/embeddings", json={"input": ["a"], "model": "tg/embed"})
    assert ok.status_code == 200
    hub_id = httpx.post(f"{srv.url}/together/v1/embeddings", json={"input": ["a"], "model": EMBED})
    assert hub_id.status_code == 404
    assert (
        httpx.post(
            f"{srv.url}/scaleway/v1/embeddings", json={"input": ["a"], "model": "hash-embed"}
        ).status_code
        == 404
    )
