"""Arguments users bring from other libraries, and pydantic's errors, in hfrag's own terms.

Two jobs, both for :class:`~hfrag._fields.connection.InferenceFields` and so for every adapter:

- :func:`migrate` renames the field names of langchain-huggingface and LlamaIndex's HF and TEI
  classes to hfrag's, where they mean the same thing (``repo_id`` is ``model``), and refuses with
  an error naming hfrag's field where they do not (``model_kwargs`` holding an unknown option).
  A URL given as ``model`` (langchain-huggingface before 1.2.2) is taken as ``endpoint_url``; a
  chat model given ``llm=`` (``ChatHuggingFace(llm=...)``) takes that LLM's settings.
  The table :data:`ALIASES` is the one place these names live.
- :func:`configuration_error` turns pydantic's ``ValidationError`` (not an ``HfragError``) into a
  :class:`~hfrag.errors.ConfigurationError`, without echoing input values (they may hold a token).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo

from hfrag.errors import ConfigurationError, HfragError

__all__ = ["ALIASES", "REFUSED", "configuration_error", "field_names", "migrate"]

#: ``name users bring -> (hfrag field, where the name comes from)``, accepted where it means the
#: same thing. A name the class itself declares (LlamaIndex's own ``embed_batch_size`` or
#: ``model_name``) is kept as the class's field.
ALIASES: Mapping[str, tuple[str, str]] = {
    "repo_id": ("model", "langchain-huggingface"),
    "huggingfacehub_api_token": ("token", "langchain-huggingface"),
    "model_name": ("model", "LlamaIndex HuggingFaceInferenceAPIEmbedding, langchain-huggingface"),
    "base_url": ("endpoint_url", "LlamaIndex TextEmbeddingsInference"),
    "auth_token": ("token", "LlamaIndex TextEmbeddingsInference"),
    "text_instruction": ("document_instruction", "LlamaIndex HuggingFace embeddings"),
    "embed_batch_size": ("batch_size", "LlamaIndex embeddings"),
}

#: Names other libraries use for what hfrag does another way: refused, saying that way.
REFUSED: Mapping[str, str] = {
    "is_chat_model": (
        "`is_chat_model` (LlamaIndex HuggingFaceInferenceAPI) is not an argument in hfrag: the "
        "wire form follows the target, and metadata.is_chat_model reports it; task='chat' sends "
        "prompts as chat messages (is_chat_model=True), task='text-generation' sends them to "
        "TGI's /generate (is_chat_model=False)"
    ),
}

#: Options langchain-huggingface takes in ``model_kwargs`` and the hfrag field for each.
_MODEL_KWARGS: Mapping[str, str] = {
    "normalize": "normalize",
    "truncate": "truncate",
    "truncation_direction": "truncation_direction",
    "prompt_name": "prompt_name",
    "dimensions": "dimensions",
    "max_new_tokens": "max_new_tokens",
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "stop": "stop",
    "seed": "seed",
    "repetition_penalty": "repetition_penalty",
}


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


#: Every name a target may be given under; when one is, ``model_name`` is not the target.
_TARGET_NAMES = ("model", "endpoint_url", "repo_id", "base_url")


def _target_from_model_name(data: dict[str, Any], own_fields: Collection[str]) -> None:
    """LlamaIndex's ``model_name`` is the target (a Hub id or a URL) when no target is given."""
    value = data.get("model_name")
    if not isinstance(value, str) or not value.strip():
        return
    if any(data.get(name) for name in _TARGET_NAMES):
        # A target is given (TextEmbeddingsInference's base_url among them): model_name is only
        # a display name (LlamaIndex) or a conflict.
        return
    data["endpoint_url" if _is_url(value) else "model"] = value
    if "model_name" not in own_fields:
        del data["model_name"]


def _url_as_model(data: dict[str, Any]) -> None:
    """A URL given as ``model`` is the endpoint URL (langchain-huggingface before 1.2.2)."""
    if not _is_url(data.get("model")):
        return
    url = data.pop("model")
    given = data.get("endpoint_url")
    if given not in (None, "") and given != url:
        # Neither URL is repeated: either may carry a credential.
        raise ConfigurationError(
            "model=<a URL> is taken as endpoint_url=..., and a different endpoint_url (or "
            "base_url) is given too: give one of them, not both"
        )
    data["endpoint_url"] = url


def field_names(info: FieldInfo, name: str) -> set[str]:
    """``name`` and every alias pydantic accepts for that field."""
    names = {name}
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names.update(c for c in alias.choices if isinstance(c, str))
    elif isinstance(alias, str):
        names.add(alias)
    return names


