"""TEI routes: ``/embed``, ``/rerank``, ``/predict`` and TEI's ``/info``.

Shapes and rejections follow TEI's ``router/src/http/server.rs``: ``/embed`` is always 2-D (3-D
for a model without pooling), ``/rerank`` is sorted by score (ties: later index first, as TEI's
ascending sort then reverse gives), batch checks come before per-input checks. ``/rerank`` answers
424 "model is not a re-ranker model" when no re-ranker is served, or when the re-ranker has
several labels (TEI's ``classifier`` model type, which ``/info`` then reports).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hfrag._version import __version__
from hfrag.server.config import ModelSpec, ServerConfig
from hfrag.server.inference import (
    admit,
    embed_output,
    first_of_kind,
    json_response,
    raw_body,
    rerank_scores,
    state_of,
)
from hfrag.server.validation import (
    EmbedOptions,
    Field,
    check_batch,
    parse_embed_inputs,
    parse_json_body,
    prepare_embed_texts,
    prepare_pairs,
    tei_error,
)

__all__ = ["embed_route", "feature_extraction", "predict_route", "rerank_route", "tei_info"]

_PREDICT_EXPECTED = (
    "a string, a pair of strings [string, string] or a batch of mixed strings and pairs "
    "[[string], [string, string], ...]"
)


def tei_info(spec: ModelSpec, config: ServerConfig) -> dict[str, Any]:
    """``GET /info`` of TEI for an embedding or re-ranker primary model."""
    if spec.kind == "rerank":
        id2label = {str(i): label for i, label in enumerate(spec.labels)}
        label2id = {label: i for i, label in enumerate(spec.labels)}
        # TEI calls a one-label classifier a re-ranker; with more labels it is a classifier.
        kind = "reranker" if len(spec.labels) == 1 else "classifier"
        model_type: dict[str, Any] = {kind: {"id2label": id2label, "label2id": label2id}}
    else:
        pooling = "splade" if spec.kind == "sparse" else "mean" if spec.pooling else "none"
        model_type = {"embedding": {"pooling": pooling}}
    return {
        "model_id": spec.name,
        "model_sha": None,
        "model_dtype": getattr(spec.backend, "dtype", "float32"),
        "model_type": model_type,
        "max_concurrent_requests": config.max_concurrent_requests,
        "max_input_length": spec.max_input_length,
        "max_batch_tokens": config.max_batch_tokens,
        "max_batch_requests": None,
        "max_client_batch_size": config.max_client_batch_size,
        "auto_truncate": config.auto_truncate,
        "tokenization_workers": 1,
        "version": __version__,
        "sha": None,
        "docker_label": None,
    }


async def feature_extraction(
    request: web.Request, spec: ModelSpec, *, flat_single: bool
) -> web.Response:
    """Embed ``inputs`` with ``spec``; ``flat_single`` returns one string's vector unwrapped."""
    state = state_of(request)
    raw = raw_body(request)
    fields = Field(
        parse_json_body(raw, request.headers.get("Content-Type", "")), raw, "EmbedRequest"
    )
    texts, single = parse_embed_inputs(fields)
    options = EmbedOptions.parse(fields, state.config)
    admit(len(texts), texts)
    if not single:
        check_batch(len(texts), state.config)
    prepared = prepare_embed_texts(spec, texts, options)
    vectors = await embed_output(spec, prepared, options)
    if flat_single and not spec.pooling:
        # The router's hf-inference pipeline serving a model without pooling keeps each input's
        # tokenizer batch of one: [1][tokens][dim] for a string, [n][1][tokens][dim] for a list
        # (huggingface_hub's recorded InferenceClient tests, facebook/bart-base).
        resp = json_response(vectors if single else [[tokens] for tokens in vectors])
    else:
        resp = json_response(vectors[0] if single and flat_single else vectors)
    return resp


async def embed_route(request: web.Request) -> web.Response:
    """``POST /embed``: the first embedding model, always a batch-shaped answer."""
    spec = first_of_kind(state_of(request), "embed")
    return await feature_extraction(request, spec, flat_single=False)


async def rerank_with(request: web.Request, spec: ModelSpec | None) -> web.Response:
    """TEI ``/rerank`` with ``spec`` (None: the first re-ranker)."""
    state = state_of(request)
    raw = raw_body(request)
    fields = Field(
        parse_json_body(raw, request.headers.get("Content-Type", "")), raw, "RerankRequest"
    )
    query = fields.string("query", required=True)
    texts = fields.strings("texts")
    truncate = fields.boolean("truncate")
    direction = fields.direction()
    raw_scores = fields.boolean("raw_scores", False, nullable=False)
    return_text = fields.boolean("return_text", False, nullable=False)
    admit(len(texts), texts)
    if not texts:
        raise tei_error("Empty", "`texts` cannot be empty")
    if spec is None or spec.kind != "rerank":
        spec = first_of_kind(state, "rerank")
    if len(spec.labels) != 1:
        raise tei_error("Backend", "Backend error: Inference error: model is not a re-ranker model")
    check_batch(len(texts), state.config, "texts")
    auto = state.config.auto_truncate if truncate is None else truncate
    pairs = prepare_pairs(spec, [(query, t) for t in texts], auto, direction)
    scores = await rerank_scores(spec, pairs, raw_scores)
    ranks = []
    for index, score in enumerate(scores):
        rank: dict[str, Any] = {"index": index}
        if return_text:
            rank["text"] = texts[index]
        rank["score"] = score
        ranks.append(rank)
    ranks.sort(key=lambda r: float(r["score"]))
    ranks.reverse()
    return json_response(ranks)


async def rerank_route(request: web.Request) -> web.Response:
    """``POST /rerank``."""
    return await rerank_with(request, None)


def _predict_inputs(fields: Field) -> tuple[list[tuple[str, str]], bool]:
    """TEI's ``PredictInput``: a string, a pair, or a batch of 1- or 2-string lists."""
    value = fields.required("inputs")

    def bad() -> Exception:
        return fields.fail("inputs", f"invalid value, expected {_PREDICT_EXPECTED}")

    if isinstance(value, str):
        return [(value, "")], True
    if not isinstance(value, list) or not value:
        raise bad()
    if all(isinstance(v, str) for v in value):
        if len(value) > 2:
            raise bad()
        return [(value[0], value[1] if len(value) == 2 else "")], True
    batch = []
    for item in value:
        if not (
            isinstance(item, list) and 1 <= len(item) <= 2 and all(isinstance(s, str) for s in item)
        ):
            raise bad()
        batch.append((item[0], item[1] if len(item) == 2 else ""))
    return batch, False


async def predict_route(request: web.Request) -> web.Response:
    """``POST /predict``: sequence classification with the first re-ranker's labels."""
    state = state_of(request)
    raw = raw_body(request)
    body = parse_json_body(raw, request.headers.get("Content-Type", ""))
    fields = Field(body, raw, "PredictRequest")
    pairs, single = _predict_inputs(fields)
    truncate = fields.boolean("truncate")
    direction = fields.direction()
    raw_scores = fields.boolean("raw_scores", False, nullable=False)
    admit(len(pairs), [b or a for a, b in pairs])
    spec = first_of_kind(state, "rerank")
    if not single:
        check_batch(len(pairs), state.config)
    auto = state.config.auto_truncate if truncate is None else truncate
    prepared = prepare_pairs(spec, pairs, auto, direction)
    scores = await rerank_scores(spec, prepared, raw_scores)
    predictions = [[{"score": s, "label": spec.labels[0]}] for s in scores]
    return json_response(predictions[0] if single else predictions)
