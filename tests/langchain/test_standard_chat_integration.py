"""LangChain's standard integration tests for the chat model, unmodified, against the local server.

Two layouts: a model id on the router layout (with a provider) and an endpoint URL (TGI layout).
The deterministic generator answers tool calls and structured output by the rule documented in
``hfrag.server.tools``. Features it cannot show are turned off with the suite's own flags:

- ``supports_json_mode``: off because the rule answers ``{"type": "json_object"}`` without a
  schema with ``{"answer": ...}``, not with the keys the prompt asks for in words.
- image inputs (OpenAI ``image_url`` parts, LangChain ``image`` blocks with base64 data or a
  URL): on. The suite downloads its sample PNG from GitHub with ``httpx.get``; tests run without
  network, so that one download is answered with a PNG made here (hfrag's clients do not use
  ``httpx.get``; the model under test is not touched). The extractive generator ignores images,
  so this shows the wire works, not that a model saw the picture; that the images arrive as
  ``image_url`` parts is checked in ``test_chat_models.py`` and ``test_chat_reasoning.py``.
- usage details: ``reasoning_output`` on (a reasoning model of the local server reports
  ``completion_tokens_details.reasoning_tokens``); the others (audio, cache) are not served.
- images in tool messages: off (chat completions carry images in user messages only).
- audio, PDF and Anthropic-style inputs: off (the suite's defaults): chat completions servers
  take none of them.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from langchain_core.messages import AIMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests

from hfrag.langchain import ChatHuggingFaceInference
from hfrag.server.testing import serve_in_thread
from tests.llm import LLAMA, REASONING, SMOL, traits_config


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

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[Any]]:
        return {"invoke": ["reasoning_output"], "stream": ["reasoning_output"]}

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        """A reasoning model of the local server (it reports ``reasoning_tokens``)."""
        model = ChatHuggingFaceInference(model=REASONING, router_url=self.url)
        if not stream:
            return cast(AIMessage, model.invoke("Where is Paris?"))
        merged: Any = None
        for chunk in model.stream("Where is Paris?"):
            merged = chunk if merged is None else merged + chunk
        return cast(AIMessage, merged)

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True


def _png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
        + chunk(b"IEND", b"")
    )


def _local_png(url: str, **_: Any) -> httpx.Response:
    """The suite's image download, answered here (no network in tests)."""
    return httpx.Response(200, content=_png(), request=httpx.Request("GET", url))


class TestChatEndpointIntegration(TestChatRouterIntegration):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"endpoint_url": self.url}

    @property
    def model_override_value(self) -> str:
        return SMOL


@pytest.fixture(autouse=True)
def _no_image_download(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpx, "get", _local_png)


@pytest.fixture(autouse=True, scope="module")
def _point_at_server() -> Iterator[None]:
    # The README's LLM ids (LLAMA primary, so /info is TGI's) and the reasoning models.
    with serve_in_thread(traits_config(primary=LLAMA)) as srv:
        TestChatRouterIntegration.url = srv.url
        yield
