"""The wire forms of the rerank task, and the options they carry.

A wire form is one entry of :data:`WIRE_FORMS`: where to POST for a target (``route``), the body
for a query and a batch of documents (``build``), and how to read the answer into scores in input
order (``decode``, see :mod:`hfrag.tasks.scores`). :class:`~hfrag.tasks.RerankClient` picks one
per client and remembers it; ``protocol="auto"`` decides from the target and, for an endpoint, its
``GET /info`` (:func:`form_from_info`, :func:`refuse_non_rerankers`).

==============  ==============================================  =================================
protocol        request                                         score
==============  ==============================================  =================================
hf-inference    ``POST {url}``: text classification of           the relevant label's score: the
                ``{"text": query, "text_pair": doc}`` pairs      sigmoid probability of a one-label
                (router: ``/hf-inference/models/{id}``)          cross-encoder, softmax for
                                                                 several labels; the logit with
                                                                 ``raw_scores``
tei             ``POST /rerank {"query", "texts"}``              sigmoid probability; the logit
                                                                 with ``raw_scores``
cohere          ``POST /v1/rerank {"query", "documents"}``       the server's ``relevance_score``
                (Infinity, vLLM, Jina, Cohere, newer TEI)        (a probability)
sentence-       ``POST {url}`` ``{"inputs": {"source_sentence":  the cosine similarity of a
similarity      query, "sentences": docs}}`` (router:            bi-encoder's vectors, in
                ``/hf-inference/models/{id}/pipeline/            [-1, 1]: a user with only an
                sentence-similarity``)                           embedding model can rerank
==============  ==============================================  =================================

The hf-inference form asks the pipeline for every label (``top_k``), so that a one-label answer
means a one-label model (see :func:`hfrag.tasks.scores.from_labels`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hfrag.errors import ConfigurationError
from hfrag.tasks.base import Target
from hfrag.tasks.scores import Scores, from_indexed, from_labels, from_similarities
from hfrag.tasks.served import served_from_info
from hfrag.transport.urls import endpoint_route, named_route

__all__ = [
    "PROTOCOLS",
    "WIRE_FORMS",
    "Protocol",
    "RerankOptions",
    "WireForm",
    "form_from_info",
    "refuse_non_rerankers",
]

Protocol = Literal["auto", "hf-inference", "tei", "cohere", "sentence-similarity"]
PROTOCOLS = ("auto", "hf-inference", "tei", "cohere", "sentence-similarity")
#: ``top_k`` that asks the text-classification pipeline for all its labels (it keeps the first
#: ``top_k`` by score; no re-ranker has this many).
EVERY_LABEL = 1000
FUNCTIONS = ("sigmoid", "softmax", "none")


def _check(name: str, value: Any, kinds: tuple[type, ...], what: str) -> None:
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ConfigurationError(f"{name} must be {what}, got {type(value).__name__} {value!r:.40}")


@dataclass(frozen=True)
class RerankOptions:
    """What to ask the server for, and how to cut the work. See :class:`RerankClient`.

    ``raw_scores`` asks for raw logits instead of probabilities (TEI ``raw_scores``, the pipeline's
    ``function_to_apply="none"``; the Cohere form has none). ``function_to_apply`` picks the
    pipeline's function (hf-inference only; default: the server's, sigmoid for one label and
    softmax for several). ``label`` names the relevant label of a multi-label classifier
    (hf-inference only; default rule in :func:`hfrag.tasks.scores.relevant_label`).
    ``served_model`` is sent as ``model`` in the Cohere form (vLLM, Infinity, Jina and Cohere
    want it; TEI ignores it).
    """

    protocol: Protocol = "auto"
    batch_size: int = 32
    max_concurrency: int = 4
    truncate: bool | None = True
    truncation_direction: Literal["left", "right"] | None = None
    raw_scores: bool = False
    function_to_apply: Literal["sigmoid", "softmax", "none"] | None = None
    label: str | None = None
    served_model: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigurationError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        for name in ("batch_size", "max_concurrency"):
            value = getattr(self, name)
            _check(name, value, (int,), "an integer >= 1")
            if value < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {value}")
        _check("raw_scores", self.raw_scores, (bool,), "True or False")
        _check("truncate", self.truncate, (bool, type(None)), "True, False or None")
        if self.truncation_direction not in (None, "left", "right"):
            raise ConfigurationError(
                f"truncation_direction must be 'left' or 'right', got {self.truncation_direction!r}"
            )
        if self.function_to_apply not in (None, *FUNCTIONS):
            raise ConfigurationError(
                f"function_to_apply must be one of {FUNCTIONS}, got {self.function_to_apply!r}"
            )
        for name in ("label", "served_model"):
            value = getattr(self, name)
            _check(name, value, (str, type(None)), "a string or None")
            if value is not None and not value.strip():
                raise ConfigurationError(f"{name} must not be empty")
        if self.raw_scores and self.function_to_apply not in (None, "none"):
            raise ConfigurationError(
                f"raw_scores=True asks for raw logits but function_to_apply="
                f"{self.function_to_apply!r} asks for probabilities: give one"
            )
        self.check_form(self.protocol)

    def check_form(self, protocol: str) -> None:
        """Refuse options the wire form ``protocol`` cannot carry."""
        if protocol in ("tei", "cohere", "sentence-similarity"):
            for name in ("function_to_apply", "label"):
                if getattr(self, name) is not None:
                    raise ConfigurationError(
                        f"{name} is an option of the hf-inference form (text classification), "
                        f"not of protocol={protocol!r}; use raw_scores to get raw logits"
                    )
        if protocol == "cohere" and self.raw_scores:
            raise ConfigurationError(
                "the Cohere-style /v1/rerank form has no raw scores (its relevance_score is a "
                "probability); use protocol='tei' or 'hf-inference' for raw logits"
            )
        if protocol == "sentence-similarity" and self.raw_scores:
            raise ConfigurationError(
                "the sentence-similarity form answers cosine similarities, not logits; use a "
                "cross-encoder with protocol='tei' or 'hf-inference' for raw scores"
            )


# -- wire forms: where to send, what to send, how to read the answer ------------------------------


def _pairs_url(target: Target) -> str:
    return target.url("text-classification")


def _pairs_body(query: str, docs: list[str], o: RerankOptions) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    function = o.function_to_apply or ("none" if o.raw_scores else None)
    if function is not None:
        parameters["function_to_apply"] = function
    if o.truncate is not None:
        parameters["truncation"] = o.truncate  # the pipeline's tokenizer flag
    parameters["top_k"] = EVERY_LABEL  # every label, not the top one only
    return {"inputs": [{"text": query, "text_pair": d} for d in docs], "parameters": parameters}


def _pairs_decode(
    payload: Any, n: int, o: RerankOptions, where: str, url: str, seen: set[str]
) -> Scores:
    return from_labels(payload, n, label=o.label, where=where, url=url, seen=seen)


def _similarity_url(target: Target) -> str:
    return target.url("sentence-similarity")


def _similarity_body(query: str, docs: list[str], o: RerankOptions) -> dict[str, Any]:
    return {"inputs": {"source_sentence": query, "sentences": docs}}


def _similarity_decode(
    payload: Any, n: int, o: RerankOptions, where: str, url: str, seen: set[str]
) -> Scores:
    return from_similarities(payload, n, where=where, url=url)


def _tei_url(target: Target) -> str:
    url = target.endpoint_url or ""
    return url if named_route(url) == "/rerank" else endpoint_route(url, "/rerank")


def _tei_body(query: str, docs: list[str], o: RerankOptions) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query, "texts": docs, "raw_scores": o.raw_scores}
    if o.truncate is not None:
        body["truncate"] = o.truncate
    if o.truncation_direction is not None:
        body["truncation_direction"] = o.truncation_direction
    return body


def _tei_decode(
    payload: Any, n: int, o: RerankOptions, where: str, url: str, seen: set[str]
) -> Scores:
    return from_indexed(payload, n, cohere=False, where=where, url=url)


def _cohere_url(target: Target) -> str:
    url = target.endpoint_url or ""
    if named_route(url) in ("/v1/rerank", "/v2/rerank"):
        return url
    return endpoint_route(url, "/v1/rerank")


def _cohere_body(query: str, docs: list[str], o: RerankOptions) -> dict[str, Any]:
    # No top_n: every batch must score all its documents; top_n applies after the merge.
    body: dict[str, Any] = {"query": query, "documents": docs, "return_documents": False}
    if o.served_model is not None:
        body["model"] = o.served_model
    return body


def _cohere_decode(
    payload: Any, n: int, o: RerankOptions, where: str, url: str, seen: set[str]
) -> Scores:
    return from_indexed(payload, n, cohere=True, where=where, url=url)


@dataclass(frozen=True)
class WireForm:
    """One way of asking a server for rerank scores: (route, build, decode). ``decode`` gets a
    set of the labels the client has seen (the hf-inference form's memory across batches)."""

    name: str
    route: Callable[[Target], str]
    build: Callable[[str, list[str], RerankOptions], dict[str, Any]]
    decode: Callable[[Any, int, RerankOptions, str, str, set[str]], Scores]


WIRE_FORMS: Mapping[str, WireForm] = {
    "hf-inference": WireForm("hf-inference", _pairs_url, _pairs_body, _pairs_decode),
    "tei": WireForm("tei", _tei_url, _tei_body, _tei_decode),
    "cohere": WireForm("cohere", _cohere_url, _cohere_body, _cohere_decode),
    "sentence-similarity": WireForm(
        "sentence-similarity", _similarity_url, _similarity_body, _similarity_decode
    ),
}


def form_from_info(info: Mapping[str, Any], where: str) -> str:
    """The wire form an endpoint's ``GET /info`` implies (for ``protocol="auto"``)."""
    model_type = info.get("model_type")
    if isinstance(model_type, dict) and "reranker" in model_type:
        return "tei"
    if isinstance(model_type, dict) and "classifier" in model_type:
        labels = sorted((model_type["classifier"] or {}).get("label2id") or {})
        raise ConfigurationError(
            f"{where} serves a classifier with labels {labels}, not a re-ranker: TEI's /rerank "
            "refuses it; deploy a cross-encoder (one output label) to rerank with it"
        )
    return "hf-inference"  # no TEI info: the HF pipeline, as Inference Endpoints serve it


def refuse_non_rerankers(info: Mapping[str, Any], where: str) -> None:
    """An error, before any document is sent, for an endpoint whose /info says it cannot rerank."""
    served = served_from_info(info)
    if served is None or served[0] in ("reranking", "classification"):
        return
    kind, model = served
    if kind == "embeddings":
        raise ConfigurationError(
            f"{where} serves an embedding model ({model}), not a re-ranker: point endpoint_url "
            "at a TEI re-ranker (a cross-encoder such as BAAI/bge-reranker-v2-m3) or use "
            "model=... on the router"
        )
    raise ConfigurationError(f"{where} serves a text-generation model ({model}), not a re-ranker")
