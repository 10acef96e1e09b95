"""What both LangChain LLM classes add to the shared generation fields: LangSmith parameters."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from langchain_core.language_models.base import LangSmithParams

from hfrag._fields import GenerationFields

__all__ = ["LangChainGenerationFields"]


class LangChainGenerationFields(GenerationFields):
    """The generation fields with LangChain's identifying and LangSmith parameters."""

    _ls_model_type: ClassVar[Literal["chat", "llm"]] = "chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return self.identifying_params()

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params: LangSmithParams = super()._get_ls_params(stop=stop, **kwargs)  # type: ignore[misc]
        params["ls_provider"] = "huggingface"
        params["ls_model_name"] = str(kwargs.get("model") or self._target_name())
        params["ls_model_type"] = self._ls_model_type
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_new_tokens is not None:
            params["ls_max_tokens"] = self.max_new_tokens
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or [])
        return params
