"""TEI's ``/embed_sparse`` and ``/tokenize`` routes (``app.py`` lists them with the others).

Shapes follow TEI's ``router/src/http/server.rs`` and ``types.rs``:

- ``POST /embed_sparse`` ``{"inputs": str | [str], "truncate"?, "truncation_direction"?,
  "prompt_name"?}`` answers per input the non-zero entries ``[{"index", "value"}, ...]``, always
  a list of lists (a single string too); the batch and per-input checks are ``/embed``'s.
  Served by the first model of kind ``sparse``, else by ``hfrag/lexical-bm25`` over the first
  embedding model's tokens (:mod:`hfrag.server.backends_sparse`).
- ``POST /tokenize`` ``{"inputs": str | [str], "add_special_tokens"? (default true),
  "prompt_name"?}`` answers per input ``[{"id", "text", "special", "start", "stop"}, ...]``:
  offsets are UTF-8 byte offsets into the (prompted) input, null for special tokens, whose
  ``text`` is the token itself. No truncation; TEI's character limit (``max_input_length`` x
  250) still applies. Tokens come from the first embedding model (else the primary).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from hfrag.server.backends_sparse import LEXICAL_MODEL, LexicalSparse, token_spans
from hfrag.server.config import ModelSpec
from hfrag.server.inference import (
    _run_model,
    admit,
    first_of_kind,
    json_response,
    raw_body,
    state_of,
)
from hfrag.server.state import ServerState
from hfrag.server.validation import (
    MAX_CHAR_MULTIPLIER,
    EmbedOptions,
    Field,
    _prompt_prefix,
    check_batch,
    parse_embed_inputs,
    parse_json_body,
    prepare_embed_texts,
    tei_error,
)

__all__ = ["embed_sparse_route", "sparse_model", "tokenize_route"]


def sparse_model(state: ServerState) -> ModelSpec:
    """The model ``/embed_sparse`` uses: the first sparse one, else the lexical one."""
    spec = state.config.first_of("sparse")
    if spec is not None and not hasattr(
        spec.backend, "sparse"
    ):  # e.g. hfrag serve --model x=sparse
        spec = replace(spec, backend=LexicalSparse(spec.backend))
    if spec is not None:
        return spec
    base = first_of_kind(state, "embed")
    backend = LexicalSparse(base.backend)  # no state of its own: cheap to build per request
    return ModelSpec(
        LEXICAL_MODEL,
        "sparse",
        backend,
        max_input_length=base.max_input_length,
        prompts=base.prompts,
    )


def _fields(request: web.Request, struct: str) -> Field:
    raw = raw_body(request)
    return Field(parse_json_body(raw, request.headers.get("Content-Type", "")), raw, struct)


async def embed_sparse_route(request: web.Request) -> web.Response:
    """``POST /embed_sparse``."""
    state = state_of(request)
    fields = _fields(request, "EmbedSparseRequest")
    texts, single = parse_embed_inputs(fields)
    options = EmbedOptions.parse(fields, state.config)
    admit(len(texts), texts)
    if not single:
        check_batch(len(texts), state.config)
    spec = sparse_model(state)
    prepared = prepare_embed_texts(spec, texts, options)
    rows = await _run_model("embed", spec.backend.sparse, prepared)
    answer = [[{"index": i, "value": v} for i, v in zip(*row, strict=True)] for row in rows]
    resp = json_response(answer)
    return resp


def _tokenizer_model(state: ServerState) -> ModelSpec:
    spec = state.config.first_of("embed")
    return spec if spec is not None else state.config.primary


async def tokenize_route(request: web.Request) -> web.Response:
    """``POST /tokenize``."""
    state = state_of(request)
    fields = _fields(request, "TokenizeRequest")
    value = fields.required("inputs")
    if isinstance(value, str):
        texts, single = [value], True
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        texts, single = list(value), False
    else:
        raise fields.fail("inputs", "data did not match any variant of untagged enum TokenizeInput")
    special = fields.boolean("add_special_tokens", True, nullable=False)
    spec = _tokenizer_model(state)
    prefix = _prompt_prefix(spec, fields.string("prompt_name"))
    admit(len(texts), texts)
    if not single:
        check_batch(len(texts), state.config)
    limit = spec.max_input_length * MAX_CHAR_MULTIPLIER
    prompted = [prefix + text for text in texts]
    for text in prompted:
        if len(text) > limit:
            raise tei_error(
                "Validation",
                f"Input validation error: `inputs` must have less than {limit} characters. "
                f"Given: {len(text)}",
            )

    def tokenize() -> list[Any]:
        return [
            [
                {"id": i, "text": t, "special": s, "start": a, "stop": b}
                for i, t, s, a, b in token_spans(spec.backend, text, special)
            ]
            for text in prompted
        ]

    answer = await _run_model("embed", tokenize)
    resp = json_response(answer)
    return resp
