"""Feature extraction on the router's hf-inference: recorded answers through every embedding class.

Recordings (huggingface_hub cassettes, see recordings/SOURCES.json):

- facebook/bart-base (a ``transformers`` model, no pooling head), two texts: ``[2][1][3][768]``,
  token-level with a per-input axis of one (2023, api-inference).
- facebook/bart-base, one string: ``[1][8][768]`` (2025, router).
- sentence-transformers/all-MiniLM-L6-v2, one string: a flat ``[384]`` (2023, api-inference).

What hfrag must give: token-level answers pooled by its ``pooling`` setting (mean by default,
or the first token) and L2-normalised, as a pooling model would; pooled answers as sent. The
expected vectors are computed here from the recorded numbers with numpy.

hfrag's request differs from the recorded ones in two ways, both accepted by the real router:

- path: hfrag posts to ``/hf-inference/models/{id}/pipeline/feature-extraction``; the
  recordings used the retired ``api-inference.huggingface.co/pipeline/feature-extraction/{id}``
  and, in 2025, ``/hf-inference/pipeline/feature-extraction/{id}``. The nested form is the
  router's current one: huggingface_hub 83ba43cb (2025-05-05, "nest task-specific route inside
  of model route", ``src/huggingface_hub/inference/_providers/hf_inference.py``, ``_prepare_url``).
- ``inputs``: hfrag always sends a list; the single-text recordings sent a string. The pipeline
  answers a list of n texts with the ``[n][1][tokens][dim]`` form of the two-text recording and a
  string with ``[1][tokens][dim]``: the single-string answers are replayed to hfrag's one-item
  list to check the 3-D decoding, which a server may also send (TEI-like servers, hfrag's own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hfrag.errors import MalformedResponseError
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from tests.conformance.replay import Exchange, ReplayServer, cassette, derived, differences

TWO_TEXTS = cassette(
    "InferenceClientVCRTest.test_feature_extraction_with_transformers_multiple_texts"
)[0]
ONE_STRING = cassette(
    "TestInferenceClient.test_feature_extraction_with_transformers[hf-inference,feature-extraction]"
)[0]
POOLED = cassette("InferenceClientVCRTest.test_feature_extraction_with_sentence_transformers")[0]
BART = "facebook/bart-base"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _path(model: str) -> str:
    return f"/hf-inference/models/{model}/pipeline/feature-extraction"


def _task(url: str, model: str, **options: Any) -> EmbeddingsClient:
    return EmbeddingsClient(model=model, router_url=url, options=EmbeddingOptions(**options))


def _langchain(url: str, model: str, **options: Any) -> Any:
    from hfrag.langchain import HuggingFaceInferenceEmbeddings

    return HuggingFaceInferenceEmbeddings(model=model, router_url=url, **options)


def _llama_index(url: str, model: str, **options: Any) -> Any:
    from hfrag.llama_index import HuggingFaceInferenceEmbedding

    return HuggingFaceInferenceEmbedding(model=model, router_url=url, **options)


Batch = Callable[[str, str, list[str], dict[str, Any]], Any]
#: Every way a user embeds several texts: (class and method, call).
BATCH_WAYS: dict[str, Batch] = {
    "EmbeddingsClient.embed": lambda u, m, t, o: _task(u, m, **o).embed(t),
    "EmbeddingsClient.aembed": lambda u, m, t, o: asyncio.run(_task(u, m, **o).aembed(t)),
    "langchain.embed_documents": lambda u, m, t, o: _langchain(u, m, **o).embed_documents(t),
    "langchain.aembed_documents": lambda u, m, t, o: asyncio.run(
        _langchain(u, m, **o).aembed_documents(t)
    ),
    "llama_index.get_text_embedding_batch": lambda u, m, t, o: _llama_index(
        u, m, **o
    ).get_text_embedding_batch(t),
    "llama_index.aget_text_embedding_batch": lambda u, m, t, o: asyncio.run(
        _llama_index(u, m, **o).aget_text_embedding_batch(t)
    ),
}
#: Every way a user embeds one query.
QUERY_WAYS: dict[str, Callable[[str, str, str, dict[str, Any]], Any]] = {
    "EmbeddingsClient.embed_query": lambda u, m, t, o: _task(u, m, **o).embed_query(t),
    "EmbeddingsClient.aembed_query": lambda u, m, t, o: asyncio.run(
        _task(u, m, **o).aembed_query(t)
    ),
    "langchain.embed_query": lambda u, m, t, o: _langchain(u, m, **o).embed_query(t),
    "langchain.aembed_query": lambda u, m, t, o: asyncio.run(_langchain(u, m, **o).aembed_query(t)),
    "llama_index.get_query_embedding": lambda u, m, t, o: _llama_index(
        u, m, **o
    ).get_query_embedding(t),
    "llama_index.aget_query_embedding": lambda u, m, t, o: asyncio.run(
        _llama_index(u, m, **o).aget_query_embedding(t)
    ),
}


def _expected(exchange: Exchange, pooling: str) -> np.ndarray[Any, Any]:
    """Each input's recorded token vectors pooled and L2-normalised, by numpy."""
    answer = exchange.answer_json()
    items = answer if isinstance(exchange.request_json()["inputs"], list) else [answer]
    rows = []
    for item in items:
        tokens = np.asarray(item, dtype=np.float64).reshape(-1, 768)  # drop the axis of one
        row = tokens.mean(axis=0) if pooling == "mean" else tokens[0]
        rows.append(row / np.linalg.norm(row))
    return np.asarray(rows)


