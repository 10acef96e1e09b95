"""LangChain's standard integration tests for the chat model, unmodified, against the local server.

Two layouts: a model id on the router layout (with a provider) and an endpoint URL (TGI layout).
The deterministic generator answers tool calls and structured output by the rule documented in
``hfrag.server.tools``. Features it cannot show are turned off with the suite's own flags:

- ``supports_json_mode``: off because the rule answers ``{"type": "json_object"}`` without a
  schema with ``{"answer": ...}``, not with the keys the prompt asks for in words.
- image, audio, PDF and Anthropic-style inputs: off (the suite's defaults) because the extractive
  generator reads text only.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from hfrag.langchain import ChatHuggingFaceInference
from hfrag.server.testing import ServerHandle
from tests.llm import LLAMA, SMOL, llm_server

__all__ = ["llm_server"]  # a fixture


class TestChatRouterIntegration(ChatModelIntegrationTests):
    url = ""  # the module's local server, set by the fixture below

    @property
    def chat_model_class(self) -> type[ChatHuggingFaceInference]:
        return ChatHuggingFaceInference

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": LLAMA, "provider": "fastest", "router_url": self.url}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return SMOL


class TestChatEndpointIntegration(TestChatRouterIntegration):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"endpoint_url": self.url}

    @property
    def model_override_value(self) -> str:
        return SMOL


@pytest.fixture(autouse=True, scope="module")
def _point_at_server(llm_server: ServerHandle) -> None:
    TestChatRouterIntegration.url = llm_server.url
