"""LlamaIndex images over HTTP: bytes, a path and a URL reach the server as ``image_url`` parts;
a text-only model's refusal is a typed error with the server's message."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ImageBlock, TextBlock
from llama_index.core.llms import ChatMessage

from hfrag.errors import InvalidRequestError
from hfrag.llama_index import HuggingFaceInferenceLLM
from hfrag.server.testing import ServerHandle
from tests.llm import LLAMA, TEXT_ONLY, traits_server

__all__ = ["traits_server"]  # a fixture

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def message(path: Path) -> ChatMessage:
    return ChatMessage(
        role="user",
        blocks=[
            TextBlock(text="What is this?"),
            ImageBlock(image=PNG, image_mimetype="image/png"),
            ImageBlock(path=path, image_mimetype="image/png"),
            ImageBlock(url="https://example.com/cat.png"),
        ],
    )


def test_bytes_path_and_url_reach_the_server(traits_server: ServerHandle, tmp_path: Path) -> None:
    traits_server.reset()
    path = tmp_path / "cat.png"
    path.write_bytes(PNG)
    HuggingFaceInferenceLLM(model=LLAMA, router_url=traits_server.url).chat([message(path)])
    parts = traits_server.counters.bodies[-1]["messages"][0]["content"]
    data = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "image_url"]
    assert [p["image_url"]["url"] for p in parts[1:]] == [data, data, "https://example.com/cat.png"]


def test_a_text_only_model_refuses_with_its_message(
    traits_server: ServerHandle, tmp_path: Path
) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(PNG)
    llm = HuggingFaceInferenceLLM(model=TEXT_ONLY, router_url=traits_server.url)
    with pytest.raises(InvalidRequestError, match="not a multimodal model"):
        llm.chat([message(path)])
