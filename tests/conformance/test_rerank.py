"""Reranking over the router's hf-inference pipelines: recorded answers through every reranker.

Recordings (huggingface_hub cassettes, see recordings/SOURCES.json):

- sentence-transformers/all-MiniLM-L6-v2, sentence-similarity, 2023 (api-inference) and 2025
  (router): ``[0.7785..., 0.4587..., 0.2906...]``, one cosine similarity per sentence, to
  ``{"inputs": {"source_sentence", "sentences"}}`` (2023) and to the same fields at the body's
  root with ``"inputs": null`` (2025). hfrag sends the 2023 form, which huggingface_hub still
  sends (``InferenceClient.sentence_similarity`` at ee0a4510, ``inputs={"source_sentence": ...,
  "sentences": ...}``); its path is the router's nested
  ``/hf-inference/models/{id}/pipeline/sentence-similarity`` (huggingface_hub 83ba43cb,
  ``_providers/hf_inference.py``), where the 2023 recording used the retired host.
- distilbert/distilbert-base-uncased-finetuned-sst-2-english, text-classification, 2025:
  ``[[{"label": "POSITIVE", ...}, {"label": "NEGATIVE", ...}]]``, every label by score for one
  input. It is a sentiment model, not a cross-encoder, and the recorded input is one string; it
  is replayed to hfrag's pair form (``{"text", "text_pair"}``, which the transformers pipeline
  takes, ``TextClassificationPipeline.__call__``) to check the label handling on a real answer:
  hfrag names the relevant label with ``label=``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hfrag.errors import MalformedResponseError
from hfrag.server.testing import ServerHandle
from hfrag.tasks import RerankClient, RerankOptions
from tests.conformance.replay import ReplayServer, cassette, derived, differences

SIMILARITY = cassette("InferenceClientVCRTest.test_sentence_similarity")[0]
SIMILARITY_2025 = cassette(
    "TestInferenceClient.test_sentence_similarity[hf-inference,sentence-similarity]"
)[0]
CLASSIFICATION = cassette(
    "TestInferenceClient.test_text_classification[hf-inference,text-classification]"
)[0]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
SIM_PATH = f"/hf-inference/models/{MINILM}/pipeline/sentence-similarity"


def _task(url: str, model: str, **options: Any) -> RerankClient:
    return RerankClient(model=model, router_url=url, options=RerankOptions(**options))


def _lc_reranker(url: str, model: str, query: str, docs: list[str], **o: Any) -> list[float]:
    from langchain_core.documents import Document

    from hfrag.langchain import HuggingFaceInferenceReranker

    reranker = HuggingFaceInferenceReranker(model=model, router_url=url, **o)
    out = reranker.compress_documents([Document(page_content=d) for d in docs], query)
    by_text = {d.page_content: d.metadata["relevance_score"] for d in out}
    return [by_text[d] for d in docs]


def _lc_cross_encoder(url: str, model: str, query: str, docs: list[str], **o: Any) -> list[float]:
    from hfrag.langchain import HuggingFaceInferenceCrossEncoder

    encoder = HuggingFaceInferenceCrossEncoder(model=model, router_url=url, **o)
    return list(encoder.score([(query, d) for d in docs]))


def _li_rerank(url: str, model: str, query: str, docs: list[str], **o: Any) -> list[float]:
    from llama_index.core.schema import NodeWithScore, TextNode

    from hfrag.llama_index import HuggingFaceInferenceRerank

    rerank = HuggingFaceInferenceRerank(model=model, router_url=url, **o)
    nodes = [NodeWithScore(node=TextNode(text=d)) for d in docs]
    out = rerank.postprocess_nodes(nodes, query_str=query)
    by_text = {n.node.get_content(): n.score for n in out}
    return [by_text[d] for d in docs]


Way = Callable[..., list[float]]
#: Every class a user reranks with: (url, model, query, docs, **options) -> scores in input order.
WAYS: dict[str, Way] = {
    "RerankClient.score": lambda u, m, q, d, **o: list(_task(u, m, **o).score(q, d)),
    "RerankClient.ascore": lambda u, m, q, d, **o: list(asyncio.run(_task(u, m, **o).ascore(q, d))),
    "RerankClient.rerank": lambda u, m, q, d, **o: [
        s for _, s in sorted(_task(u, m, **o).rerank(q, d))
    ],
    "langchain.HuggingFaceInferenceReranker": _lc_reranker,
    "langchain.HuggingFaceInferenceCrossEncoder": _lc_cross_encoder,
    "llama_index.HuggingFaceInferenceRerank": _li_rerank,
}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_sentence_similarity_reranks_with_a_bi_encoder(replay: ReplayServer, way: str) -> None:
    replay.serve(SIMILARITY, at=SIM_PATH)
    recorded = SIMILARITY.request_json()["inputs"]
    query, docs = recorded["source_sentence"], recorded["sentences"]
    scores = WAYS[way](replay.url, MINILM, query, docs, protocol="sentence-similarity")
    assert scores == pytest.approx(SIMILARITY.answer_json(), rel=1e-6)
    (sent,) = replay.received
    assert sent.path == SIM_PATH
    assert differences(SIMILARITY.request_json(), sent.json()) == {}


def test_the_two_recorded_similarity_answers_agree() -> None:
    # The 2025 router answered the root-level form with the same scores as the 2023 nested one.
    np.testing.assert_allclose(SIMILARITY_2025.answer_json(), SIMILARITY.answer_json(), rtol=1e-6)


def test_sentence_similarity_is_batched_like_the_other_forms(server: ServerHandle) -> None:
    docs = ["paris is in france", "bananas are yellow", "the eiffel tower", "rivers flow", "x"]
    client = _task(server.url, "hfrag/hash-embed", protocol="sentence-similarity", batch_size=2)
    batched = client.score("where is paris?", docs)
    whole = _task(server.url, "hfrag/hash-embed", protocol="sentence-similarity").score(
        "where is paris?", docs
    )
    np.testing.assert_allclose(batched, whole, rtol=1e-6)
    # the batches are sent at once, so they may arrive in any order
    sizes = [len(b["inputs"]["sentences"]) for b in server.counters.bodies[:3]]
    assert sorted(sizes) == [1, 2, 2]


def test_sentence_similarity_refuses_a_wrong_count(replay: ReplayServer) -> None:
    replay.serve(SIMILARITY, at=SIM_PATH)
    with pytest.raises(MalformedResponseError, match="3 scores for 2 documents"):
        _task(replay.url, MINILM, protocol="sentence-similarity").score("q", ["a", "b"])


@pytest.mark.parametrize("way", sorted(WAYS))
def test_text_classification_answers_every_label_and_the_named_one_is_taken(
    replay: ReplayServer, way: str
) -> None:
    path = f"/hf-inference/models/{SST2}"
    replay.serve(CLASSIFICATION, at=path)
    scores = WAYS[way](replay.url, SST2, "I like", ["you"], label="POSITIVE")
    assert scores == pytest.approx([0.9998695850372314], rel=1e-6)
    (sent,) = replay.received
    # Pairs where the recording classified a string (see the module docstring); every label.
    assert sent.json()["inputs"] == [{"text": "I like", "text_pair": "you"}]
    assert sent.json()["parameters"]["top_k"] >= 2


def _top_only(label: str) -> list[list[dict[str, Any]]]:
    """The recorded answer cut to its top label (a server that ignores top_k), renamed."""
    top = dict(CLASSIFICATION.answer_json()[0][0], label=label)
    return [[top]]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_top_label_only_answers_are_refused_whatever_the_batching(
    replay: ReplayServer, batch_size: int
) -> None:
    path = f"/hf-inference/models/{SST2}"
    client = _task(replay.url, SST2, batch_size=batch_size, max_concurrency=1)
    # One document, one answer of label LABEL_1 alone: the model has at least two labels.
    replay.serve(derived(_top_only("LABEL_1"), "top-1"), at=path)
    with pytest.raises(MalformedResponseError, match="only the top label"):
        client.score("q", ["a"])
    # Labels that differ between batches (or calls) of one client: refused too.
    other = _task(replay.url, SST2, batch_size=1, max_concurrency=1, label="yes")
    replay.serve(derived(_top_only("yes"), "top-1 yes"), at=path)
    replay.serve(derived(_top_only("no"), "top-1 no"), at=path)
    with pytest.raises(MalformedResponseError, match="only the top label"):
        other.score("q", ["a", "b"])


def test_a_label_given_twice_in_one_answer_is_refused(replay: ReplayServer) -> None:
    answer = CLASSIFICATION.answer_json()
    twice = [[answer[0][0], dict(answer[0][1], label=answer[0][0]["label"])]]
    replay.serve(derived(twice, "label twice"), at=f"/hf-inference/models/{SST2}")
    with pytest.raises(MalformedResponseError, match="'POSITIVE' twice"):
        _task(replay.url, SST2, label="POSITIVE").score("q", ["a"])
