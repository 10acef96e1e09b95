"""What every hfrag LangChain adapter shares: ``dumps()`` support that never writes a credential."""

from __future__ import annotations

from langchain_core.load.serializable import Serializable

from hfrag._fields import sensitive_headers

__all__ = ["SecretSafeSerializable"]


class SecretSafeSerializable(Serializable):
    """``dumps()`` writes the constructor arguments, with secrets replaced by their ids."""

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """hfrag adapters can be serialised with ``langchain_core.load.dumps``."""
        return True

    @property
    def lc_secrets(self) -> dict[str, str]:
        """The token, and header values that look like credentials, are never serialised."""
        secrets = {"token": "HF_TOKEN"}
        for name in sensitive_headers(getattr(self, "headers", None)):
            secrets[f"headers.{name}"] = f"HFRAG_HEADER_{name.upper().replace('-', '_')}"
        return secrets
