"""LangChain serialisation of hfrag's connection fields: credentials by id, never by value.

``dumps()`` writes a secret id in place of each credential; ``loads()`` fills it back from
``secrets_map`` (or, with ``secrets_from_env=True``, from the environment variable of that name).

- The token's id is ``HF_TOKEN`` only when the target is a Hugging Face host; for any other
  target it is ``HFRAG_TOKEN``, so ``loads(..., secrets_from_env=True)`` never hands the ambient
  Hugging Face token to a third-party server as an explicit credential.
- A credential-like header (``X-Api-Key``...) is written as a top-level argument
  ``"header:<name>"`` holding a secret id ``HFRAG_HEADER_<NAME>``: LangChain escapes secret markers
  nested inside a dict (``headers``), which ``loads()`` then cannot restore, but it revives
  top-level ones. The constructor folds those arguments back into ``headers``.
- An ``endpoint_url`` or ``router_url`` carrying a credential (user-info, an ``api_key=``-style
  query value) is written as a whole as the secret ``HFRAG_ENDPOINT_URL`` / ``HFRAG_ROUTER_URL``.

Every LangChain adapter of hfrag inherits :class:`HfragSerializable`.
"""

from __future__ import annotations

import warnings
from typing import Any

from langchain_core.load.serializable import Serializable
from pydantic import BaseModel, SecretStr, model_validator

from hfrag.transport.credentials import is_hf_host
from hfrag.transport.redaction import sensitive_headers, url_secrets
from hfrag.transport.urls import router_base

__all__ = ["HEADER_PREFIX", "HfragSerializable", "LangChainSecrets", "header_secret_id"]

HEADER_PREFIX = "header:"
_URL_SECRETS = {"endpoint_url": "HFRAG_ENDPOINT_URL", "router_url": "HFRAG_ROUTER_URL"}


def _argument(name: str) -> str:
    # LangChain reads a dot in a secret's key as a path into nested dicts.
    return HEADER_PREFIX + name.replace(".", "%2E")


def header_secret_id(name: str) -> str:
    """The secret id of a header: ``X-Api-Key`` is ``HFRAG_HEADER_X_API_KEY``."""
    cleaned = "".join(c if c.isalnum() else "_" for c in name.upper())
    return f"HFRAG_HEADER_{cleaned}"


class LangChainSecrets(BaseModel):
    """``lc_secrets`` and ``lc_attributes`` for the connection fields, and their way back in."""

    def _is_hf_target(self) -> bool:
        endpoint = getattr(self, "endpoint_url", None)
        try:
            if endpoint:
                return is_hf_host(endpoint.strip())
            return is_hf_host(router_base(getattr(self, "router_url", None)))
        except ValueError:
            return False

    @property
    def lc_secrets(self) -> dict[str, str]:
        """The token, and header values that look like credentials, are never serialised."""
        secrets = {"token": "HF_TOKEN" if self._is_hf_target() else "HFRAG_TOKEN"}
        for name, secret_id in _URL_SECRETS.items():
            url = getattr(self, name, None)
            if isinstance(url, str) and url_secrets(url):
                secrets[name] = secret_id  # a URL carrying a credential is a secret as a whole
        headers: dict[str, str] = getattr(self, "headers", None) or {}
        for name in sensitive_headers(headers):
            secrets[_argument(name)] = header_secret_id(name)
        return secrets

    @property
    def lc_attributes(self) -> dict[str, Any]:
        """Credential-like headers leave ``headers`` for top-level arguments (see module doc)."""
        headers: dict[str, str] = getattr(self, "headers", None) or {}
        hidden = sensitive_headers(headers)
        if not hidden:
            return {}
        out: dict[str, Any] = {_argument(name): headers[name] for name in hidden}
        out["headers"] = {k: v for k, v in headers.items() if k not in hidden} or None
        return out

    @model_validator(mode="before")
    @classmethod
    def _fold_secret_headers(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(
            isinstance(key, str) and key.startswith(HEADER_PREFIX) for key in data
        ):
            return data
        data = dict(data)
        headers = dict(data.get("headers") or {})
        for key in [k for k in data if isinstance(k, str) and k.startswith(HEADER_PREFIX)]:
            value = data.pop(key)
            name = key[len(HEADER_PREFIX) :].replace("%2E", ".")
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value is None:
                warnings.warn(
                    f"header {name!r} was not restored: its value is a secret; pass it to "
                    f"loads() as secrets_map={{{header_secret_id(name)!r}: ...}}",
                    stacklevel=2,
                )
                continue
            headers[name] = value
        data["headers"] = headers or None
        return data


class HfragSerializable(LangChainSecrets, Serializable):
    """The base of every hfrag LangChain adapter: ``dumps()`` writes the constructor arguments,
    with credentials replaced by their secret ids (see the module docstring)."""

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """hfrag adapters can be serialised with ``langchain_core.load.dumps``.

        The token's id is ``HF_TOKEN`` for a Hugging Face target, ``HFRAG_TOKEN`` otherwise;
        a credential-like header ``X-Api-Key`` is ``HFRAG_HEADER_X_API_KEY``. Give them back to
        ``loads()`` with ``secrets_map={...}``.
        """
        return True
