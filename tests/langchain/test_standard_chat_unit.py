"""LangChain's standard unit tests for the chat model, unmodified.

``init_from_env_params`` is left at its default (skipped), as for the embeddings: hfrag reads no
setting from the environment into a field (``HF_TOKEN`` goes to Hugging Face hosts only, per
request).
"""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from hfrag.langchain import ChatHuggingFaceInference
from tests.llm import LLAMA


class TestChatHuggingFaceInferenceUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatHuggingFaceInference]:
        return ChatHuggingFaceInference

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": LLAMA, "router_url": "http://127.0.0.1:9"}
