"""Inference Providers for embeddings: the one provider table, and the Hub's model mapping.

A model id may be served by several providers through the router. ``hf-inference`` speaks the HF
pipeline form at ``{router}/hf-inference/models/{id}/pipeline/feature-extraction``; the others
speak the OpenAI form at ``{router}/{provider}{route}`` with ``"model": <the provider's own id>``.
That id comes from the Hub (``GET {hub}/api/models/{id}?expand[]=inferenceProviderMapping``),
whose answer is a dict ``{provider: {"providerId", "status", "task", ...}}`` (``model_info``) or a
list of the same objects with a ``"provider"`` key (``list_models``); both are accepted.

Providers come and go: :data:`EMBEDDING_ROUTES` is the only place that lists them.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hfrag.errors import ConfigurationError, MalformedResponseError
from hfrag.transport.urls import redact_url

TASK = "feature-extraction"
HF_INFERENCE = "hf-inference"
AUTO = "auto"

#: Route under ``{router}/{provider}`` of each provider's OpenAI-form embeddings (as
#: huggingface_hub's ``inference/_providers`` helpers send them). ``hf-inference`` is the
#: pipeline form, built by :func:`hfrag.transport.urls.model_url`.
EMBEDDING_ROUTES: Mapping[str, str] = {
    "together": "/v1/embeddings",
    "scaleway": "/v1/embeddings",
    "deepinfra": "/v1/openai/embeddings",
}
#: Every provider name a client accepts for embeddings.
PROVIDERS: tuple[str, ...] = (HF_INFERENCE, *EMBEDDING_ROUTES)
#: The tasks that embed (huggingface_hub treats them as one on hf-inference).
_EMBED_TASKS = frozenset({TASK, "sentence-similarity"})


@dataclass(frozen=True)
class ProviderMapping:
    """One provider's entry for a model: its own id, health status and task."""

    provider: str
    provider_id: str
    status: str
    task: str


def check_provider(provider: str | None, provider_model: str | None) -> str | None:
    """Validate ``provider`` (None, ``"auto"`` or a known name) before anything is sent."""
    if provider is None:
        return None
    if not isinstance(provider, str) or provider not in (AUTO, *PROVIDERS):
        close = difflib.get_close_matches(str(provider), PROVIDERS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigurationError(
            f"unknown provider {provider!r}{hint}; providers hfrag can embed with: "
            f"{', '.join(PROVIDERS)}, or 'auto' (the first live provider the Hub lists)"
        )
    if provider == AUTO and provider_model is not None:
        raise ConfigurationError(
            "provider_model=... names a model on one provider: give that provider's name "
            "instead of provider='auto'"
        )
    return provider


def parse_mapping(payload: Any, model: str, url: str) -> list[ProviderMapping]:
    """The providers of ``model`` from the Hub's answer (dict or list form), in the Hub's order."""

    def bad(what: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"the Hub's provider mapping for {model} is malformed: {what}",
            status=200,
            url=redact_url(url),
        )

    if not isinstance(payload, dict):
        raise bad(f"expected a JSON object, got {type(payload).__name__}")
    raw = payload.get("inferenceProviderMapping")
    if raw is None:
        return []
    if isinstance(raw, dict):
        entries = [(name, value) for name, value in raw.items()]
    elif isinstance(raw, list):
        entries = [(item.get("provider") if isinstance(item, dict) else None, item) for item in raw]
    else:
        raise bad(f"inferenceProviderMapping is {type(raw).__name__}, not an object or a list")
    out = []
    for name, value in entries:
        if not isinstance(name, str) or not isinstance(value, dict):
            raise bad(f"an entry without a provider name: {value!r:.80}")
        provider_id, task = value.get("providerId"), value.get("task")
        if not isinstance(provider_id, str) or not provider_id or not isinstance(task, str):
            raise bad(f"the {name!r} entry has no providerId or task")
        out.append(ProviderMapping(name, provider_id, str(value.get("status") or "live"), task))
    return out


def _listing(mappings: list[ProviderMapping]) -> str:
    if not mappings:
        return "the Hub lists no Inference Provider for it"
    return "providers that serve it: " + ", ".join(
        f"{m.provider} ({m.task}, {m.status})" for m in mappings
    )


def choose(mappings: list[ProviderMapping], provider: str, model: str) -> ProviderMapping:
    """The mapping to use for ``provider`` (a name or ``"auto"``); warns on staging/error."""
    embedding = [m for m in mappings if m.task in _EMBED_TASKS and m.provider in PROVIDERS]
    if provider == AUTO:
        live = [m for m in embedding if m.status == "live"]
        if not embedding:
            raise ConfigurationError(
                f"no provider serves {model} for {TASK}: {_listing(mappings)}. Choose another "
                "model, or deploy it on an Inference Endpoint and give endpoint_url=..."
            )
        chosen = (live or embedding)[0]
    else:
        found = [m for m in mappings if m.provider == provider]
        if not found:
            raise ConfigurationError(
                f"provider {provider!r} does not serve {model}: {_listing(mappings)}"
            )
        if not any(m.task in _EMBED_TASKS for m in found):
            raise ConfigurationError(
                f"provider {provider!r} serves {model} for {found[0].task}, not {TASK}: "
                f"{_listing(mappings)}"
            )
        chosen = next(m for m in found if m.task in _EMBED_TASKS)
    if chosen.status != "live":
        warnings.warn(
            f"{model} on provider {chosen.provider!r} has status {chosen.status!r} on the Hub "
            "(staging: meant for tests; error: its last health check failed): requests may fail",
            UserWarning,
            stacklevel=2,
        )
    return chosen
