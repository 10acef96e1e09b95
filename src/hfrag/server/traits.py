"""What a model id asks the hashing generator to be: a reasoning model, one that lacks a feature.

The chat and TGI routes call two hooks, so every client path for these models is tested over
HTTP without real weights (a real backend is never wrapped: with ``--models real`` the model
decides):

- :func:`model_for` wraps the hashing generator of a model whose id (its last path part) asks
  for reasoning: the model then writes ``<think>``, a fixed reasoning text
  (:data:`REASONING_TEXT`, one token per word), ``</think>``, then its usual answer. With
  ``tools`` or ``response_format`` it answers by its rule without reasoning (a real server's
  parser takes the reasoning out before reading tool calls; this double does not model that).

  ================================  =======================================================
  id contains                       the chat route answers as
  ================================  =======================================================
  ``think``                         TGI serving Qwen3 / DeepSeek-R1: the tags stay inline in
                                    ``content`` (and in ``/generate`` text)
  ``reasoning-content``             vLLM < 0.11, SGLang, DeepSeek: ``reasoning_content``
                                    beside ``content``, in messages and stream deltas
  ``reasoning`` (otherwise)         vLLM >= 0.11 and the router's schema: ``reasoning``
  ================================  =======================================================

- :func:`refusal` answers 400, in OpenAI's error shape, a request the model cannot take: an
  id containing ``no-response-format`` refuses ``response_format`` (``param:
  "response_format"``), ``no-tools`` refuses ``tools``, ``text-only`` refuses image parts, and
  ``wants-reasoning`` refuses an assistant turn with tool calls but no ``reasoning_content``,
  in DeepSeek's thinking-mode words.

:func:`chat_logprobs` builds OpenAI's ``logprobs`` object of a chat choice when the request
asks (``logprobs: true``, ``top_logprobs: n``): each token's ``logprob`` is the hashing
generator's (``generation.make_token``); its ``top_logprobs`` are the token itself followed by
``n - 1`` alternatives ``" <alt k>"`` at ``logprob - k``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from hfrag.server.backends import GenerationParams
from hfrag.server.config import ModelSpec
from hfrag.server.validation import ApiError

__all__ = [
    "CLOSE_TAG",
    "OPEN_TAG",
    "REASONING_TEXT",
    "ReasoningForm",
    "StreamDeltas",
    "ThinkingGenerator",
    "answer_fields",
    "answer_tokens",
    "chat_logprobs",
    "logprobs_asked",
    "model_for",
    "reasoning_form",
    "reasoning_usage",
    "refusal",
    "split_answer",
]

ReasoningForm = Literal["think", "reasoning_content", "reasoning"]
OPEN_TAG, CLOSE_TAG = "<think>", "</think>"
#: What every reasoning model of the hashing backend thinks before it answers.
REASONING_TEXT = "The answer is the context sentence that shares the most words with the question."
_PIECES = re.compile(r"\s*\S+")


def reasoning_form(model: str) -> ReasoningForm | None:
    """The reasoning form a model id asks for (see the module docstring), or None."""
    name = model.rsplit("/", 1)[-1].lower()
    if "think" in name:
        return "think"
    if "reasoning-content" in name:
        return "reasoning_content"
    if "reasoning" in name:
        return "reasoning"
    return None


class ThinkingGenerator:
    """A hashing generator that reasons first: ``<think>``, the reasoning, ``</think>``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate_tokens(self, prompt: str, params: GenerationParams) -> Iterator[str]:
        if params.constraint is not None:  # tools or response_format: the rule's answer only
            yield from self.inner.generate_tokens(prompt, params)
            return
        yield OPEN_TAG
        yield from _PIECES.findall(REASONING_TEXT)
        yield CLOSE_TAG
        yield from self.inner.generate_tokens(prompt, params)


def model_for(spec: ModelSpec) -> ModelSpec:
    """``spec`` with its generator reasoning first when its id asks for it (hashing only)."""
    if reasoning_form(spec.name) is None:
        return spec
    from hfrag.server.hashing import HashingBackend  # only ever loaded for a hashing model
    from hfrag.server.tools import RuleTools

    backend = spec.backend.inner if isinstance(spec.backend, RuleTools) else spec.backend
    if not isinstance(backend, HashingBackend):
        return spec
    return replace(spec, backend=ThinkingGenerator(spec.backend))


def split_answer(text: str) -> tuple[str | None, str]:
    """``(reasoning, answer)`` of generated text, as a server-side reasoning parser splits it
    (vLLM's ``--reasoning-parser``); ``(None, text)`` when it does not open with ``<think>``."""
    if not text.startswith(OPEN_TAG):
        return None, text
    end = text.find(CLOSE_TAG)
    if end < 0:
        return text[len(OPEN_TAG) :], ""
    return text[len(OPEN_TAG) : end], text[end + len(CLOSE_TAG) :]


def _openai_error(message: str, param: str) -> ApiError:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return ApiError(400, {"error": error})


