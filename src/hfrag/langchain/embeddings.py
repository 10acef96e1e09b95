"""LangChain ``Embeddings`` over Hugging Face hosted inference: fields, docstrings, client calls.

Everything else (payloads, batching, retries, response checks) is the task client's
(:class:`hfrag.tasks.EmbeddingsClient`); the fields are declared once in :mod:`hfrag._fields`.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict

from hfrag._fields import ADAPTER_CONFIG, EmbeddingFields
from hfrag.langchain._rate import RateLimitedFields
from hfrag.langchain._serial import HfragSerializable
from hfrag.tasks.vectors import Matrix

__all__ = ["HuggingFaceInferenceEmbeddings"]


def _rows(matrix: Matrix) -> list[list[float]]:
    rows: list[list[float]] = matrix.tolist()
    return rows


def _row(vector: Matrix) -> list[float]:
    row: list[float] = vector.tolist()
    return row


class HuggingFaceInferenceEmbeddings(
    RateLimitedFields, EmbeddingFields, HfragSerializable, Embeddings
):
    """Embeddings from a Hub model on the Hugging Face router, or from any TEI-compatible endpoint.

    Give ``model`` (a Hub model id) or ``endpoint_url`` (an Inference Endpoint, a TEI server, or
    ``hfrag serve``). Documents get the document prompt or instruction, queries the query one.
    Work is split into ``batch_size`` requests, ``max_concurrency`` at a time; retries honour the
    server's hints. Sync methods are safe inside a running event loop (Jupyter).

    Example::

        from langchain_core.vectorstores import InMemoryVectorStore
        from hfrag.langchain import HuggingFaceInferenceEmbeddings

        embeddings = HuggingFaceInferenceEmbeddings(model="BAAI/bge-small-en-v1.5")
        # or: HuggingFaceInferenceEmbeddings(endpoint_url="http://127.0.0.1:8080",
        #                                     query_prompt_name="query")
        store = InMemoryVectorStore.from_texts(["Paris is in France."], embeddings)
        store.similarity_search("Where is Paris?", k=1)
    """

    model_config = ConfigDict(**ADAPTER_CONFIG)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (with the document prompt/instruction); one vector per text."""
        return _rows(self.embeddings_client().embed(texts, kind="document"))

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (with the query prompt/instruction)."""
        return _row(self.embeddings_client().embed_query(text))

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`."""
        return _rows(await self.embeddings_client().aembed(texts, kind="document"))

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return _row(await self.embeddings_client().aembed_query(text))
