"""Text generation as TGI does it: parameter validation, the token loop, details and SSE events.

Validation errors carry TGI's messages (``Input validation error: ...``, type ``validation``,
422). Stopping is applied here, not by the backend: ``max_new_tokens`` (finish ``length``), the
``stop`` sequences (``stop_sequence``, the stop text stays in TGI's ``generated_text``), and the
end of the backend's tokens (``eos_token``, reported as a special ``</s>`` token like TGI).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hfrag.server.backends import GenerationParams
from hfrag.server.config import ModelSpec, ServerConfig
from hfrag.server.validation import ApiError, Field, deserialize_error, tgi_error

__all__ = [
    "GenRequest",
    "GenResult",
    "Token",
    "generate",
    "parse_generate_request",
    "sse",
    "stop_list",
    "validate_generation",
]

DEFAULT_GENERATION_LENGTH = 1024
EOS_TEXT = "</s>"
EOS_ID = 2
VOCAB = 32000


@dataclass(frozen=True)
class Token:
    """One generated token, as TGI reports it."""

    id: int
    text: str
    logprob: float
    special: bool = False

    def as_json(self) -> dict[str, Any]:
        """TGI's token object."""
        return {"id": self.id, "text": self.text, "logprob": self.logprob, "special": self.special}


def make_token(text: str) -> Token:
    """A token with a stable id and log-probability derived from its text."""
    h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")
    token_id = 3 + h % (VOCAB - 3)
    return Token(token_id, text, -round(((token_id % 97) + 1) / 200, 4))


@dataclass
class GenRequest:
    """A validated generation request."""

    prompt: str
    params: GenerationParams
    input_length: int
    details: bool = False
    return_full_text: bool = False
    stream: bool = False


@dataclass
class GenResult:
    """The outcome of one generation."""

    tokens: list[Token] = field(default_factory=list)
    finish_reason: str = "length"
    input_length: int = 0
    seed: int | None = None
    stop_at: int | None = None

    @property
    def text(self) -> str:
        """The generated text (special tokens excluded, stop sequence included)."""
        return "".join(t.text for t in self.tokens if not t.special)

    @property
    def text_without_stop(self) -> str:
        """The generated text cut before the stop sequence (OpenAI's convention)."""
        text = self.text
        return text if self.stop_at is None else text[: self.stop_at]

    def details(self) -> dict[str, Any]:
        """TGI's non-streaming ``details``."""
        return {
            "finish_reason": self.finish_reason,
            "generated_tokens": len(self.tokens),
            "seed": self.seed,
            "prefill": [],
            "tokens": [t.as_json() for t in self.tokens],
        }

    def stream_details(self) -> dict[str, Any]:
        """TGI's ``details`` on the last stream event."""
        return {
            "finish_reason": self.finish_reason,
            "generated_tokens": len(self.tokens),
            "seed": self.seed,
            "input_length": self.input_length,
        }


def _validation(message: str) -> ApiError:
    return tgi_error("validation", f"Input validation error: {message}")


def stop_list(fields: Field, name: str) -> list[str]:
    """``stop`` as a list: absent or null is empty, one string is a list of one."""
    value = fields.body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise fields.fail(name, "invalid type: expected a sequence of strings")


