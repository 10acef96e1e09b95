"""TGI's text-generation wire form: the body, the answer, the stream, and refused parameters.

``POST /generate`` (TGI; the router's hf-inference and ``POST /`` wrap the answer in a list)
takes ``{"inputs", "parameters", "stream"?}`` and answers ``{"generated_text", "details"?}``;
``/generate_stream`` sends one event per token, the last carrying ``generated_text`` and
``details``, and no ``[DONE]``. A server running the transformers pipeline instead of TGI
refuses parameters its model does not take (:func:`unused_parameters`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from hfrag.errors import InferenceError, MalformedResponseError
from hfrag.tasks.chat_wire import normalize_finish
from hfrag.tasks.generation import (
    Chunk,
    Finish,
    GenerationOptions,
    GenerationOutput,
    StopTrimmer,
    TextDelta,
    Usage,
    stream_cut,
)
from hfrag.tasks.logprobs import LogprobsDelta, tgi_logprobs, tgi_token
from hfrag.tasks.reasoning import ReasoningReader, split_think
from hfrag.transport.urls import redact_url

__all__ = ["TGIStreamDecoder", "decode_tgi", "tgi_body", "unused_parameters"]

_UNUSED_KWARGS = re.compile(r"`model_kwargs` are not used by the model: (\[[^\]]*\])")


def tgi_body(
    prompt: str, options: GenerationOptions, stream: bool, drop: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A text-generation body: ``{"inputs", "parameters", "stream"?}``, without ``drop``."""
    parameters = {k: v for k, v in options.tgi_parameters().items() if k not in drop}
    body: dict[str, Any] = {"inputs": prompt, "parameters": parameters}
    if stream:
        body["stream"] = True
    return body


def unused_parameters(error: InferenceError) -> frozenset[str]:
    """The parameters a transformers pipeline said its model does not use (400
    ``The following `model_kwargs` are not used by the model: [...]``); empty for other errors."""
    found = _UNUSED_KWARGS.search(error.message) if error.status == 400 else None
    if found is None:
        return frozenset()
    try:
        names = ast.literal_eval(found.group(1))
    except (ValueError, SyntaxError):
        return frozenset()
    return (
        frozenset(n for n in names if isinstance(n, str))
        if isinstance(names, list)
        else frozenset()
    )


def _tgi_usage(details: Any, prompt_key: str = "input_length") -> Usage | None:
    if not isinstance(details, Mapping):
        return None
    prompt = details.get(prompt_key)
    generated = details.get("generated_tokens")
    prompt = prompt if isinstance(prompt, int) and not isinstance(prompt, bool) else None
    generated = (
        generated if isinstance(generated, int) and not isinstance(generated, bool) else None
    )
    total = prompt + generated if prompt is not None and generated is not None else None
    return Usage(prompt, generated, total)


def decode_tgi(payload: Any, url: str, prompt: str, options: GenerationOptions) -> GenerationOutput:
    """A ``/generate`` answer (``{"generated_text"}``, list-wrapped from ``POST /``)."""
    item = payload[0] if isinstance(payload, list) and len(payload) == 1 else payload
    text = item.get("generated_text") if isinstance(item, Mapping) else None
    if not isinstance(text, str):
        raise MalformedResponseError(
            f"text-generation answer has no generated_text: {str(payload)[:200]!r}",
            status=200,
            url=redact_url(url),
        )
    prefix = ""
    if options.return_full_text and text.startswith(prompt):
        prefix, text = prompt, text[len(prompt) :]
    details = item.get("details")
    raw_reason = details.get("finish_reason") if isinstance(details, Mapping) else None
    reasoning, text = split_think(text, options.split_reasoning)
    return GenerationOutput(
        text=prefix + StopTrimmer(options.stop).trim(text),
        finish_reason=normalize_finish(raw_reason) or "stop",
        usage=_tgi_usage(details),
        raw_finish_reason=None if raw_reason is None else str(raw_reason),
        raw=payload,
        reasoning=reasoning,
        logprobs=tgi_logprobs(details) if options.logprobs or options.top_logprobs else None,
    )


class TGIStreamDecoder:
    """``/generate_stream`` events to chunks; the last event carries ``generated_text``."""

    def __init__(
        self,
        url: str,
        stop: tuple[str, ...],
        prefix: str = "",
        options: GenerationOptions | None = None,
    ) -> None:
        self._url = url
        self._trim = StopTrimmer(stop)
        self._prefix = prefix
        self._finished = False
        self._reasoning = ReasoningReader(options is None or options.split_reasoning)
        self._logprobs = options is not None and bool(options.logprobs or options.top_logprobs)

    def feed(self, payload: Any) -> list[Chunk]:
        if not isinstance(payload, Mapping) or not isinstance(payload.get("token"), Mapping):
            raise MalformedResponseError(
                f"text-generation stream event has no token: {str(payload)[:200]!r}",
                status=200,
                url=redact_url(self._url),
            )
        out: list[Chunk] = []
        if self._prefix:
            out.append(TextDelta(self._prefix))
            self._prefix = ""
        if self._finished:
            return out
        token = payload["token"]
        if not token.get("special") and isinstance(token.get("text"), str):
            thoughts, answer = self._reasoning.feed({}, token["text"])
            out.extend(thoughts)
            text = self._trim.feed(answer)
            if text:
                out.append(TextDelta(text))
            logprob = tgi_token(token, payload.get("top_tokens")) if self._logprobs else None
            if logprob is not None:
                out.append(LogprobsDelta((logprob,)))
        if payload.get("generated_text") is not None or payload.get("details") is not None:
            thoughts, answer = self._reasoning.flush()
            out.extend(thoughts)
            rest = self._trim.feed(answer) + self._trim.flush()
            if rest:
                out.append(TextDelta(rest))
            details = payload.get("details")
            raw = details.get("finish_reason") if isinstance(details, Mapping) else None
            out.append(Finish(normalize_finish(raw) or "stop", None if raw is None else str(raw)))
            usage = _tgi_usage(details)
            if usage is not None:
                out.append(usage)
            self._finished = True
        return out

    @property
    def complete(self) -> bool:
        return self._finished

    def finish(self, done: bool = False) -> list[Chunk]:
        if not self._finished:
            raise stream_cut(self._url, "no event carried generated_text")
        return []
