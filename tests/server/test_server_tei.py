"""TEI layout of the local server: /embed, /rerank, /predict, /info, /health and POST /.

Statuses, bodies and messages follow TEI's router/src/http/server.rs and core/src/tokenization.rs
(ErrorType -> status: Validation 413, Empty 400, Tokenizer 422, Backend 424, Overloaded 429).
"""

from __future__ import annotations

import math

import httpx
import numpy as np
import pytest

from hfrag.server import ServerConfig
from hfrag.server.backends import normalize_rows, sigmoid

EMBED = "hfrag/hash-embed"
LONG = " ".join(f"word{i}" for i in range(600))


def backend_of(server, name=EMBED):
    return server.config.model(name).backend


def as_f32(data):
    return np.asarray(data, dtype=np.float32)


# -- /embed: shapes and values ------------------------------------------------------------------


def test_embed_single_string_is_2d_and_matches_the_backend(server, client):
    r = client.post("/embed", json={"inputs": "hello world"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    out = as_f32(r.json())
    assert out.shape == (1, 384)
    np.testing.assert_array_equal(out, backend_of(server).embed(["hello world"]))


def test_embed_batch_is_in_input_order_and_unit_norm(server, client):
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    out = as_f32(client.post("/embed", json={"inputs": texts}).json())
    np.testing.assert_array_equal(out, backend_of(server).embed(texts))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_embed_normalize_false_is_the_mean_of_token_vectors(server, client):
    out = as_f32(client.post("/embed", json={"inputs": ["a b c"], "normalize": False}).json())
    tokens = backend_of(server).token_embeddings("a b c")
    np.testing.assert_allclose(out[0], tokens.mean(axis=0), rtol=1e-6)


def test_embed_prompt_name_prepends_the_prompt(server, client):
    out = as_f32(client.post("/embed", json={"inputs": ["tower"], "prompt_name": "query"}).json())
    np.testing.assert_array_equal(out, backend_of(server).embed(["query: tower"]))


def test_embed_unknown_prompt_name_is_a_validation_error(client):
    r = client.post("/embed", json={"inputs": ["tower"], "prompt_name": "nope"})
    assert r.status_code == 413
    body = r.json()
    assert body["error_type"] == "Validation"
    assert body["error"] == (
        "Input validation error: `default-prompt-name` is set to `nope` but it was not found in "
        'the Sentence Transformers prompts. Available prompts: ["query", "document"]'
    )


def test_embed_dimensions_keeps_the_first_dims_and_renormalises(server, client):
    out = as_f32(
        client.post("/embed", json={"inputs": ["matryoshka doll"], "dimensions": 64}).json()
    )
    full = backend_of(server).embed(["matryoshka doll"], normalize=False)
    np.testing.assert_allclose(out, normalize_rows(full[:, :64]), rtol=1e-6)
    raw = as_f32(
        client.post(
            "/embed", json={"inputs": ["matryoshka doll"], "dimensions": 64, "normalize": False}
        ).json()
    )
    np.testing.assert_array_equal(raw, full[:, :64])


@pytest.mark.parametrize("dims", [0, 385])
def test_embed_dimensions_out_of_range(client, dims):
    r = client.post("/embed", json={"inputs": ["x"], "dimensions": dims})
    assert r.status_code == 413
    assert "`dimensions` must be between 1 and 384" in r.json()["error"]


# -- /embed: length limits and truncation -------------------------------------------------------


def test_too_long_input_without_truncate_is_refused_like_tei(client):
    r = client.post("/embed", json={"inputs": [LONG]})
    assert r.status_code == 413
    assert r.json() == {
        "error": "Input validation error: `inputs` must have less than 512 tokens. Given: 600",
        "error_type": "Validation",
    }


@pytest.mark.parametrize(
    ("direction", "keep"), [("right", "right"), ("Left", "left"), ("left", "left")]
)
def test_truncate_cuts_to_max_input_length(server, client, direction, keep):
    body = {"inputs": [LONG], "truncate": True, "truncation_direction": direction}
    out = as_f32(client.post("/embed", json=body).json())
    backend = backend_of(server)
    cut = backend.truncate_text(LONG, 512, keep)
    assert len(backend.tokenize(cut)) == 512
    np.testing.assert_array_equal(out, backend.embed([cut]))


def test_unknown_truncation_direction_is_a_deserialize_error(client):
    r = client.post("/embed", json={"inputs": ["x"], "truncation_direction": "up"})
    assert r.status_code == 422
    assert r.text.startswith("Failed to deserialize the JSON body into the target type: ")
    assert "truncation_direction: unknown variant `up`" in r.text


def test_auto_truncate_is_the_default_of_truncate(make_server):
    srv = make_server(ServerConfig.default(auto_truncate=True))
    with httpx.Client(base_url=srv.url) as c:
        assert c.post("/embed", json={"inputs": [LONG]}).status_code == 200
        assert c.post("/embed", json={"inputs": [LONG], "truncate": False}).status_code == 413
        assert c.get("/info").json()["auto_truncate"] is True


def test_character_limit_comes_before_tokenizing(client):
    text = "a" * (512 * 250 + 1)
    r = client.post("/embed", json={"inputs": [text]})
    assert r.status_code == 413
    assert r.json()["error"] == (
        "Input validation error: `inputs` must have less than 128000 characters. Given: 128001"
    )


# -- /embed: batch and emptiness ----------------------------------------------------------------


def test_empty_list_is_tei_empty(client):
    r = client.post("/embed", json={"inputs": []})
    assert r.status_code == 400
    assert r.json() == {"error": "`inputs` cannot be empty", "error_type": "Empty"}


def test_empty_string_is_tei_empty(client):
    r = client.post("/embed", json={"inputs": ["fine", ""]})
    assert r.status_code == 400
    assert r.json() == {
        "error": "Input validation error: `inputs` cannot be empty",
        "error_type": "Empty",
    }


def test_batch_size_limit_message_and_status(server, client):
    r = client.post("/embed", json={"inputs": ["x"] * 33})
    assert r.status_code == 413
    assert r.json() == {
        "error": "batch size 33 > maximum allowed batch size 32",
        "error_type": "Validation",
    }
    assert client.post("/embed", json={"inputs": ["x"] * 32}).status_code == 200
    assert server.counters.batch_sizes == [33, 32]


def test_validation_status_can_model_a_422_server(make_server):
    srv = make_server(ServerConfig.default(max_client_batch_size=4, validation_status=422))
    r = httpx.post(f"{srv.url}/embed", json={"inputs": ["x"] * 5})
    assert r.status_code == 422
    assert r.json()["error"] == "batch size 5 > maximum allowed batch size 4"


# -- axum's JSON rejections ---------------------------------------------------------------------


def test_json_syntax_error_is_400_plain_text(client):
    r = client.post("/embed", content=b'{"inputs": [', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("Failed to parse the request body as JSON: ")


def test_missing_field_is_422_plain_text(client):
    r = client.post("/embed", json={"input": ["x"]})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith(
        "Failed to deserialize the JSON body into the target type: missing field `inputs`"
    )


def test_wrong_type_is_422(client):
    r = client.post("/embed", json={"inputs": 5})
    assert r.status_code == 422
    assert "inputs: data did not match any variant" in r.text


def test_missing_content_type_is_415(client):
    r = client.post("/embed", content=b'{"inputs": "x"}')
    assert r.status_code == 415
    assert r.text == "Expected request with `Content-Type: application/json`"


def test_body_over_the_payload_limit_is_413(make_server):
    srv = make_server(ServerConfig.default(payload_limit=1000))
    r = httpx.post(f"{srv.url}/embed", json={"inputs": ["x" * 2000]})
    assert r.status_code == 413
    assert r.text == "Failed to buffer the request body: length limit exceeded"


# -- token-level model --------------------------------------------------------------------------


def test_embed_without_pooling_is_3d_and_ragged(make_server):
    srv = make_server(ServerConfig.default(primary="hfrag/hash-embed-tokens"))
    texts = ["one", "two three four"]
    out = httpx.post(f"{srv.url}/embed", json={"inputs": texts}).json()
    backend = srv.config.primary.backend
    assert [len(rows) for rows in out] == [1, 3]
    for rows, text in zip(out, texts, strict=True):
        np.testing.assert_array_equal(as_f32(rows), backend.token_embeddings(text))


# -- /rerank ------------------------------------------------------------------------------------


def test_rerank_is_sorted_by_score_with_indices(server, client):
    texts = ["bananas are yellow", "Paris is the capital of France", "the capital city"]
    query = "capital of France"
    r = client.post("/rerank", json={"query": query, "texts": texts})
    assert r.status_code == 200
    ranks = r.json()
    assert [set(rank) for rank in ranks] == [{"index", "score"}] * 3
    scores = [rank["score"] for rank in ranks]
    assert scores == sorted(scores, reverse=True)
    assert ranks[0]["index"] == 1
    backend = server.config.model("hfrag/hash-rerank").backend
    for rank in ranks:
        assert math.isclose(rank["score"], sigmoid(backend.score(query, texts[rank["index"]])))


def test_rerank_raw_scores_and_return_text(server, client):
    texts = ["a b", "c d"]
    body = {"query": "a", "texts": texts, "raw_scores": True, "return_text": True}
    ranks = client.post("/rerank", json=body).json()
    backend = server.config.model("hfrag/hash-rerank").backend
    for rank in ranks:
        assert list(rank) == ["index", "text", "score"]
        assert rank["text"] == texts[rank["index"]]
        assert math.isclose(rank["score"], backend.score("a", rank["text"]))
    assert server.counters.texts_ok == {"a b": 1, "c d": 1}


def test_rerank_errors(client):
    r = client.post("/rerank", json={"query": "q", "texts": []})
    assert (r.status_code, r.json()) == (
        400,
        {"error": "`texts` cannot be empty", "error_type": "Empty"},
    )
    r = client.post("/rerank", json={"query": "q", "texts": ["t"] * 33})
    assert r.status_code == 413
    assert r.json()["error"] == "batch size 33 > maximum allowed batch size 32"
    r = client.post("/rerank", json={"query": "q"})
    assert r.status_code == 422
    assert "missing field `texts`" in r.text
    r = client.post("/rerank", json={"query": "q", "texts": [LONG]})
    assert r.status_code == 413
    assert "must have less than 512 tokens. Given: 601" in r.json()["error"]
    assert client.post("/rerank", json={"query": "q", "texts": [LONG], "truncate": True}).is_success


def test_rerank_without_a_reranker_is_424(make_server):
    from hfrag.server.config import default_models

    srv = make_server(ServerConfig(models=default_models()[:1]))
    r = httpx.post(f"{srv.url}/rerank", json={"query": "q", "texts": ["t"]})
    assert r.status_code == 424
    assert r.json()["error_type"] == "Backend"
    assert "model is not a re-ranker model" in r.json()["error"]


# -- /predict -----------------------------------------------------------------------------------


def test_predict_single_pair_and_batch_shapes(server, client):
    backend = server.config.model("hfrag/hash-rerank").backend
    single = client.post("/predict", json={"inputs": "just text"}).json()
    assert single == [{"score": sigmoid(backend.score("just text", "")), "label": "LABEL_0"}]
    pair = client.post("/predict", json={"inputs": ["q", "q doc"]}).json()
    assert pair[0]["score"] == pytest.approx(sigmoid(backend.score("q", "q doc")))
    batch = client.post("/predict", json={"inputs": [["a"], ["q", "q doc"]]}).json()
    assert [len(item) for item in batch] == [1, 1]
    raw = client.post("/predict", json={"inputs": ["q", "q doc"], "raw_scores": True}).json()
    assert raw[0]["score"] == pytest.approx(backend.score("q", "q doc"))
    bad = client.post("/predict", json={"inputs": ["a", "b", "c"]})
    assert bad.status_code == 422
    too_many = client.post("/predict", json={"inputs": [["a"]] * 33})
    assert too_many.status_code == 413


# -- /info, /health, POST / ---------------------------------------------------------------------


def test_info_has_tei_fields(client):
    info = client.get("/info").json()
    assert info["model_id"] == EMBED
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert info["max_client_batch_size"] == 32
    assert info["max_input_length"] == 512
    assert isinstance(info["version"], str)


def test_info_of_a_reranker_primary(make_server):
    srv = make_server(ServerConfig.default(primary="hfrag/hash-rerank", max_client_batch_size=8))
    info = httpx.get(f"{srv.url}/info").json()
    assert info["model_type"] == {
        "reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}
    }
    assert info["max_client_batch_size"] == 8


def test_health(client):
    for path in ("/health", "/"):
        r = client.get(path)
        assert (r.status_code, r.content) == (200, b"")


@pytest.mark.parametrize(
    ("primary", "body", "check"),
    [
        (EMBED, {"inputs": "x"}, lambda out: len(out) == 1 and len(out[0]) == 384),
        (
            "hfrag/hash-rerank",
            {"query": "q", "texts": ["a", "q"]},
            lambda out: out[0]["index"] == 1,
        ),
        (
            "hfrag/extractive-gen",
            {"inputs": "Cats purr. Why do cats purr?"},
            lambda out: "generated_text" in out[0],
        ),
    ],
)
def test_post_root_dispatches_on_the_primary_kind(make_server, primary, body, check):
    srv = make_server(ServerConfig.default(primary=primary))
    r = httpx.post(srv.url + "/", json=body)
    assert r.status_code == 200
    assert check(r.json())
