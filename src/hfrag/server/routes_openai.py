"""OpenAI-form embeddings: TEI's ``/v1/embeddings`` (and ``/embeddings``), the router's
Inference Provider routes, and ``GET /v1/models``.

Request ``{"input": str | [str], "model"?, "encoding_format"?: "float"|"base64", "dimensions"?,
"user"?}``; answer ``{"object": "list", "data": [{"object": "embedding", "embedding", "index"}],
"model", "usage"}``, base64 being the little-endian float32 bytes of each vector. A model without
pooling (``hfrag/hash-embed-tokens``) answers, as llama.cpp's server does, each input's token
vectors as float lists (``[tokens][dim]``), not normalised, whatever ``encoding_format`` asks.
The checks are
those of ``/embed`` (batch limit, empty and over-long inputs, ``dimensions``); what differs is the
error shape:

- TEI layout: ``{"message", "code", "type"}`` (TEI's ``OpenAICompatErrorResponse``), TEI's
  statuses (batch size 413, or ``validation_status``); ``model`` is ignored.
- provider layout (``/together/v1/embeddings``, ``/scaleway/v1/embeddings``,
  ``/deepinfra/v1/openai/embeddings``): OpenAI's ``{"error": {"message", "type", "param",
  "code"}}``; too many inputs is 400 "Too many inputs. The max number of inputs is N."; ``model``
  must be one of the provider's model ids from the Hub mapping (404 otherwise).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiohttp import web

from hfrag.server.backends import normalize_rows
from hfrag.server.config import ModelSpec
from hfrag.server.inference import (
    admit,
    embed_output,
    first_of_kind,
    json_response,
    pooled_vectors,
    raw_body,
    state_of,
)
from hfrag.server.routes_hub import provider_models
from hfrag.server.validation import (
    ApiError,
    EmbedOptions,
    Field,
    check_batch,
    parse_json_body,
    prepare_embed_texts,
)

__all__ = ["PROVIDER_ROUTES", "models_route", "openai_embeddings_route", "provider_route"]

#: The router's provider routes this server answers (the router's, not hfrag's client table).
PROVIDER_ROUTES = {
    "together": "/together/v1/embeddings",
    "scaleway": "/scaleway/v1/embeddings",
    "deepinfra": "/deepinfra/v1/openai/embeddings",
}


def _openai_error(status: int, message: str, code: str | None = None) -> ApiError:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return ApiError(status, {"error": error})


def _inputs(fields: Field) -> list[str]:
    value = fields.required("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise fields.fail("input", "data did not match any variant of untagged enum Input")


def _encoding(fields: Field) -> str:
    value = fields.string("encoding_format", default="float")
    if value not in ("float", "base64"):
        raise fields.fail(
            "encoding_format", f"unknown variant `{value}`, expected `float` or `base64`"
        )
    return str(value)


async def _vectors(
    spec: ModelSpec, texts: list[str], options: EmbedOptions
) -> np.ndarray | list[Any]:
    """Unit vectors, ``(n, dim)``; for a model without pooling, each text's token vectors as
    the model computes them (nested lists), as llama.cpp's server answers."""
    if not spec.pooling:
        return await embed_output(spec, texts, options)
    vectors = await pooled_vectors(spec, texts)
    if options.dimensions is not None:
        vectors = vectors[:, : options.dimensions]
    return normalize_rows(vectors).astype(np.float32, copy=False)


def _encoded(row: Any, encoding: str) -> Any:
    if isinstance(row, list):  # token level: floats whatever was asked (llama.cpp does so)
        return row
    if encoding == "base64":
        return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
    return row.tolist()


async def _embeddings(
    request: web.Request, spec: ModelSpec | None, provider: str | None
) -> web.Response:
    state = state_of(request)
    config = state.config
    raw = raw_body(request)
    fields = Field(
        parse_json_body(raw, request.headers.get("Content-Type", "")), raw, "OpenAICompatRequest"
    )
    texts = _inputs(fields)
    model = fields.string("model")
    encoding = _encoding(fields)
    options = EmbedOptions(
        normalize=True, truncate=config.auto_truncate, dimensions=fields.integer("dimensions")
    )
    if provider is not None:
        if model is None:
            raise _openai_error(400, "you must provide a model parameter")
        served = provider_models(config, provider).get(model)
        spec = config.model(served) if served is not None else None
        if spec is None or spec.kind != "embed":
            raise _openai_error(
                404, f"The model `{model}` does not exist on {provider}", "model_not_found"
            )
    assert spec is not None
    admit(len(texts), texts)
    if provider is not None and len(texts) > config.max_client_batch_size:
        raise _openai_error(
            400,
            f"Too many inputs. The max number of inputs is {config.max_client_batch_size}. "
            "We recommend sending fewer inputs per request.",
        )
    check_batch(len(texts), config)
    prepared = prepare_embed_texts(spec, texts, options)
    vectors = await _vectors(spec, prepared, options)
    data = [
        {"object": "embedding", "embedding": _encoded(row, encoding), "index": index}
        for index, row in enumerate(vectors)
    ]
    tokens = sum(len(spec.backend.tokenize(t)) for t in prepared)
    answer = {
        "object": "list",
        "data": data,
        "model": model or spec.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_response(answer)


def _tei_shape(request: web.Request, err: ApiError) -> ApiError:
    """TEI's OpenAI-compatible error body for an error raised in TEI's own shape."""
    if isinstance(err.body, dict) and "error_type" in err.body:
        error_type = err.body["error_type"]
        status = state_of(request).config.validation_status
        err.status = status if error_type == "Validation" else err.status
        err.body = {"message": err.body["error"], "code": err.status, "type": error_type}
    return err


def _provider_shape(err: ApiError) -> ApiError:
    """OpenAI's error body for an error raised in TEI's shape (providers answer 400, not 413)."""
    if isinstance(err.body, dict) and "error_type" in err.body:
        status = 400 if err.status == 413 else err.status
        return _openai_error(status, str(err.body["error"]))
    return err


async def openai_embeddings_route(request: web.Request) -> web.Response:
    """``POST /v1/embeddings`` and ``/embeddings``: the first embedding model (TEI layout)."""
    try:
        return await _embeddings(request, first_of_kind(state_of(request), "embed"), None)
    except ApiError as err:
        raise _tei_shape(request, err) from None


def provider_route(provider: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of ``provider``'s embeddings route on the router."""

    async def handler(request: web.Request) -> web.Response:
        try:
            return await _embeddings(request, None, provider)
        except ApiError as err:
            raise _provider_shape(err) from None

    handler.__doc__ = f"``POST {PROVIDER_ROUTES[provider]}``: {provider}'s embeddings."
    return handler


async def models_route(request: web.Request) -> web.Response:
    """``GET /v1/models``: the served models, OpenAI's list shape (with two ``hfrag_`` keys)."""
    models = state_of(request).config.models
    data = [
        {
            "id": m.name,
            "object": "model",
            "created": 0,
            "owned_by": "hfrag",
            # not OpenAI's: the backend, and who decides a generator's tool calls (see /info)
            "hfrag_runtime": getattr(m.backend, "runtime", None) or type(m.backend).__name__,
            "hfrag_tool_calls": getattr(m.backend, "tool_calls", None),
        }
        for m in models
    ]
    return json_response({"object": "list", "data": data})
