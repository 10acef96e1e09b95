"""Request validation that mirrors the real servers' rejections.

Three families of errors, as the real servers send them:

- axum's JSON extractor (TEI and TGI are axum apps), plain text: 415 without a JSON content
  type, 400 ``Failed to parse the request body as JSON: ...`` for a syntax error, 422
  ``Failed to deserialize the JSON body into the target type: ...`` for a missing field or a
  wrong type (line/column point at the end of the body: close to serde's, not exact).
- TEI, JSON ``{"error", "error_type"}`` with TEI's capitalised types and statuses:
  ``Validation`` 413, ``Empty`` 400, ``Tokenizer`` 422, ``Backend`` 424, ``Overloaded`` 429.
- TGI, JSON ``{"error", "error_type"}`` with lowercase types: ``validation`` 422,
  ``generation`` 424, ``overloaded`` 429, ``incomplete_generation`` 500.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hfrag.server.config import ModelSpec, ServerConfig

__all__ = [
    "ApiError",
    "EmbedOptions",
    "Field",
    "deserialize_error",
    "parse_json_body",
    "prepare_embed_texts",
    "prepare_pairs",
    "tei_error",
    "tgi_error",
]

TEI_STATUS = {
    "Validation": 413,
    "Empty": 400,
    "Tokenizer": 422,
    "Backend": 424,
    "Overloaded": 429,
    "Unhealthy": 503,
}
TGI_STATUS = {
    "validation": 422,
    "generation": 424,
    "overloaded": 429,
    "incomplete_generation": 500,
}
# TEI refuses inputs longer than this many characters per allowed token before tokenizing.
MAX_CHAR_MULTIPLIER = 250


class ApiError(Exception):
    """An HTTP error answer: raised anywhere in a handler, sent by the middleware."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any] | str | bytes,
        *,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type


def tei_error(error_type: str, message: str) -> ApiError:
    """A TEI error with the status TEI maps ``error_type`` to."""
    return ApiError(TEI_STATUS[error_type], {"error": message, "error_type": error_type})


def tgi_error(error_type: str, message: str) -> ApiError:
    """A TGI error with the status TGI maps ``error_type`` to."""
    return ApiError(TGI_STATUS[error_type], {"error": message, "error_type": error_type})


def _text_error(status: int, message: str) -> ApiError:
    return ApiError(status, message, content_type="text/plain; charset=utf-8")


def _end_position(raw: bytes) -> tuple[int, int]:
    text = raw.decode("utf-8", "replace").rstrip()
    lines = text.split("\n") or [""]
    return len(lines), len(lines[-1])


def deserialize_error(message: str, raw: bytes) -> ApiError:
    """axum's 422 for a body that is JSON but not the expected shape."""
    line, col = _end_position(raw)
    return _text_error(
        422,
        f"Failed to deserialize the JSON body into the target type: {message} "
        f"at line {line} column {col}",
    )


def parse_json_body(raw: bytes, content_type: str) -> Any:
    """Decode a request body the way axum's ``Json`` extractor does, or raise its rejection."""
    mime = content_type.split(";")[0].strip().lower()
    if not (
        mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))
    ):
        raise _text_error(415, "Expected request with `Content-Type: application/json`")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _text_error(400, f"Failed to parse the request body as JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _text_error(
            400,
            f"Failed to parse the request body as JSON: {exc.msg} "
            f"at line {exc.lineno} column {exc.colno}",
        ) from None


