"""The Hub's model API, as far as Inference Providers need it: ``GET /api/models/{id}``.

With ``?expand[]=inferenceProviderMapping`` (or ``expand=...``) the answer carries the model's
providers, as a dict ``{provider: {"providerId", "status", "task"}}`` (the Hub's ``model_info``)
or a list of the same objects with a ``"provider"`` key (``list_models``), chosen by
``ServerConfig.mapping_form``. The mapping is ``ServerConfig.provider_mapping``, or, when that is
None, derived from the served models (:func:`mapping_for`). An unknown model gets the Hub's 404.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hfrag.server.config import ServerConfig
from hfrag.server.inference import json_response, state_of

__all__ = ["mapping_for", "model_info", "provider_models"]

_PIPELINE_TAG = {"embed": "feature-extraction", "rerank": "text-classification"}


def _derived(config: ServerConfig, model_id: str) -> dict[str, dict[str, str]]:
    """Every served embedding model on four providers (scaleway under its short name),
    a re-ranker on hf-inference, a generator on together for ``conversational`` only."""
    spec = config.model(model_id)
    if spec is None:
        return {}

    def entry(provider_id: str, task: str) -> dict[str, str]:
        return {"providerId": provider_id, "status": "live", "task": task}

    if spec.kind == "embed":
        task = "feature-extraction"
        return {
            "hf-inference": entry(spec.name, task),
            "together": entry(spec.name, task),
            "scaleway": entry(spec.name.rsplit("/", 1)[-1], task),
            "deepinfra": entry(spec.name, task),
        }
    if spec.kind == "rerank":
        return {"hf-inference": entry(spec.name, "text-classification")}
    if spec.kind == "sparse":
        return {}  # no Inference Provider serves sparse embeddings
    return {"together": entry(spec.name, "conversational")}


def mapping_for(config: ServerConfig, model_id: str) -> dict[str, dict[str, str]] | None:
    """``model_id``'s providers (None: the Hub does not know the model)."""
    if config.provider_mapping is None:
        return _derived(config, model_id) if config.model(model_id) is not None else None
    if model_id in config.provider_mapping:
        return {p: dict(e) for p, e in config.provider_mapping[model_id].items()}
    return {} if config.model(model_id) is not None else None


def provider_models(config: ServerConfig, provider: str) -> dict[str, str]:
    """``{provider_id: served model name}`` of the models ``provider`` serves for embeddings."""
    out = {}
    names = [m.name for m in config.models] + list(config.provider_mapping or {})
    for name in dict.fromkeys(names):
        entry = (mapping_for(config, name) or {}).get(provider)
        if entry and entry.get("task") in ("feature-extraction", "sentence-similarity"):
            out[entry["providerId"]] = name
    return out


async def model_info(request: web.Request) -> web.Response:
    """``GET /api/models/{model_id}``: the model, with its providers when expanded."""
    config = state_of(request).config
    model_id = request.match_info["model_id"]
    mapping = mapping_for(config, model_id)
    if mapping is None:
        return json_response({"error": "Repository not found"}, status=404)
    spec = config.model(model_id)
    info: dict[str, Any] = {"_id": model_id, "id": model_id}
    if spec is not None and spec.kind in _PIPELINE_TAG:
        info["pipeline_tag"] = _PIPELINE_TAG[spec.kind]
    expand = request.query.getall("expand[]", []) + request.query.getall("expand", [])
    if "inferenceProviderMapping" in expand:
        if config.mapping_form == "list":
            info["inferenceProviderMapping"] = [
                {"provider": provider, **entry} for provider, entry in mapping.items()
            ]
        else:
            info["inferenceProviderMapping"] = mapping
    return json_response(info)
