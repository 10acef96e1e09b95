"""Token log-probabilities from chat completions and TGI text generation, in one shape.

Chat completions (OpenAI, TGI, vLLM; huggingface_hub ``ChatCompletionOutputLogprobs``) answer
``logprobs: true`` / ``top_logprobs: n`` with ``choices[0].logprobs = {"content": [{"token",
"logprob", "bytes"?, "top_logprobs": [{"token", "logprob", "bytes"?}]}]}``, in the message's
choice and in each stream chunk's choice. TGI ``/generate`` answers ``details: true`` with
``details.tokens = [{"id", "text", "logprob", "special"}]`` (and ``details.top_tokens``, one list
per token, when ``top_n_tokens`` is set); each ``/generate_stream`` event has ``token`` and
``top_tokens``. Both become :class:`TokenLogprob` values; special tokens (TGI's ``</s>``) are
left out, as they are of the text. :meth:`TokenLogprob.as_openai` gives the OpenAI shape back,
which is what LangChain's ``response_metadata["logprobs"]["content"]`` holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LogprobsDelta", "TokenLogprob", "chat_logprobs", "tgi_logprobs", "tgi_token"]


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, log-probability (None if the server sent none or a
    non-finite one), UTF-8 bytes, and the most likely alternatives at its position."""

    token: str
    logprob: float | None
    bytes: tuple[int, ...] = ()
    top: tuple[TokenLogprob, ...] = ()

    def as_openai(self, *, top: bool = True) -> dict[str, Any]:
        """The OpenAI form: ``{"token", "logprob", "bytes", "top_logprobs"}``."""
        out: dict[str, Any] = {"token": self.token, "logprob": self.logprob}
        out["bytes"] = list(self.bytes)
        if top:
            out["top_logprobs"] = [t.as_openai(top=False) for t in self.top]
        return out


@dataclass(frozen=True)
class LogprobsDelta:
    """Log-probabilities of the tokens a stream chunk brought."""

    tokens: tuple[TokenLogprob, ...]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _bytes(item: Mapping[str, Any], text: str) -> tuple[int, ...]:
    raw = item.get("bytes")
    if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        return tuple(raw)
    return tuple(text.encode("utf-8"))


def _openai_token(item: Any, nested: bool = True) -> TokenLogprob | None:
    if not isinstance(item, Mapping) or not isinstance(item.get("token"), str):
        return None
    text = item["token"]
    top: tuple[TokenLogprob, ...] = ()
    if nested and isinstance(item.get("top_logprobs"), list):
        top = tuple(t for t in (_openai_token(x, False) for x in item["top_logprobs"]) if t)
    return TokenLogprob(text, _number(item.get("logprob")), _bytes(item, text), top)


def chat_logprobs(choice: Mapping[str, Any]) -> tuple[TokenLogprob, ...] | None:
    """The content tokens of a chat choice's ``logprobs`` (None when it has none)."""
    value = choice.get("logprobs")
    if not isinstance(value, Mapping):
        return None
    content = value.get("content")
    if not isinstance(content, list):
        return None
    return tuple(t for t in (_openai_token(item) for item in content) if t is not None)


def tgi_token(token: Any, top: Any = None) -> TokenLogprob | None:
    """One TGI token (``{"id", "text", "logprob", "special"}``) with its top alternatives;
    None for a special token or a malformed one."""
    if not isinstance(token, Mapping) or token.get("special") is True:
        return None
    text = token.get("text")
    if not isinstance(text, str):
        return None
    alternatives: tuple[TokenLogprob, ...] = ()
    if isinstance(top, list):
        found = (tgi_token(t) for t in top)
        alternatives = tuple(t for t in found if t is not None)
    return TokenLogprob(
        text, _number(token.get("logprob")), tuple(text.encode("utf-8")), alternatives
    )


def tgi_logprobs(details: Any) -> tuple[TokenLogprob, ...] | None:
    """The tokens of a TGI ``details`` object (None when it lists none)."""
    if not isinstance(details, Mapping) or not isinstance(details.get("tokens"), list):
        return None
    tops = details.get("top_tokens")
    tops = tops if isinstance(tops, list) else []
    out = []
    for i, token in enumerate(details["tokens"]):
        item = tgi_token(token, tops[i] if i < len(tops) else None)
        if item is not None:
            out.append(item)
    return tuple(out)