def describe(value: Any) -> str:
    """serde's description of an unexpected JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, list):
        return "sequence"
    return "map"


class Field:
    """Typed access to the fields of one JSON object, raising axum-style 422s."""

    def __init__(self, body: Any, raw: bytes, struct: str, prefix: str = "") -> None:
        if not isinstance(body, dict):
            raise deserialize_error(
                f"{prefix}invalid type: {describe(body)}, expected struct {struct}", raw
            )
        self.body: dict[str, Any] = body
        self.raw = raw
        self.prefix = prefix

    def fail(self, name: str, message: str) -> ApiError:
        """A 422 about field ``name``."""
        return deserialize_error(f"{self.prefix}{name}: {message}", self.raw)

    def required(self, name: str) -> Any:
        """The value of a field that must be present."""
        if name not in self.body:
            return self._missing(name)
        return self.body[name]

    def _missing(self, name: str) -> Any:
        raise deserialize_error(f"{self.prefix}missing field `{name}`", self.raw)

    def _typed(self, name: str, value: Any, kinds: tuple[type, ...], expected: str) -> Any:
        # JSON true/false are not numbers, though Python's bool is an int
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self.fail(name, f"invalid type: {describe(value)}, expected {expected}")
        return value

    def string(self, name: str, *, required: bool = False, default: str | None = None) -> Any:
        """A string field (``None`` when absent or null and not required)."""
        if name not in self.body or (self.body[name] is None and not required):
            if required:
                return self._missing(name)
            return default
        return self._typed(name, self.body[name], (str,), "a string")

    def boolean(self, name: str, default: bool | None = None, *, nullable: bool = True) -> Any:
        """A boolean field; ``default`` when absent (or null, if ``nullable``)."""
        value = self.body.get(name)
        if name not in self.body or (value is None and nullable):
            return default
        return self._typed(name, value, (bool,), "a boolean")

    def integer(self, name: str, default: int | None = None, *, minimum: int = 0) -> Any:
        """A non-negative integer field (``minimum`` mirrors unsigned Rust types)."""
        value = self.body.get(name)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            raise self.fail(name, f"invalid type: {describe(value)}, expected u32")
        self._typed(name, value, (int,), "u32")
        if value < minimum:
            raise self.fail(name, f"invalid value: integer `{value}`, expected u32")
        return value

    def number(self, name: str, default: float | None = None) -> Any:
        """A numeric field."""
        value = self.body.get(name)
        if value is None:
            return default
        return float(self._typed(name, value, (int, float), "f32"))

    def strings(self, name: str, *, required: bool = True) -> Any:
        """A list of strings."""
        if name not in self.body:
            return self._missing(name) if required else None
        value = self.body[name]
        if not isinstance(value, list):
            raise self.fail(name, f"invalid type: {describe(value)}, expected a sequence")
        for item in value:
            if not isinstance(item, str):
                raise self.fail(name, f"invalid type: {describe(item)}, expected a string")
        return value

    def direction(self, name: str = "truncation_direction") -> str:
        """TEI's ``TruncationDirection``: ``left``/``Left``/``right``/``Right``, default right."""
        value = self.body.get(name)
        if value is None:
            return "right"
        if value in ("left", "Left"):
            return "left"
        if value in ("right", "Right"):
            return "right"
        if isinstance(value, str):
            raise self.fail(
                name, f"unknown variant `{value}`, expected one of `Left`, `left`, `Right`, `right`"
            )
        raise self.fail(name, f"invalid type: {describe(value)}, expected enum TruncationDirection")


@dataclass
class EmbedOptions:
    """Feature-extraction options from the root of the body."""

    normalize: bool = True
    truncate: bool = False
    direction: str = "right"
    prompt_name: str | None = None
    dimensions: int | None = None

    @classmethod
    def parse(cls, fields: Field, config: ServerConfig) -> EmbedOptions:
        """Read the options, defaulting ``truncate`` to the server's ``auto_truncate``."""
        truncate = fields.boolean("truncate", None)
        return cls(
            normalize=fields.boolean("normalize", True, nullable=False),
            truncate=config.auto_truncate if truncate is None else truncate,
            direction=fields.direction(),
            prompt_name=fields.string("prompt_name"),
            dimensions=fields.integer("dimensions"),
        )


def parse_embed_inputs(fields: Field) -> tuple[list[str], bool]:
    """``inputs`` as a list of texts, and whether it was a single string."""
    value = fields.required("inputs")
    if isinstance(value, str):
        return [value], True
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value), False
    raise fields.fail("inputs", "data did not match any variant of untagged enum EmbeddingInput")


def check_batch(size: int, config: ServerConfig, what: str = "inputs") -> None:
    """TEI's empty-batch (400) and batch-size (413) checks."""
    if size == 0:
        raise tei_error("Empty", f"`{what}` cannot be empty")
    if size > config.max_client_batch_size:
        raise tei_error(
            "Validation",
            f"batch size {size} > maximum allowed batch size {config.max_client_batch_size}",
        )


