"""Embeddings in the OpenAI form (/v1/embeddings): detection, float and base64, index order,
validation of what came back, and everything the TEI form does (batching, retries, options)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from hfrag.errors import ConfigurationError, MalformedResponseError
from hfrag.server import FaultConfig, ServerConfig
from hfrag.server.testing import CannedResponse
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from tests.tasks.conftest import EMBED_MODEL, expected

TEXTS = ["the tower is in paris", "bananas are yellow", "a third text"]
V1 = "/v1/embeddings"


def client_for(url: str, **kw: Any) -> EmbeddingsClient:
    conn = {k: kw.pop(k) for k in list(kw) if k in ("max_retries", "max_retry_wait", "token")}
    return EmbeddingsClient(endpoint_url=url, options=EmbeddingOptions(**kw), **conn)


def b64(vector: list[float]) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def answer(*items: tuple[int, Any]) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": e} for i, e in items]
    return {"object": "list", "data": data, "model": "m", "usage": {}}


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_float_and_base64_give_the_same_vectors(server, embed, encoding):
    texts = [f"passage {i} on topic {i % 7}" for i in range(70)]
    out = embed(client_for(server.url + "/v1", encoding_format=encoding), texts)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected(server, texts), atol=1e-6)
    body = server.counters.bodies[-1]
    assert body["encoding_format"] == encoding
    assert body["model"] == EMBED_MODEL  # the first name GET /v1/models lists
    assert server.counters.total(V1, 200) == 3


@pytest.mark.parametrize(
    ("suffix", "protocol", "path", "form"),
    [
        ("", "auto", "/", "tei"),
        ("/", "auto", "/", "tei"),
        ("/embed", "auto", "/embed", "tei"),
        ("/v1", "auto", V1, "openai"),
        ("/v1/", "auto", V1, "openai"),
        ("/v1/embeddings", "auto", V1, "openai"),
        ("/embeddings", "auto", "/embeddings", "openai"),
        ("", "openai", V1, "openai"),
        ("/embed", "openai", V1, "openai"),
        ("/embed", "tei", "/embed", "tei"),
    ],
)
def test_protocol_detection_for_each_url_shape(server, suffix, protocol, path, form):
    client_for(server.url + suffix, protocol=protocol).embed(TEXTS)
    assert server.counters.total(path, 200) == 1
    assert ("input" if form == "openai" else "inputs") in server.counters.bodies[-1]


def test_no_info_but_models_list_means_openai(server):
    server.script("/info", CannedResponse(404, "Not Found", content_type="text/plain"))
    out = client_for(server.url).embed(TEXTS)
    np.testing.assert_allclose(out, expected(server, TEXTS), atol=1e-6)
    assert server.counters.total(V1, 200) == 1
    assert server.counters.total("/info") == 1
    assert server.counters.total("/v1/models") == 1


def test_neither_info_nor_models_keeps_posting_the_url(server):
    server.script("/info", CannedResponse(404, "Not Found", content_type="text/plain"))
    server.script("/v1/models", CannedResponse(404, "Not Found", content_type="text/plain"))
    client_for(server.url + "/embed").embed(TEXTS)
    assert server.counters.total("/embed", 200) == 1


def test_detection_happens_once_per_client(server):
    client = client_for(server.url + "/v1")
    for _ in range(3):
        client.embed(TEXTS)
    assert server.counters.total("/v1/models") == 1
    assert server.counters.total("/info") == 1


def test_provider_model_names_the_model_sent(server):
    client_for(server.url + "/v1", provider_model="my-served-name").embed(TEXTS)
    assert server.counters.bodies[-1]["model"] == "my-served-name"
    assert server.counters.total("/v1/models") == 0


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_order_comes_from_index_not_position(server, embed, encoding):
    vectors = expected(server, TEXTS).tolist()
    enc = b64 if encoding == "base64" else (lambda v: v)
    body = answer((2, enc(vectors[2])), (0, enc(vectors[0])), (1, enc(vectors[1])))
    server.script(V1, CannedResponse(200, body))
    out = embed(client_for(server.url + "/v1"), TEXTS)
    np.testing.assert_allclose(out, expected(server, TEXTS), atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_token_level_answers_are_pooled(make_server, embed, pooling):
    # A model without pooling on an OpenAI-compatible server (llama.cpp's, or hfrag's own
    # hfrag/hash-embed-tokens) answers each input's token vectors; they are pooled as in the
    # HF form, then L2-normalised. Token counts differ across the batch.
    server = make_server(ServerConfig.default(primary="hfrag/hash-embed-tokens"))
    texts = ["short text", "a somewhat longer text with more tokens in it", "x"]
    out = embed(client_for(server.url + "/v1", pooling=pooling), texts)
    backend = server.config.model("hfrag/hash-embed-tokens").backend
    for row, text in zip(out, texts, strict=True):
        tokens = np.asarray(backend.token_embeddings(text), dtype=np.float64)
        want = tokens.mean(axis=0) if pooling == "mean" else tokens[0]
        np.testing.assert_allclose(row, want / np.linalg.norm(want), rtol=1e-4, atol=1e-5)
    assert server.counters.total(V1, 200) == 1


def test_token_level_answers_are_placed_by_index(server):
    tokens = [[[3.0, 4.0], [5.0, 12.0]], [[0.0, 2.0]]]
    server.script(V1, CannedResponse(200, answer((1, tokens[1]), (0, tokens[0]))))
    out = client_for(server.url + "/v1").embed(["a", "b"])
    np.testing.assert_allclose(out, [[4.0 / 80**0.5, 8.0 / 80**0.5], [0.0, 1.0]], rtol=1e-6)


@pytest.mark.parametrize(
    ("items", "words"),
    [
        ([(0, [1.0, 0.0]), (1, [0.0, 1.0])], "2 vectors for 3 inputs"),
        ([(0, [1.0]), (0, [1.0]), (1, [1.0])], "index 0 appears twice"),
        ([(0, [1.0]), (1, [1.0]), (3, [1.0])], "index 3 is not one of 0-2"),
        ([(0, [1.0]), (1, [1.0]), ("2", [1.0])], "index '2'"),
        ([(0, [1.0]), (1, [1.0]), (True, [1.0])], "index True"),
        ([(0, [1.0, 2.0]), (1, [1.0]), (2, [1.0, 2.0])], "different lengths"),
        ([(0, [1.0]), (1, ["x"]), (2, [1.0])], "non-numeric"),
        ([(0, [1.0]), (1, None), (2, [1.0])], "no embedding"),
        ([(0, []), (1, []), (2, [])], "empty vectors"),
        ([(0, b64([1, 2])), (1, b64([1])), (2, b64([1, 2]))], "has 4 bytes, expected 8"),
        ([(0, b64([1])), (1, "AAA"), (2, b64([1]))], "not valid base64"),
        ([(0, "AAAAAAA="), (1, "AAAAAAA="), (2, "AAAAAAA=")], "not whole float32"),
        ([(0, b64([1])), (1, [1.0]), (2, b64([1]))], "a mix of base64"),
        ([(0, b64([float("nan")])), (1, b64([1])), (2, b64([1]))], "NaN or infinite"),
        ([(0, "é"), (1, "é"), (2, "é")], "not valid base64"),
        # Token-level answers: a mix with sentence vectors, token vectors of other sizes.
        ([(0, [[1.0, 2.0]]), (1, [1.0, 2.0]), (2, [[1.0, 2.0]])], "different shapes"),
        ([(0, [[1.0, 2.0]]), (1, [[1.0]]), (2, [[1.0, 2.0]])], "different shapes"),
        ([(0, [[1.0, 2.0], [1.0]]), (1, [[1.0, 2.0]]), (2, [[1.0, 2.0]])], "ragged"),
        ([(0, [[]]), (1, [[]]), (2, [[]])], "empty vectors"),
        ([(0, [[1.0, float("nan")]]), (1, [[1.0, 2.0]]), (2, [[1.0, 2.0]])], "NaN or infinite"),
        # A character outside the alphabet is refused, not skipped (skipping it would decode 1.0).
        ([(0, b64([1])), (1, "AAC!APw=="), (2, b64([1]))], "not valid base64"),
        ([(0, b64([1])), (1, "AAC\nAPw=="), (2, b64([1]))], "not valid base64"),
    ],
)
def test_malformed_answers_name_the_batch(server, embed, items, words):
    server.script(V1, CannedResponse(200, answer(*items)))
    with pytest.raises(MalformedResponseError) as info:
        embed(client_for(server.url + "/v1", batch_size=3), ["a", "b", "c"])
    assert words in str(info.value)
    assert info.value.positions == (0, 1, 2)
    assert "inputs 0-2" in str(info.value)


@pytest.mark.parametrize(
    "body", [[[1.0, 2.0]], {"data": "x"}, {"object": "list"}, b'{"data": [{"index": 0, ', b"null"]
)
def test_not_the_openai_shape_is_malformed(server, body):
    server.script(V1, CannedResponse(200, body, content_type="application/json"))
    with pytest.raises(MalformedResponseError):
        client_for(server.url + "/v1").embed(["a"])


def test_float_nan_is_refused(server):
    server.script(V1, CannedResponse(200, b'{"data": [{"index": 0, "embedding": [NaN, 1.0]}]}'))
    with pytest.raises(MalformedResponseError, match="NaN"):
        client_for(server.url + "/v1").embed(["a"])


def test_inconsistent_dimension_across_batches(server):
    server.script(
        V1,
        CannedResponse(200, answer((0, b64([1, 0])), (1, b64([0, 1])))),
        CannedResponse(200, answer((0, b64([1, 0, 0])), (1, b64([0, 1, 0])))),
    )
    client = client_for(server.url + "/v1", batch_size=2, max_concurrency=1)
    with pytest.raises(MalformedResponseError, match="earlier batches had 2") as info:
        client.embed(["a", "b", "c", "d"])
    assert info.value.positions == (2, 3)


def test_batch_too_large_is_split_on_the_openai_route(make_server, embed):
    srv = make_server(ServerConfig(max_client_batch_size=16))
    srv.script("/info", CannedResponse(404, "no info", content_type="text/plain"))
    texts = [f"text {i}" for i in range(100)]
    out = embed(client_for(srv.url + "/v1", batch_size=50, max_concurrency=1), texts)
    np.testing.assert_allclose(out, expected(srv, texts), atol=1e-6)
    assert srv.counters.total(V1, 413) == 1
    assert max(srv.counters.batch_sizes[1:]) <= 16


def test_retries_hold_on_the_openai_route(make_server, embed):
    srv = make_server()
    faults = FaultConfig(seed=5, p_500=0.2, p_rate_limit=0.2, retry_after=0.01, p_drop=0.1)
    srv.set_faults(faults, route=V1)
    texts = [f"text {i}" for i in range(200)]
    client = client_for(
        srv.url + "/v1", batch_size=10, max_retries=10, max_retry_wait=0.02, max_concurrency=4
    )
    out = embed(client, texts)
    np.testing.assert_allclose(out, expected(srv, texts), atol=1e-6)
    assert srv.counters.total(V1) > srv.counters.total(V1, 200)
    assert max(srv.counters.texts_ok.values()) == 1


def test_dimensions_and_instructions_hold(server):
    client = client_for(
        server.url + "/v1", dimensions=64, query_instruction="query: ", document_instruction="Doc: "
    )
    query = client.embed_query("where is the tower")
    assert server.counters.bodies[-1]["input"] == ["query: where is the tower"]
    assert server.counters.bodies[-1]["dimensions"] == 64
    want = np.asarray(
        server.config.model(EMBED_MODEL).backend.embed(["query: where is the tower"])
    )[:, :64]
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(query, want[0], atol=1e-6)
    assert client.embed(["d"]).shape == (1, 64)
    assert server.counters.bodies[-1]["input"] == ["Doc: d"]


def test_normalize_true_is_applied_client_side(server):
    vector = [3.0, 4.0]
    server.script(V1, CannedResponse(200, answer((0, b64(vector)))))
    out = client_for(server.url + "/v1", normalize=True).embed(["a"])
    np.testing.assert_allclose(out, [[0.6, 0.8]], atol=1e-7)
    assert "normalize" not in server.counters.bodies[-1]


@pytest.mark.parametrize(
    "options",
    [
        {"prompt_name": "query"},
        {"query_prompt_name": "query"},
        {"document_prompt_name": "passage"},
        {"normalize": False},
        {"truncation_direction": "left"},
    ],
)
def test_options_the_openai_form_cannot_carry_are_errors(server, options):
    with pytest.raises(ConfigurationError):
        client_for(server.url + "/v1", **options)
    with pytest.raises(ConfigurationError):
        client_for(server.url, protocol="openai", **options)
    assert server.counters.total() == 0


def test_prompt_names_refused_after_detection_before_any_post(server):
    server.script("/info", CannedResponse(404, "no", content_type="text/plain"))
    client = client_for(server.url, query_prompt_name="query")  # the form is not known yet
    with pytest.raises(ConfigurationError, match="prompt names"):
        client.embed(TEXTS)
    assert server.counters.total(V1) == 0


def test_protocol_and_encoding_are_checked():
    with pytest.raises(ConfigurationError, match="protocol"):
        EmbeddingOptions(protocol="grpc")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="encoding_format"):
        EmbeddingOptions(encoding_format="binary")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="endpoint URLs"):
        EmbeddingsClient(model="a/b", options=EmbeddingOptions(protocol="openai"))


def test_credential_rule_on_the_openai_urls(server, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_ambient_secret")
    client_for(server.url + "/v1").embed(TEXTS)
    assert all("authorization" not in h for h in server.counters.headers)
    server.reset()
    client_for(server.url, protocol="openai", token="tei-key-123").embed(TEXTS)
    assert {h["authorization"] for h in server.counters.headers} == {"Bearer tei-key-123"}
