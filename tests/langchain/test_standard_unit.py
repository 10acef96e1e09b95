"""LangChain's standard unit tests for embeddings, unmodified.

``init_from_env_params`` is left at its default (skipped): hfrag reads no setting from the
environment into a field. ``HF_TOKEN`` is resolved by the transport per request and sent only to
Hugging Face hosts; reading it into ``token`` would make it an explicit credential, sent to any
endpoint. ``HFRAG_ROUTER_URL`` is likewise resolved when a URL is built.
"""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import EmbeddingsUnitTests

from hfrag.langchain import HuggingFaceInferenceEmbeddings


class TestHuggingFaceInferenceEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[HuggingFaceInferenceEmbeddings]:
        return HuggingFaceInferenceEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "hfrag/hash-embed", "router_url": "http://127.0.0.1:9"}
