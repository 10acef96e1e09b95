"""LlamaIndex ``BaseEmbedding`` over Hugging Face hosted inference: fields, docs, client calls.

Batching belongs to the task client (:class:`hfrag.tasks.EmbeddingsClient`): a batch call hands the
whole list over in one call with ``embed_batch_size``, and the client cuts it into requests run
with bounded concurrency. The fields are declared once in :mod:`hfrag._fields`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

# Events go out through the base class's dispatcher, as LlamaIndex's own batch methods do.
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding, dispatcher
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)
from pydantic import ConfigDict

from hfrag._fields import ADAPTER_CONFIG, EmbeddingFields
from hfrag.llama_index._batch_size import BatchSizeNames
from hfrag.tasks.inputs import check_texts
from hfrag.tasks.vectors import Matrix

__all__ = ["HuggingFaceInferenceEmbedding"]


def _rows(matrix: Matrix) -> list[Embedding]:
    rows: list[Embedding] = matrix.tolist()
    return rows


def _row(vector: Matrix) -> Embedding:
    row: Embedding = vector.tolist()
    return row


class HuggingFaceInferenceEmbedding(BatchSizeNames, EmbeddingFields, BaseEmbedding):
    """Embeddings from a Hub model on the Hugging Face router, or from any TEI-compatible endpoint.

    Give ``model`` (a Hub model id) or ``endpoint_url`` (an Inference Endpoint, a TEI server, or
    ``hfrag serve``). Texts get the document prompt or instruction, queries the query one.
    ``embed_batch_size`` and ``batch_size`` are the same setting (set either); a batch call sends
    the whole list to hfrag's client, which runs ``max_concurrency`` requests at a time. Sync
    methods are safe inside a running event loop (Jupyter).

    Example::

        from llama_index.core import Document, Settings, VectorStoreIndex
        from hfrag.llama_index import HuggingFaceInferenceEmbedding

        Settings.embed_model = HuggingFaceInferenceEmbedding(model="BAAI/bge-small-en-v1.5")
        # or: HuggingFaceInferenceEmbedding(endpoint_url="http://127.0.0.1:8080",
        #                                   query_prompt_name="query")
        index = VectorStoreIndex.from_documents([Document(text="Paris is in France.")])
        index.as_retriever(similarity_top_k=1).retrieve("Where is Paris?")
    """

    model_config = ConfigDict(**ADAPTER_CONFIG, protected_namespaces=("pydantic_model_",))

    @classmethod
    def class_name(cls) -> str:
        return "HuggingFaceInferenceEmbedding"

    def _get_query_embedding(self, query: str) -> Embedding:
        return _row(self.embeddings_client().embed_query(query))

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return _row(await self.embeddings_client().aembed_query(query))

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str], bar: bool | None = None) -> list[Embedding]:
        client = self.embeddings_client()
        matrix = client.embed(texts, kind="document", batch_size=self.batch_size, show_progress=bar)
        return _rows(matrix)

    async def _aget_text_embeddings(
        self, texts: list[str], bar: bool | None = None
    ) -> list[Embedding]:
        client = self.embeddings_client()
        matrix = await client.aembed(
            texts, kind="document", batch_size=self.batch_size, show_progress=bar
        )
        return _rows(matrix)

    @contextlib.contextmanager
    def _embedding_event(self, texts: list[str]) -> Iterator[list[list[Embedding]]]:
        """LlamaIndex's instrumentation and callback events around one call for all ``texts``."""
        model_dict = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
        result: list[list[Embedding]] = []  # the body appends the embeddings
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
        ) as event:
            yield result
            event.on_end(payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: result[0]})
        if self.embeddings_cache is None:
            # Built without validation: the float lists come straight from a checked float32
            # array, and validating (so copying) every float of a big batch costs as much CPU
            # as decoding it. Vectors from a cache are validated as LlamaIndex would.
            end_event = EmbeddingEndEvent.model_construct(chunks=texts, embeddings=result[0])
        else:
            end_event = EmbeddingEndEvent(chunks=texts, embeddings=result[0])
        dispatcher.event(end_event)

    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed ``texts`` in one client call, with one embedding event for the whole list.

        The client cuts the list into ``embed_batch_size`` requests and runs them concurrently.
        A progress bar is shown when ``show_progress`` (here or the field) is set.
        """
        texts = check_texts(texts)  # before any event: a numpy array, None, a set...
        if not texts:
            return []
        with self._embedding_event(texts) as result:
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            if self.embeddings_cache is None:
                result.append(self._get_text_embeddings(texts, show_progress or None))
            else:
                result.append(self._get_text_embeddings_cached(texts))
        return result[0]

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Async :meth:`get_text_embedding_batch`."""
        texts = check_texts(texts)  # before any event: a numpy array, None, a set...
        if not texts:
            return []
        with self._embedding_event(texts) as result:
            if self.rate_limiter is not None:
                await self.rate_limiter.async_acquire()
            if self.embeddings_cache is None:
                result.append(await self._aget_text_embeddings(texts, show_progress or None))
            else:
                result.append(await self._aget_text_embeddings_cached(texts))
        return result[0]
