"""Text generation as TGI does it: parameter validation, the token loop, details and SSE events.

Validation errors carry TGI's messages (``Input validation error: ...``, type ``validation``,
422). Stopping is applied here, not by the backend: ``max_new_tokens`` (finish ``length``), the
``stop`` sequences (``stop_sequence``, the stop text stays in TGI's ``generated_text``), and the
end of the backend's tokens (``eos_token``, reported as a special ``</s>`` token like TGI).

``generate_steps`` applies them one token at a time, so streams send each token as it is made
and non-streamed answers (``generate``) are the same steps collected; ``StopHoldback`` keeps the
start of a possible stop sequence out of OpenAI-form deltas until the next token decides it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hfrag.server.backends import GenerationParams
from hfrag.server.config import ModelSpec, ServerConfig
from hfrag.server.validation import ApiError, Field, deserialize_error, tgi_error

__all__ = [
    "GenRequest",
    "GenResult",
    "Step",
    "StopHoldback",
    "Token",
    "generate",
    "generate_steps",
    "parse_generate_request",
    "sse",
    "stop_list",
    "stream_event",
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
    finished: bool = False

    def add(self, step: Step) -> None:
        """Take the next step of ``generate_steps``."""
        self.tokens.append(step.token)
        if step.finish_reason is not None:
            self.finish_reason = step.finish_reason
            self.stop_at = step.stop_at
            self.finished = True

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


@dataclass(frozen=True)
class Step:
    """One generated token; the last step of an answer says why generation ended.

    Attributes:
        token: the token (the special ``</s>`` when the backend ended by itself).
        finish_reason: None until the last step, then ``length``, ``stop_sequence`` or
            ``eos_token``.
        stop_at: on a ``stop_sequence`` step, where the stop text begins in the generated text.
    """

    token: Token
    finish_reason: str | None = None
    stop_at: int | None = None


def generate_steps(spec: ModelSpec, request: GenRequest) -> Iterator[Step]:
    """The backend's tokens under TGI's stopping rules, one step per token as it is made.

    The last step is known when its token arrives (the ``max_new_tokens``-th token, the token
    that completes a stop sequence, or the ``</s>`` added when the backend ends), so a stream
    never has to wait for the token after it. A backend generator that returns ``"length"``
    (llama.cpp's own token limit, reached while pieces held several tokens) ends with an
    empty ``length`` step instead of ``</s>``. The backend's iterator is closed on return.
    """
    params = request.params
    pieces = iter(spec.backend.generate_tokens(request.prompt, params))
    text = ""
    count = 0
    ended: Any = None  # what the backend's generator returned: why it ended, if it says
    try:
        while True:
            try:
                piece = next(pieces)
            except StopIteration as stop:
                ended = stop.value
                break
            count += 1
            text += piece
            token = make_token(piece)
            hits = [text.find(s) for s in params.stop if s and s in text]
            if hits:
                yield Step(token, "stop_sequence", min(hits))
                return
            if count >= params.max_new_tokens:
                yield Step(token, "length")
                return
            yield Step(token)
        if ended == "length":  # the backend counts tokens where pieces may hold several
            yield Step(make_token(""), "length")
            return
        yield Step(Token(EOS_ID, EOS_TEXT, -0.01, special=True), "eos_token")
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def generate(spec: ModelSpec, request: GenRequest) -> GenResult:
    """The whole answer: every step of ``generate_steps``."""
    result = GenResult(input_length=request.input_length, seed=request.params.seed)
    for step in generate_steps(spec, request):
        result.add(step)
    return result


class StopHoldback:
    """The text of an answer that is safe to send while it is still being generated.

    OpenAI-form answers end before the stop sequence, and a stop sequence may arrive split
    across tokens: text that could be the start of one is held back until the next token
    shows whether it is (then it is never sent) or not (then it goes out with that token).
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = [s for s in stop if s]
        self.sent = 0

    def _held(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins a stop sequence."""
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:n]):
                    longest = n
                    break
        return longest

    def feed(self, result: GenResult) -> str:
        """The text to send now that ``result`` has its latest step ("" for none yet)."""
        text = result.text
        if result.stop_at is not None:
            safe = text[: result.stop_at]
        elif result.finished:
            safe = text
        else:
            safe = text[: len(text) - self._held(text)]
        piece = safe[self.sent :]
        self.sent = max(self.sent, len(safe))
        return piece


def sse(data: Any, *, space: bool = False) -> bytes:
    """One SSE event: ``data:{json}`` (TGI/axum) or ``data: {json}`` (OpenAI), blank line."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data:{' ' if space else ''}{payload}\n\n".encode()


def stream_event(result: GenResult, full_text_prefix: str = "") -> dict[str, Any]:
    """The TGI ``/generate_stream`` event of ``result``'s latest token; the answer's last
    event also carries ``generated_text`` and ``details``."""
    done = result.finished
    return {
        "index": len(result.tokens),
        "token": result.tokens[-1].as_json(),
        "top_tokens": None,
        "generated_text": full_text_prefix + result.text if done else None,
        "details": result.stream_details() if done else None,
    }
