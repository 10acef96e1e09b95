"""LangChain's standard integration tests for embeddings, unmodified, against the local server."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from hfrag.langchain import HuggingFaceInferenceEmbeddings
from hfrag.server.testing import ServerHandle


class TestHuggingFaceInferenceEmbeddingsIntegration(EmbeddingsIntegrationTests):
    url = ""  # the module's local server, set by the fixture below

    @property
    def embeddings_class(self) -> type[HuggingFaceInferenceEmbeddings]:
        return HuggingFaceInferenceEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"endpoint_url": self.url}


@pytest.fixture(autouse=True, scope="module")
def _point_at_server(module_server: ServerHandle) -> None:
    TestHuggingFaceInferenceEmbeddingsIntegration.url = module_server.url