#: hfrag asks for truncation (its default) with ``truncate`` at the body's root: the
#: feature-extraction spec's field, sent at the root by huggingface_hub too
#: (``_providers/hf_inference.py``, ``HFInferenceFeatureExtractionTask``, at ee0a4510, citing
#: huggingface.js ``packages/tasks/src/tasks/feature-extraction/spec/input.json``).
TRUNCATE = {"truncate": (None, True)}


def _sent_as_recorded(replay: ReplayServer, exchange: Exchange, path: str) -> None:
    (sent,) = replay.received
    assert sent.path == path  # the router's nested route (see the module docstring)
    assert differences(exchange.request_json(), sent.json()) == TRUNCATE


def test_the_recordings_have_the_shapes_this_suite_is_about() -> None:
    four = np.asarray(TWO_TEXTS.answer_json())
    assert four.shape == (2, 1, 3, 768)
    assert np.asarray(ONE_STRING.answer_json()).shape == (1, 8, 768)
    assert np.asarray(POOLED.answer_json()).shape == (384,)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("way", sorted(BATCH_WAYS))
def test_token_level_answers_of_a_transformers_model_are_pooled_then_normalised(
    replay: ReplayServer, way: str, pooling: str
) -> None:
    replay.serve(TWO_TEXTS, at=_path(BART))
    texts = TWO_TEXTS.request_json()["inputs"]
    got = np.asarray(BATCH_WAYS[way](replay.url, BART, texts, {"pooling": pooling}))
    want = _expected(TWO_TEXTS, pooling)
    assert got.shape == (2, 768)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    _sent_as_recorded(replay, TWO_TEXTS, _path(BART))
    assert replay.writes >= 3  # the answer arrived in pieces


@pytest.mark.parametrize("way", sorted(QUERY_WAYS))
def test_a_single_text_token_level_answer_is_pooled_then_normalised(
    replay: ReplayServer, way: str
) -> None:
    replay.serve(ONE_STRING, at=_path(BART))
    text = ONE_STRING.request_json()["inputs"]
    got = np.asarray(QUERY_WAYS[way](replay.url, BART, text, {}))
    assert got.shape == (768,)
    np.testing.assert_allclose(got, _expected(ONE_STRING, "mean")[0], rtol=1e-5, atol=1e-6)
    (sent,) = replay.received
    # A one-item list where the recording sent a string (see the module docstring); the
    # recording's "parameters": {} is empty, so leaving it out asks for the same.
    assert differences(ONE_STRING.request_json(), sent.json()) == {
        "inputs": (text, [text]),
        "parameters": ({}, None),
        **TRUNCATE,
    }


@pytest.mark.parametrize("way", sorted(QUERY_WAYS))
def test_a_pooled_answer_of_a_sentence_transformers_model_is_kept_as_sent(
    replay: ReplayServer, way: str
) -> None:
    replay.serve(POOLED, at=_path(MINILM))
    text = POOLED.request_json()["inputs"]
    got = np.asarray(QUERY_WAYS[way](replay.url, MINILM, text, {}), dtype=np.float32)
    want = np.asarray(POOLED.answer_json(), dtype=np.float32)
    assert got.shape == (384,)
    np.testing.assert_array_equal(got, want)  # not re-normalised, not pooled
    assert want[:3].tolist() == pytest.approx([-0.015488003, 0.025685049, 0.090885899])
    (sent,) = replay.received
    assert differences(POOLED.request_json(), sent.json()) == {"inputs": (text, [text]), **TRUNCATE}


@pytest.mark.parametrize("way", sorted(BATCH_WAYS))
def test_ragged_token_level_answers_are_pooled_per_input(replay: ReplayServer, way: str) -> None:
    # No recording has two texts of different token counts; this answer joins two recorded ones
    # (8 tokens and 3 tokens) in the [n][1][tokens][dim] form the two-text recording shows.
    ragged = [ONE_STRING.answer_json(), TWO_TEXTS.answer_json()[0]]
    replay.serve(derived(ragged, "ragged"), at=_path(BART))
    got = np.asarray(BATCH_WAYS[way](replay.url, BART, ["Hi, who are you?", "Hi"], {}))
    want = np.vstack([_expected(ONE_STRING, "mean"), _expected(TWO_TEXTS, "mean")[0]])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_token_level_answer_with_more_than_one_row_per_input_is_refused(
    replay: ReplayServer,
) -> None:
    # The per-input axis holds the pipeline's batch of one; two rows there would be two inputs'
    # worth of tokens for one text: a malformed answer, not something to average over.
    doubled = [[item[0], item[0]] for item in TWO_TEXTS.answer_json()]
    replay.serve(derived(doubled, "doubled"), at=_path(BART))
    with pytest.raises(MalformedResponseError, match="inputs 0-1"):
        _task(replay.url, BART).embed(["Hi", "Hey"])