def _fit(spec: ModelSpec, text: str, truncate: bool, direction: str) -> str:
    """TEI's per-input length checks: characters first, then tokens; truncate if allowed."""
    limit = spec.max_input_length * MAX_CHAR_MULTIPLIER
    if len(text) > limit:
        if not truncate:
            raise tei_error(
                "Validation",
                f"Input validation error: `inputs` must have less than {limit} characters. "
                f"Given: {len(text)}",
            )
        text = text[:limit]
    n_tokens = len(spec.backend.tokenize(text))
    if n_tokens > spec.max_input_length:
        if not truncate:
            raise tei_error(
                "Validation",
                f"Input validation error: `inputs` must have less than {spec.max_input_length} "
                f"tokens. Given: {n_tokens}",
            )
        text = spec.backend.truncate_text(text, spec.max_input_length, direction)
    return str(text)


def _prompt_prefix(spec: ModelSpec, prompt_name: str | None) -> str:
    if prompt_name is None:
        return ""
    if not spec.prompts:
        raise tei_error(
            "Validation",
            f"Input validation error: `default-prompt-name` is set to `{prompt_name}` but no "
            "prompts were found in the Sentence Transformers configuration",
        )
    if prompt_name not in spec.prompts:
        keys = ", ".join(f'"{k}"' for k in spec.prompts)
        raise tei_error(
            "Validation",
            f"Input validation error: `default-prompt-name` is set to `{prompt_name}` but it was "
            f"not found in the Sentence Transformers prompts. Available prompts: [{keys}]",
        )
    return spec.prompts[prompt_name]


def prepare_embed_texts(spec: ModelSpec, texts: Sequence[str], options: EmbedOptions) -> list[str]:
    """The texts the model will embed: prompt prepended, length-checked, maybe truncated."""
    prefix = _prompt_prefix(spec, options.prompt_name)
    dim = int(spec.backend.dim)
    if options.dimensions is not None and not 0 < options.dimensions <= dim:
        raise tei_error(
            "Validation",
            f"Input validation error: `dimensions` must be between 1 and {dim}. "
            f"Given: {options.dimensions}",
        )
    prepared = []
    for text in texts:
        if text == "":
            raise tei_error("Empty", "Input validation error: `inputs` cannot be empty")
        prepared.append(_fit(spec, prefix + text, options.truncate, options.direction))
    return prepared


def _split_longest_first(n_a: int, n_b: int, limit: int) -> tuple[int, int]:
    """Token counts kept by tokenizers' ``LongestFirst`` truncation of a pair."""
    excess = n_a + n_b - limit
    if excess <= 0:
        return n_a, n_b
    cut = min(excess, abs(n_a - n_b))
    if n_a > n_b:
        n_a -= cut
    else:
        n_b -= cut
    excess -= cut
    if excess > 0:
        half, extra = divmod(excess, 2)
        n_a -= half + extra
        n_b -= half
    return max(n_a, 0), max(n_b, 0)


def prepare_pairs(
    spec: ModelSpec, pairs: Sequence[tuple[str, str]], truncate: bool, direction: str
) -> list[tuple[str, str]]:
    """Length-check (or truncate, longest first) each (query, text) pair of a rerank model."""
    out = []
    for query, text in pairs:
        if query == "" and text == "":
            raise tei_error("Empty", "Input validation error: `inputs` cannot be empty")
        n_q = len(spec.backend.tokenize(query))
        n_t = len(spec.backend.tokenize(text))
        if n_q + n_t > spec.max_input_length:
            if not truncate:
                raise tei_error(
                    "Validation",
                    f"Input validation error: `inputs` must have less than "
                    f"{spec.max_input_length} tokens. Given: {n_q + n_t}",
                )
            keep_q, keep_t = _split_longest_first(n_q, n_t, spec.max_input_length)
            query = spec.backend.truncate_text(query, keep_q, direction)
            text = spec.backend.truncate_text(text, keep_t, direction)
        out.append((query, text))
    return out