def validate_generation(
    spec: ModelSpec,
    config: ServerConfig,
    prompt: str,
    params: GenerationParams,
    *,
    max_new_tokens: int | None,
    truncate: int | None,
    repetition_penalty: float | None = None,
    typical_p: float | None = None,
) -> GenRequest:
    """TGI's checks, in TGI's order; returns the request with its final prompt and lengths."""
    if params.temperature is not None and params.temperature <= 0:
        raise _validation("`temperature` must be strictly positive")
    if repetition_penalty is not None and repetition_penalty <= 0:
        raise _validation("`repetition_penalty` must be strictly positive")
    if params.top_p is not None and not 0.0 < params.top_p < 1.0:
        raise _validation("`top_p` must be > 0.0 and < 1.0")
    if typical_p is not None and not 0.0 < typical_p < 1.0:
        raise _validation("`typical_p` must be > 0.0 and < 1.0")
    if params.top_k is not None and params.top_k <= 0:
        raise _validation("`top_k` must be strictly positive")
    if max_new_tokens == 0:
        raise _validation("`max_new_tokens` must be strictly positive")
    if len(params.stop) > config.max_stop_sequences:
        raise _validation(
            f"`stop` supports up to {config.max_stop_sequences} stop sequences. "
            f"Given: {len(params.stop)}"
        )
    if prompt == "":
        raise _validation("`inputs` cannot be empty")
    max_input = spec.max_input_length
    if truncate is not None and (truncate == 0 or truncate > max_input):
        raise _validation(
            f"`truncate` must be strictly positive and less than {max_input}. Given: {truncate}"
        )
    n_tokens = len(spec.backend.tokenize(prompt))
    if truncate is not None and n_tokens > truncate:
        prompt = spec.backend.truncate_text(prompt, truncate, "left")
        n_tokens = truncate
    max_total = spec.total_tokens
    if max_new_tokens is None:
        max_new_tokens = max(1, min(max_total - n_tokens, DEFAULT_GENERATION_LENGTH))
    if n_tokens + max_new_tokens > max_total:
        raise _validation(
            f"`inputs` tokens + `max_new_tokens` must be <= {max_total}. Given: {n_tokens} "
            f"`inputs` tokens and {max_new_tokens} `max_new_tokens`"
        )
    if n_tokens > max_input:
        raise _validation(f"`inputs` must have less than {max_input} tokens. Given: {n_tokens}")
    params.max_new_tokens = max_new_tokens
    return GenRequest(prompt=prompt, params=params, input_length=n_tokens)


def parse_generate_request(
    body: Any, raw: bytes, spec: ModelSpec, config: ServerConfig
) -> GenRequest:
    """Parse and validate a TGI ``GenerateRequest`` (``inputs``, ``parameters``, ``stream``)."""
    fields = Field(body, raw, "GenerateRequest")
    prompt = fields.string("inputs", required=True)
    stream = bool(fields.boolean("stream", False))
    parameters = fields.body.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise deserialize_error("parameters: invalid type: expected struct GenerateParameters", raw)
    p = Field(parameters, raw, "GenerateParameters", prefix="parameters.")
    params = GenerationParams(
        stop=stop_list(p, "stop"),
        temperature=p.number("temperature"),
        top_p=p.number("top_p"),
        # TGI's top_k is an i32: a negative value parses, then fails the range check below.
        top_k=p.integer("top_k", minimum=-(2**31)),
        seed=p.integer("seed"),
        do_sample=bool(p.boolean("do_sample", False)),
    )
    request = validate_generation(
        spec,
        config,
        prompt,
        params,
        max_new_tokens=p.integer("max_new_tokens"),
        truncate=p.integer("truncate"),
        repetition_penalty=p.number("repetition_penalty"),
        typical_p=p.number("typical_p"),
    )
    request.details = bool(p.boolean("details", False))
    request.return_full_text = bool(p.boolean("return_full_text", False))
    request.stream = stream
    return request


def generate(spec: ModelSpec, request: GenRequest) -> GenResult:
    """Run the backend's token stream under TGI's stopping rules."""
    params = request.params
    result = GenResult(input_length=request.input_length, seed=params.seed)
    tokens: Iterable[str] = spec.backend.generate_tokens(request.prompt, params)
    text = ""
    for piece in tokens:
        if len(result.tokens) >= params.max_new_tokens:
            result.finish_reason = "length"
            return result
        result.tokens.append(make_token(piece))
        text += piece
        hits = [text.find(s) for s in params.stop if s and s in text]
        if hits:
            result.finish_reason = "stop_sequence"
            result.stop_at = min(hits)
            return result
    if len(result.tokens) < params.max_new_tokens:
        result.tokens.append(Token(EOS_ID, EOS_TEXT, -0.01, special=True))
        result.finish_reason = "eos_token"
    else:
        result.finish_reason = "length"
    return result


def sse(data: Any, *, space: bool = False) -> bytes:
    """One SSE event: ``data:{json}`` (TGI/axum) or ``data: {json}`` (OpenAI), blank line."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data:{' ' if space else ''}{payload}\n\n".encode()


def stream_events(result: GenResult, full_text_prefix: str = "") -> list[dict[str, Any]]:
    """TGI ``/generate_stream`` events: one per token, the last with text and details."""
    events = []
    last = len(result.tokens) - 1
    for i, token in enumerate(result.tokens):
        done = i == last
        events.append(
            {
                "index": i + 1,
                "token": token.as_json(),
                "top_tokens": None,
                "generated_text": full_text_prefix + result.text if done else None,
                "details": result.stream_details() if done else None,
            }
        )
    return events
