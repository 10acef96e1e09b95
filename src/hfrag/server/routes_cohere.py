"""The Cohere/Jina-style rerank layout: ``POST /v1/rerank`` and ``POST /v2/rerank``.

Spoken by Infinity, vLLM, Jina, Cohere and newer TEI: ``{"model"?, "query", "documents":
[str | {"text"}], "top_n"?, "return_documents"?}`` answered as ``{"model", "results": [{"index",
"relevance_score", "document"?: {"text"}}], "usage"}``, sorted by score, highest first (ties: the
lower index first). ``relevance_score`` is the sigmoid of the model's logit, as Cohere's and
Jina's are probabilities.

Validation, batch limit, truncation and counters are TEI's ``/rerank`` ones (the same helpers), so
the routes differ only in shapes: an empty or too-large ``documents`` list gets TEI's 400/413, an
over-long pair TEI's 413 unless the server auto-truncates. ``model``, when given, must name a
served re-ranker (the OpenAI-style 404 otherwise, as vLLM answers); when absent the first
re-ranker answers. ``top_n`` cuts the sorted results; ``return_documents`` adds each text.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hfrag.server.config import ModelSpec
from hfrag.server.inference import (
    admit,
    first_of_kind,
    json_response,
    raw_body,
    rerank_scores,
    state_of,
)
from hfrag.server.state import ServerState
from hfrag.server.validation import (
    ApiError,
    Field,
    check_batch,
    describe,
    parse_json_body,
    prepare_pairs,
)

__all__ = ["cohere_rerank_route"]


def _documents(fields: Field) -> list[str]:
    """``documents`` as texts: each a string or a ``{"text": str}`` object."""
    value = fields.required("documents")
    if not isinstance(value, list):
        raise fields.fail("documents", f"invalid type: {describe(value)}, expected a sequence")
    texts = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif isinstance(item, str):
            texts.append(item)
        else:
            raise fields.fail(
                "documents", f"invalid type: {describe(item)}, expected a string or {{text}}"
            )
    return texts


def _model(state: ServerState, name: str | None) -> ModelSpec:
    if name is None:
        return first_of_kind(state, "rerank")
    spec = state.config.model(name)
    if spec is None or spec.kind != "rerank":
        message = f"The model `{name}` does not exist."
        raise ApiError(404, {"error": {"message": message, "type": "NotFoundError", "code": 404}})
    return spec


async def cohere_rerank_route(request: web.Request) -> web.Response:
    """``POST /v1/rerank`` and ``POST /v2/rerank``."""
    state = state_of(request)
    raw = raw_body(request)
    fields = Field(
        parse_json_body(raw, request.headers.get("Content-Type", "")), raw, "RerankRequest"
    )
    query = fields.string("query", required=True)
    texts = _documents(fields)
    top_n = fields.integer("top_n", minimum=1)
    return_documents = fields.boolean("return_documents", False)
    spec = _model(state, fields.string("model"))
    admit(len(texts), texts)
    check_batch(len(texts), state.config, "documents")
    pairs = prepare_pairs(spec, [(query, t) for t in texts], state.config.auto_truncate, "right")
    scores = await rerank_scores(spec, pairs, raw_scores=False)
    order = sorted(range(len(texts)), key=lambda i: (-scores[i], i))
    results: list[dict[str, Any]] = []
    for index in order[:top_n]:
        result: dict[str, Any] = {"index": index, "relevance_score": scores[index]}
        if return_documents:
            result["document"] = {"text": texts[index]}
        results.append(result)
    tokens = sum(len(spec.backend.tokenize(q)) + len(spec.backend.tokenize(t)) for q, t in pairs)
    return json_response(
        {"model": spec.name, "results": results, "usage": {"total_tokens": tokens}}
    )
