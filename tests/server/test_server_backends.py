"""HashingBackend: the deterministic model other tests compute expected values from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

import hfrag.server
from hfrag.server import (
    EmbeddingBackend,
    HashingBackend,
    ModelSpec,
    PairScorer,
    ServerConfig,
    TextGenerator,
    extract_answer,
)
from hfrag.server.backends import GenerationParams, sigmoid

SRC = str(Path(hfrag.server.__file__).resolve().parents[2])


@pytest.fixture
def backend():
    return HashingBackend()


def test_embed_is_float32_unit_norm_and_deterministic(backend):
    texts = ["hello world", "Hello, world!", "something else entirely"]
    out = backend.embed(texts)
    assert out.dtype == np.float32
    assert out.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out, HashingBackend().embed(texts))
    assert not np.array_equal(out, HashingBackend(seed=1).embed(texts))
    assert HashingBackend(dim=16).embed(texts).shape == (3, 16)


def test_embed_is_the_mean_of_the_token_vectors(backend):
    text = "The quick brown fox, again."
    tokens = backend.token_embeddings(text)
    assert tokens.shape == (len(backend.tokenize(text)), 384) == (7, 384)
    np.testing.assert_allclose(np.linalg.norm(tokens, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(backend.embed([text], normalize=False)[0], tokens.mean(axis=0))
    pooled = tokens.mean(axis=0)
    np.testing.assert_allclose(backend.embed([text])[0], pooled / np.linalg.norm(pooled), rtol=1e-6)


def test_a_text_without_tokens_is_one_pseudo_token(backend):
    assert backend.tokenize("   ") == []
    assert backend.token_embeddings("   ").shape == (1, 384)


def test_vectors_do_not_depend_on_pythons_hash_seed(backend):
    code = (
        "from hfrag.server import HashingBackend; "
        "print(HashingBackend().embed(['stable'])[0][:8].tolist())"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": SRC}
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(run.stdout.strip())
    assert outputs == {str(backend.embed(["stable"])[0][:8].tolist())}


def test_tokenize_and_truncate(backend):
    text = "Hello, brave new world!"
    assert backend.tokenize(text) == ["Hello", ",", "brave", "new", "world", "!"]
    assert backend.truncate_text(text, 3) == "Hello, brave"
    assert backend.truncate_text(text, 3, "left") == "new world!"
    assert backend.truncate_text(text, 10) == text
    for n in range(7):
        assert backend.tokenize(backend.truncate_text(text, n)) == backend.tokenize(text)[:n]


def test_score_ranks_lexical_overlap_higher(backend):
    query = "capital of France"
    good = backend.score(query, "Paris is the capital of France")
    some = backend.score(query, "the capital city")
    bad = backend.score(query, "bananas are yellow")
    assert good > some > bad
    assert sigmoid(good) > 0.9
    assert sigmoid(bad) < 0.1
    q, t = backend.embed([query, "the capital city"]).astype(np.float64)
    assert some == pytest.approx(10 * float(q @ t) - 3)


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        (
            "Context: Paris is in France. Rome is in Italy.\nQuestion: Where is Rome?",
            "Rome is in Italy.",
        ),
        ("Paris is in France. Rome is in Italy. Where is Paris?", "Paris is in France."),
        ("Nothing relevant here. What is a quasar?", "I don't know."),
        ("", "I don't know."),
    ],
)
def test_extractive_answers(prompt, answer):
    assert extract_answer(prompt) == answer


def test_generation_yields_the_answer_token_by_token(backend):
    prompt = "Paris is the capital of France. What is the capital of France?"
    tokens = list(backend.generate_tokens(prompt, GenerationParams()))
    assert tokens == ["Paris", " is", " the", " capital", " of", " France."]
    chat = backend.render_chat(
        [
            {"role": "system", "content": "Rome is old."},
            {"role": "user", "content": [{"type": "text", "text": "Is Rome old?"}]},
        ]
    )
    assert "".join(backend.generate_tokens(chat, GenerationParams())) == "Rome is old."


def test_hashing_backend_satisfies_every_protocol(backend):
    assert isinstance(backend, EmbeddingBackend)
    assert isinstance(backend, PairScorer)
    assert isinstance(backend, TextGenerator)


class ConstantBackend:
    """The smallest embedding backend: proves a backend is just an object with the methods."""

    dim = 3

    def tokenize(self, text):
        return text.split()

    def truncate_text(self, text, max_tokens, direction="right"):
        words = text.split()
        return " ".join(words[:max_tokens] if direction == "right" else words[-max_tokens:])

    def embed(self, texts, normalize=True):
        return np.tile(
            np.array([3.0, 4.0, 0.0], dtype=np.float32) / (5.0 if normalize else 1.0),
            (len(texts), 1),
        )

    def token_embeddings(self, text):
        return np.ones((len(self.tokenize(text)), 3), dtype=np.float32)


def test_any_object_with_the_methods_can_be_served(make_server):
    srv = make_server(ServerConfig(models=[ModelSpec("acme/constant", "embed", ConstantBackend())]))
    out = httpx.post(f"{srv.url}/embed", json={"inputs": ["a", "b"]}).json()
    assert out == [[0.6000000238418579, 0.800000011920929, 0.0]] * 2