def _settings_of_llm(data: dict[str, Any], own_fields: Collection[str]) -> None:
    """langchain-huggingface's ``ChatHuggingFace(llm=HuggingFaceEndpoint(...))``: the chat model
    takes the settings given to the wrapped hfrag LLM (its connection and generation settings);
    an argument given to the chat model itself wins."""
    llm = data.pop("llm")
    if llm is None:
        return
    from hfrag._fields.generation import GenerationFields  # it imports this module

    if not isinstance(llm, GenerationFields):
        raise ConfigurationError(
            f"llm= takes an hfrag LLM (hfrag.langchain.HuggingFaceInferenceLLM), not "
            f"{type(llm).__name__}; or give model=... or endpoint_url=... to the chat model itself"
        )
    fields = GenerationFields.model_fields
    for name in sorted(llm.model_fields_set & fields.keys()):
        # task picks the LLM's wire form; the chat model always speaks chat.
        if name == "task" or name not in own_fields:
            continue
        if field_names(fields[name], name) & data.keys():
            continue
        data[name] = getattr(llm, name)


def _expand_model_kwargs(data: dict[str, Any], own_fields: Collection[str]) -> None:
    extra = data.pop("model_kwargs")
    if extra is None:
        return
    if not isinstance(extra, Mapping):
        raise ConfigurationError(
            "model_kwargs must be a mapping; hfrag takes each option as its own argument"
        )
    for key, value in extra.items():
        field = _MODEL_KWARGS.get(key, key)
        if field not in own_fields:
            known = ", ".join(f"{k}=" for k in _MODEL_KWARGS if _MODEL_KWARGS[k] in own_fields)
            raise ConfigurationError(
                f"model_kwargs[{key!r}] is not a setting of this class; hfrag takes each option "
                f"as its own argument ({known or 'none apply here'})"
            )
        if field in data and data[field] != value:
            raise ConfigurationError(
                f"{field} is given both as {field}=... and in model_kwargs, with different values"
            )
        data[field] = value


def _check_task(data: dict[str, Any], tasks: Collection[str]) -> None:
    task = data.pop("task")
    if task is None or task in tasks:
        return
    does = f"this class does {' or '.join(repr(t) for t in tasks)}; " if tasks else ""
    raise ConfigurationError(
        f"task={task!r} does not apply: {does}hfrag picks the task from the class (embeddings, "
        "reranking, generation or chat), so drop task="
    )


def migrate(
    data: Any, own_fields: Collection[str], tasks: Collection[str] = (), *, takes_llm: bool = False
) -> Any:
    """``data`` (constructor keyword arguments) with other libraries' names turned into hfrag's.

    ``own_fields`` are the names the class declares (they are never renamed); ``tasks`` the
    ``task=`` values that mean this class's own task (langchain-huggingface's ``task``);
    ``takes_llm``: a chat model that takes a wrapped LLM's settings from ``llm=``.
    """
    if not isinstance(data, dict):
        return data
    data = dict(data)
    if takes_llm and "llm" in data and "llm" not in own_fields:
        _settings_of_llm(data, own_fields)
    if callable(data.get("auth_token")):
        raise ConfigurationError(
            "auth_token as a callable is not supported: pass token=... (a string), sent as "
            "'Authorization: Bearer ...'"
        )
    _target_from_model_name(data, own_fields)
    if "model_kwargs" in data and "model_kwargs" not in own_fields:
        _expand_model_kwargs(data, own_fields)
    if "task" in data and "task" not in own_fields:
        _check_task(data, tasks)
    for name, (field, source) in ALIASES.items():
        if name not in data or name in own_fields:
            continue
        value = data.pop(name)
        if value is None or value == "":
            continue  # an unset value of the other name says nothing
        if field in data and data[field] is not None and data[field] != value:
            raise ConfigurationError(
                f"`{name}` is `{field}` in hfrag (from {source}); give one of them, not both"
            )
        data[field] = value
    _url_as_model(data)
    return data


def _describe(error: Mapping[str, Any], known: Collection[str]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "settings"
    if error.get("type") == "extra_forbidden":
        close = difflib.get_close_matches(where, list(known), n=1)
        alias = ALIASES.get(where)
        if alias is not None:
            return f"`{where}` is `{alias[0]}` in hfrag"
        if where in REFUSED:
            return REFUSED[where]
        suggestion = f"; did you mean {close[0]}=?" if close else ""
        return f"{where}: not a setting of this class (Extra inputs are not permitted){suggestion}"
    return f"{where}: {error.get('msg', 'invalid')}"


def configuration_error(exc: ValidationError, title: str, known: Collection[str]) -> HfragError:
    """The hfrag error for a pydantic ``ValidationError`` raised while building ``title``.

    An ``HfragError`` raised by a validator (hfrag's own checks) comes back as it was; anything
    else becomes one :class:`ConfigurationError` listing each problem, never the input values.
    """
    errors = exc.errors(include_url=False, include_input=False)
    own = [
        e["ctx"]["error"] for e in errors if isinstance(e.get("ctx", {}).get("error"), HfragError)
    ]
    if len(own) == len(errors) == 1:
        found: HfragError = own[0]
        return found
    problems = "; ".join(_describe(e, known) for e in errors)
    return ConfigurationError(f"invalid settings for {title}: {problems}")