def _has_image(messages: Sequence[Any]) -> bool:
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list) and any(
            isinstance(p, Mapping) and p.get("type") == "image_url" for p in content
        ):
            return True
    return False


def refusal(model: str, body: Mapping[str, Any]) -> ApiError | None:
    """The 400 a model without a feature answers this chat request with, or None."""
    name = model.rsplit("/", 1)[-1].lower()
    fmt = body.get("response_format")
    if "no-response-format" in name and isinstance(fmt, Mapping) and fmt.get("type") != "text":
        return _openai_error(
            f"response_format of type {fmt.get('type')!r} is not supported by model {model}",
            "response_format",
        )
    if "no-tools" in name and body.get("tools"):
        return _openai_error(f"tools are not supported by model {model}", "tools")
    if "wants-reasoning" in name and any(
        isinstance(m, Mapping) and m.get("tool_calls") and not m.get("reasoning_content")
        for m in body.get("messages") or []
    ):
        return _openai_error(
            'The "reasoning_content" in the thinking mode must be passed back to the API.',
            "messages",
        )
    if "text-only" in name and _has_image(body.get("messages") or []):
        return _openai_error(
            f"model {model} is not a multimodal model: it does not take image inputs",
            "messages",
        )
    return None


def _token_logprob(text: str, logprob: float, top: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"token": text, "logprob": logprob, "bytes": list(text.encode())}
    alternatives = [{"token": text, "logprob": logprob, "bytes": list(text.encode())}]
    for k in range(1, top):
        alt = f" <alt {k}>"
        alternatives.append({"token": alt, "logprob": logprob - k, "bytes": list(alt.encode())})
    entry["top_logprobs"] = alternatives[:top]
    return entry


def logprobs_asked(body: Mapping[str, Any]) -> int | None:
    """``top_logprobs`` (0 when only ``logprobs: true``) if the request asks, else None."""
    if body.get("logprobs") is not True:
        return None
    top = body.get("top_logprobs")
    return top if isinstance(top, int) and not isinstance(top, bool) and top > 0 else 0


def chat_logprobs(tokens: Iterable[Any], top: int) -> dict[str, Any]:
    """OpenAI's ``{"content": [...]}`` for generation tokens (``.text``, ``.logprob``)."""
    return {"content": [_token_logprob(t.text, t.logprob, top) for t in tokens], "refusal": None}


def _field(form: ReasoningForm | None) -> str | None:
    return form if form in ("reasoning_content", "reasoning") else None


def answer_fields(form: ReasoningForm | None, text: str) -> dict[str, Any]:
    """A whole answer's message fields: ``content``, and the reasoning field of ``form``."""
    field = _field(form)
    if field is None:
        return {"content": text}
    reasoning, answer = split_answer(text)
    return {"content": answer, field: reasoning} if reasoning is not None else {"content": text}


def answer_tokens(form: ReasoningForm | None, tokens: Iterable[Any]) -> list[Any]:
    """The tokens of ``content`` (a field form's reasoning and tags are not content)."""
    field, inside, out = _field(form), False, []
    for token in tokens:
        if token.special:
            continue
        if field is not None and token.text in (OPEN_TAG, CLOSE_TAG):
            inside = token.text == OPEN_TAG
            continue
        if field is None or not inside:
            out.append(token)
    return out


class StreamDeltas:
    """Chat stream deltas of one answer: a field form's reasoning pieces go in its field,
    answer pieces in ``content`` with the ``logprobs`` of their tokens when asked.

    A piece is classed by the token it was released with (with stop sequences, text held
    back across the end of the reasoning is classed with the later token).
    """

    def __init__(self, form: ReasoningForm | None, top: int | None) -> None:
        self.field = _field(form)
        self.top = top
        self.inside = False
        self.pending: list[Any] = []

    def step(self, token: Any, piece: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """``(delta, logprobs or None)`` for a token and the text released with it, or None."""
        tag = self.field is not None and token.text in (OPEN_TAG, CLOSE_TAG)
        if tag:
            self.inside = token.text == OPEN_TAG
            piece = piece.replace(OPEN_TAG, "").replace(CLOSE_TAG, "")
        elif not token.special and not self.inside and self.top is not None:
            self.pending.append(token)
        if not piece:
            return None
        if self.field is not None and self.inside:
            return {"role": "assistant", self.field: piece}, None
        logprobs = None
        if self.top is not None:
            logprobs, self.pending = chat_logprobs(self.pending, self.top), []
        return {"role": "assistant", "content": piece}, logprobs


def reasoning_usage(form: ReasoningForm | None, tokens: Iterable[Any]) -> dict[str, int] | None:
    """``completion_tokens_details`` of a field form's answer: ``{"reasoning_tokens": n}``, the
    tokens from ``<think>`` to ``</think>`` (OpenAI's usage object; TGI's inline form has none)."""
    if _field(form) is None:
        return None
    inside, count = False, 0
    for token in tokens:
        if token.text == OPEN_TAG:
            inside = True
        if inside:
            count += 1
        if token.text == CLOSE_TAG:
            inside = False
    return {"reasoning_tokens": count} if count else None
