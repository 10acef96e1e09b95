"""Generation options: validated once, mapped to each wire form (see :class:`GenerationOptions`).

Re-exported by :mod:`hfrag.tasks.generation`; the router's ``provider`` rule lives here too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from hfrag.errors import ConfigurationError

__all__ = ["REASONING_EFFORTS", "RESERVED_KEYS", "GenerationOptions", "check_provider"]

_PROVIDER = re.compile(r"[\w.\-]+")

# -- options ----------------------------------------------------------------------------------

#: ``reasoning_effort`` values (OpenAI's chat completions, also vLLM's and SGLang's).
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")

#: Body keys the clients own; ``model_kwargs`` may not override them.
RESERVED_KEYS = frozenset({"inputs", "messages", "stream", "stream_options", "parameters"})


def _number(
    name: str,
    value: Any,
    low: float | None,
    high: float | None,
    *,
    open_low: bool,
    open_high: bool = False,
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if open_low else value < low):
        raise ConfigurationError(f"{name} must be {'>' if open_low else '>='} {low}, got {value}")
    if high is not None and (value >= high if open_high else value > high):
        raise ConfigurationError(f"{name} must be {'<' if open_high else '<='} {high}, got {value}")


def _integer(name: str, value: Any, low: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ConfigurationError(f"{name} must be >= {low}, got {value}")


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding options, validated here and mapped to each wire form (None: not sent).

    | option | text-generation ``parameters`` | chat completions body |
    |---|---|---|
    | ``max_new_tokens`` | ``max_new_tokens`` | ``max_tokens`` |
    | ``temperature`` | ``temperature`` (0 means greedy: sent as ``do_sample: false``) | same |
    | ``top_p`` | ``top_p`` (1.0 means off: not sent) | ``top_p`` |
    | ``top_k``, ``repetition_penalty``, ``typical_p`` | same | same (vLLM/llama.cpp extension) |
    | ``frequency_penalty`` | same | same |
    | ``presence_penalty`` | not supported: error at call | same |
    | ``stop`` | ``stop`` (hfrag trims it from the text) | ``stop`` |
    | ``seed``, ``do_sample``, ``truncate``, ``watermark`` | same | ``seed``; the others are
      text-generation only (``do_sample`` ignored, ``truncate``/``watermark``: error at call) |
    | ``return_full_text`` (default False) | same | the prompt is prepended client-side |
    | ``logprobs``, ``top_logprobs`` (0-20) | ``details`` (always sent), ``top_n_tokens`` |
      ``logprobs``, ``top_logprobs`` |
    | ``reasoning_effort`` | error at call | ``reasoning_effort`` |
    | ``enable_thinking`` | error at call | ``chat_template_kwargs: {"enable_thinking"}`` |
    | ``split_reasoning`` (default True) | a leading ``<think>...</think>`` becomes
      ``reasoning`` (client-side) | same |
    | ``send_reasoning`` (default False) | - | assistant turns keep ``reasoning_content``
      / ``reasoning`` when sent back |
    | ``model_kwargs`` | merged into ``parameters`` | merged into the body
      (``chat_template_kwargs`` merged key by key) |

    ``reasoning_effort`` is one of ``REASONING_EFFORTS`` (OpenAI's values, which vLLM, SGLang
    and the router's providers take); ``top_logprobs`` implies ``logprobs``.
    """

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    do_sample: bool | None = None
    return_full_text: bool = False
    truncate: int | None = None
    typical_p: float | None = None
    watermark: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning_effort: str | None = None
    enable_thinking: bool | None = None
    split_reasoning: bool = True
    send_reasoning: bool = False
    model_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        stop: Any = self.stop
        if stop is None:
            stop = ()
        elif isinstance(stop, str):
            stop = (stop,)
        if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
            raise ConfigurationError(f"stop must be a string or a list of strings, got {stop!r}")
        if any(not s for s in stop):
            raise ConfigurationError("stop sequences must not be empty strings")
        object.__setattr__(self, "stop", tuple(stop))
        kwargs: Any = self.model_kwargs
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            raise ConfigurationError(f"model_kwargs must be a dict with str keys, got {kwargs!r}")
        clash = sorted(RESERVED_KEYS & set(kwargs))
        if clash:
            raise ConfigurationError(
                f"model_kwargs may not set {clash}: hfrag builds those keys itself"
            )
        template = kwargs.get("chat_template_kwargs")
        if template is not None and not isinstance(template, Mapping):
            raise ConfigurationError(
                f"model_kwargs['chat_template_kwargs'] must be a dict, got {template!r}"
            )
        object.__setattr__(self, "model_kwargs", MappingProxyType(dict(kwargs)))
        _integer("max_new_tokens", self.max_new_tokens, 1)
        _number("temperature", self.temperature, 0.0, None, open_low=False)
        _number("top_p", self.top_p, 0.0, 1.0, open_low=True)
        _integer("top_k", self.top_k, 1)
        _number("repetition_penalty", self.repetition_penalty, 0.0, None, open_low=True)
        _number("frequency_penalty", self.frequency_penalty, -2.0, 2.0, open_low=False)
        _number("presence_penalty", self.presence_penalty, -2.0, 2.0, open_low=False)
        _integer("seed", self.seed, 0)
        _integer("truncate", self.truncate, 1)
        _number("typical_p", self.typical_p, 0.0, 1.0, open_low=True, open_high=True)
        _integer("top_logprobs", self.top_logprobs, 0)
        if self.top_logprobs is not None and self.top_logprobs > 20:
            raise ConfigurationError(f"top_logprobs must be <= 20, got {self.top_logprobs}")
        if self.top_logprobs is not None and self.logprobs is False:
            raise ConfigurationError("top_logprobs needs logprobs: leave logprobs unset or True")
        effort = self.reasoning_effort
        if effort is not None and effort not in REASONING_EFFORTS:
            raise ConfigurationError(
                f"reasoning_effort must be one of {list(REASONING_EFFORTS)}, got {effort!r}"
            )
        flags = ("do_sample", "return_full_text", "watermark", "logprobs", "enable_thinking")
        for name in (*flags, "split_reasoning", "send_reasoning"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ConfigurationError(f"{name} must be true or false, got {value!r}")

    def __deepcopy__(self, memo: dict[int, Any]) -> GenerationOptions:
        return self  # immutable (its model_kwargs is a read-only view)

    def __reduce__(self) -> tuple[Any, ...]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["model_kwargs"] = dict(self.model_kwargs)
        return (_rebuild_options, (values,))

    def merged(self, stop: Sequence[str] | str | None = None, **changes: Any) -> GenerationOptions:
        """These options with per-call ``stop`` sequences added and other fields replaced."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigurationError(f"unknown generation options: {sorted(unknown)}")
        extra = (stop,) if isinstance(stop, str) else tuple(stop or ())
        if extra:
            changes["stop"] = tuple(dict.fromkeys((*changes.get("stop", self.stop), *extra)))
        return replace(self, **changes) if changes else self

    def tgi_parameters(self) -> dict[str, Any]:
        """The text-generation ``parameters`` object (``details`` asked for finish reasons)."""
        if self.presence_penalty is not None:
            raise ConfigurationError(
                "presence_penalty is a chat-completions option; text-generation (TGI /generate) "
                "has no such parameter: use frequency_penalty, or task='chat'"
            )
        for name in ("reasoning_effort", "enable_thinking"):
            if getattr(self, name) is not None:
                raise ConfigurationError(
                    f"{name} is a chat-completions option (it reaches the chat template); "
                    "text-generation (TGI /generate) takes a prompt as it is: use task='chat'"
                )
        greedy = self.temperature == 0
        params = {
            "max_new_tokens": self.max_new_tokens,
            "temperature": None if greedy else self.temperature,
            "top_p": None if self.top_p == 1.0 else self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "frequency_penalty": self.frequency_penalty,
            "stop": list(self.stop) or None,
            "seed": self.seed,
            "do_sample": False if greedy else self.do_sample,
            "return_full_text": self.return_full_text,
            "truncate": self.truncate,
            "typical_p": self.typical_p,
            "watermark": self.watermark,
            "details": True,
            "top_n_tokens": self.top_logprobs or None,
        }
        out = {k: v for k, v in params.items() if v is not None}
        out.update(self.model_kwargs)
        return out

    def chat_fields(self) -> dict[str, Any]:
        """Root fields of a chat-completions body."""
        for name in ("truncate", "watermark"):
            if getattr(self, name) is not None:
                raise ConfigurationError(
                    f"{name} is a text-generation option that chat completions do not have: "
                    "use task='text-generation' with a TGI endpoint, or drop it"
                )
        body = {
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
            "typical_p": self.typical_p,
            "stop": list(self.stop) or None,
            "seed": self.seed,
            "logprobs": True if self.top_logprobs is not None else self.logprobs,
            "top_logprobs": self.top_logprobs,
            "reasoning_effort": self.reasoning_effort,
        }
        out: dict[str, Any] = {k: v for k, v in body.items() if v is not None}
        template = dict(self.model_kwargs.get("chat_template_kwargs") or {})
        out.update(self.model_kwargs)
        if self.enable_thinking is not None:
            template["enable_thinking"] = self.enable_thinking
        if template:
            out["chat_template_kwargs"] = template
        return out


def check_provider(provider: str | None, *, endpoint: bool) -> str | None:
    """A router provider or policy (``together``, ``fastest``, ``cheapest``...), or None."""
    if provider is None:
        return None
    if not isinstance(provider, str) or not _PROVIDER.fullmatch(provider.strip()):
        raise ConfigurationError(
            f"provider must be a provider name such as 'together' or a routing policy such as "
            f"'fastest' or 'cheapest', got {provider!r}"
        )
    if endpoint:
        raise ConfigurationError(
            "provider applies to model ids on the router; an endpoint_url serves its own model"
        )
    return provider.strip()


def _rebuild_options(values: dict[str, Any]) -> GenerationOptions:
    return GenerationOptions(**values)
