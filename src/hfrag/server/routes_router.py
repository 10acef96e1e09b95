"""The HF router layout: ``/hf-inference/models/{model_id}[/pipeline/{task}]``.

``model_id`` contains a slash (``org/name``). An unknown model gets the router's 404
``{"error": "Model X does not exist"}``. The model root dispatches on the model's kind:
feature extraction (embed), text classification of ``{"text", "text_pair"}`` pairs (rerank) or
text generation (generate). Feature extraction returns a single string's vector 1-D, a list
2-D, and for a model without pooling per-token vectors with a per-input axis of one, as the
real router does: ``[1][tokens][dim]`` for a string, ``[n][1][tokens][dim]`` (ragged) for a
list (recorded: facebook/bart-base, see docs/PROTOCOL.md). Text generation of a model with
``unused_kwargs`` (a model the real router serves with the transformers pipeline, not TGI)
refuses those parameters with the recorded 400. Validation errors are TEI's, as the router
forwards them from the TEI containers that serve these models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiohttp import web

from hfrag.server.backends import normalize_rows
from hfrag.server.config import ModelSpec
from hfrag.server.inference import (
    admit,
    classification_scores,
    embed_output,
    json_response,
    model_or_404,
    raw_body,
    state_of,
)
from hfrag.server.routes_tei import feature_extraction
from hfrag.server.routes_tgi import text_generation
from hfrag.server.validation import (
    ApiError,
    EmbedOptions,
    Field,
    check_batch,
    parse_json_body,
    prepare_embed_texts,
    prepare_pairs,
    tei_error,
)

__all__ = ["model_route", "pipeline_route"]

TASK_KIND = {
    "feature-extraction": "embed",
    "sentence-similarity": "embed",
    "text-classification": "rerank",
    "text-generation": "generate",
}
KIND_TASK = {
    "embed": "feature-extraction",
    "rerank": "text-classification",
    "generate": "text-generation",
    # No pipeline serves sparse vectors: a sparse model's own task is refused (400) as unknown.
    "sparse": "sparse-embedding",
}


async def _run_task(request: web.Request, spec: ModelSpec, task: str) -> web.StreamResponse:
    if task not in TASK_KIND:
        raise ApiError(400, {"error": f"Task {task} is not supported"})
    if TASK_KIND[task] != spec.kind:
        raise ApiError(400, {"error": f"Model {spec.name} does not support task {task}"})
    if task == "feature-extraction":
        return await feature_extraction(request, spec, flat_single=True)
    if task == "sentence-similarity":
        return await sentence_similarity(request, spec)
    if task == "text-classification":
        return await text_classification(request, spec)
    _refuse_unused_kwargs(request, spec)
    return await text_generation(request, spec, wrapped=True)


def _refuse_unused_kwargs(request: web.Request, spec: ModelSpec) -> None:
    """The real router's 400 for parameters a pipeline (non-TGI) model does not take, word for
    word as recorded (huggingface_hub's cassettes, google/flan-t5-large and gpt2)."""
    body = parse_json_body(raw_body(request), request.headers.get("Content-Type", ""))
    parameters = body.get("parameters") if isinstance(body, dict) else None
    unused = [k for k in parameters or () if k in spec.unused_kwargs]
    if not unused:
        return
    message = (
        f"The following `model_kwargs` are not used by the model: {unused} (note: typos in the "
        "generate arguments will also show up in this list)"
    )
    raise ApiError(
        400, {"error": message, "warnings": [f"There was an inference error: {message}"]}
    )


async def pipeline_route(request: web.Request) -> web.StreamResponse:
    """``POST /hf-inference/models/{model_id}/pipeline/{task}``."""
    spec = model_or_404(state_of(request), request.match_info["model_id"])
    return await _run_task(request, spec, request.match_info["task"])


async def model_route(request: web.Request) -> web.StreamResponse:
    """``POST /hf-inference/models/{model_id}``: the model's own task."""
    spec = model_or_404(state_of(request), request.match_info["model_id"])
    return await _run_task(request, spec, KIND_TASK[spec.kind])


async def sentence_similarity(request: web.Request, spec: ModelSpec) -> web.Response:
    """Cosine similarity of ``source_sentence`` with each of ``sentences``."""
    state = state_of(request)
    raw = raw_body(request)
    body = parse_json_body(raw, request.headers.get("Content-Type", ""))
    fields = Field(body, raw, "SimilarityRequest")
    inputs = Field(fields.required("inputs"), raw, "SimilarityInput", prefix="inputs.")
    source = inputs.string("source_sentence", required=True)
    sentences = inputs.strings("sentences")
    params_body = fields.body.get("parameters") or {}
    params = Field(params_body, raw, "SimilarityParameters", prefix="parameters.")
    options = EmbedOptions.parse(params, state.config)
    options.normalize = True
    admit(len(sentences) + 1, sentences, answered=len(sentences))
    if not sentences:
        raise tei_error("Empty", "`inputs.sentences` cannot be empty")
    check_batch(len(sentences) + 1, state.config)
    prepared = prepare_embed_texts(spec, [source, *sentences], options)
    output = await embed_output(spec, prepared, options)
    if spec.pooling:
        vectors = np.asarray(output, dtype=np.float32)
    else:  # a model without pooling: mean-pool its tokens first
        vectors = np.stack([np.asarray(v, dtype=np.float32).mean(0) for v in output])
    unit = normalize_rows(vectors)
    # float32 like TEI, so a sentence compared with itself gives 1.0, not 1.0000000000000002
    sims = [float(np.clip(np.dot(unit[0], unit[i]), -1.0, 1.0)) for i in range(1, len(unit))]
    return json_response(sims)


def _classification_pairs(fields: Field) -> list[tuple[str, str]]:
    """``inputs`` as (text, text_pair) pairs: dicts, one dict, strings or one string."""
    value = fields.required("inputs")
    items: list[Any] = value if isinstance(value, list) else [value]
    pairs = []
    for item in items:
        if isinstance(item, str):
            pairs.append((item, ""))
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            pair = item.get("text_pair", "")
            if not isinstance(pair, str):
                raise fields.fail("inputs", "text_pair: invalid type, expected a string")
            pairs.append((item["text"], pair))
        else:
            raise fields.fail(
                "inputs", 'expected a string, {"text", "text_pair"} or a list of them'
            )
    return pairs


async def text_classification(request: web.Request, spec: ModelSpec) -> web.Response:
    """Scores of ``{"text", "text_pair"}`` pairs: ``[[{"label", "score"}], ...]``."""
    state = state_of(request)
    raw = raw_body(request)
    body = parse_json_body(raw, request.headers.get("Content-Type", ""))
    fields = Field(body, raw, "TextClassificationRequest")
    pairs = _classification_pairs(fields)
    params = Field(fields.body.get("parameters") or {}, raw, "Parameters", prefix="parameters.")
    function_to_apply = params.string("function_to_apply")
    top_k = params.integer("top_k", minimum=1)
    truncate = params.boolean("truncation")
    if truncate is None:
        truncate = fields.boolean("truncate")
    admit(len(pairs), [b or a for a, b in pairs])
    check_batch(len(pairs), state.config)
    auto = state.config.auto_truncate if truncate is None else truncate
    prepared = prepare_pairs(spec, pairs, auto, "right")
    scores = await classification_scores(spec, prepared, function_to_apply)
    if top_k is not None:
        scores = [labels[:top_k] for labels in scores]
    return json_response(scores)
