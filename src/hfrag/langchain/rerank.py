"""LangChain rerankers over Hugging Face hosted inference: fields, docstrings, client calls.

- :class:`HuggingFaceInferenceReranker`, a ``BaseDocumentCompressor``: plugs into
  ``ContextualCompressionRetriever``.
- :class:`HuggingFaceInferenceCrossEncoder`, a ``BaseCrossEncoder``: for LangChain's own
  ``CrossEncoderReranker``.

Everything else (wire forms, batching, retries, response checks) is the task client's
(:class:`hfrag.tasks.RerankClient`); the fields are declared once in :mod:`hfrag._fields`.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict

from hfrag._fields import ADAPTER_CONFIG, RankingFields, RerankFields
from hfrag.langchain._rate import RateLimitedFields
from hfrag.langchain._serial import HfragSerializable
from hfrag.tasks import RerankResult
from hfrag.tasks.inputs import check_objects
from hfrag.tasks.scores import Scores

try:  # langchain-core 1.x; earlier, the interface lived in langchain-community
    from langchain_core.cross_encoders import BaseCrossEncoder
except ImportError:  # pragma: no cover - depends on the installed versions
    from langchain_community.cross_encoders import BaseCrossEncoder

__all__ = ["HuggingFaceInferenceCrossEncoder", "HuggingFaceInferenceReranker"]


def _ranked(documents: list[Document], results: list[RerankResult]) -> list[Document]:
    """Copies of the ranked documents with ``metadata["relevance_score"]``; the originals stay."""
    out = []
    for index, score in results:
        copy = documents[index].model_copy(deep=True)
        copy.metadata["relevance_score"] = score
        out.append(copy)
    return out


class HuggingFaceInferenceReranker(
    RateLimitedFields, RankingFields, HfragSerializable, BaseDocumentCompressor
):
    """Rerank retrieved documents with a cross-encoder on the Hugging Face router or any endpoint.

    Give ``model`` (a Hub model id, served by text classification on the router) or
    ``endpoint_url`` (a TEI re-ranker, an Inference Endpoint, or any server speaking the
    Cohere-style ``/v1/rerank``: Infinity, vLLM, Jina; see ``protocol``). The best ``top_n``
    documents come back as copies with ``metadata["relevance_score"]``; the caller's documents are
    never changed. Documents are sent in batches of ``batch_size``, ``max_concurrency`` at a time.
    Documents with empty text are not sent and not returned (a warning names them).

    Example::

        from langchain_classic.retrievers import ContextualCompressionRetriever
        from hfrag.langchain import HuggingFaceInferenceReranker

        reranker = HuggingFaceInferenceReranker(model="BAAI/bge-reranker-v2-m3", top_n=3)
        # or: HuggingFaceInferenceReranker(endpoint_url="http://127.0.0.1:8081")  # TEI
        retriever = ContextualCompressionRetriever(
            base_compressor=reranker, base_retriever=store.as_retriever(search_kwargs={"k": 20})
        )
        retriever.invoke("Where is the Eiffel tower?")
    """

    model_config = ConfigDict(**ADAPTER_CONFIG)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The best ``top_n`` documents for ``query``, best first, scored in copies."""
        docs = check_objects(documents, Document, "LangChain Document objects")
        results = self.rerank_client().rerank(
            query,
            [d.page_content for d in docs],
            top_n=self.top_n,
            score_threshold=self.score_threshold,
        )
        return _ranked(docs, results)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents` (native, no thread)."""
        docs = check_objects(documents, Document, "LangChain Document objects")
        results = await self.rerank_client().arerank(
            query,
            [d.page_content for d in docs],
            top_n=self.top_n,
            score_threshold=self.score_threshold,
        )
        return _ranked(docs, results)


def _floats(scores: Scores) -> list[float]:
    floats: list[float] = scores.tolist()
    return floats


class HuggingFaceInferenceCrossEncoder(
    RateLimitedFields, RerankFields, HfragSerializable, BaseCrossEncoder
):
    """A cross-encoder on the Hugging Face router or any re-ranker endpoint, for LangChain.

    ``score(text_pairs)`` returns one relevance score per ``(query, text)`` pair, in order (a
    probability unless ``raw_scores=True``; ``-inf`` for a pair with an empty text). Pairs may
    have different queries. Same settings as :class:`HuggingFaceInferenceReranker`, without
    ``top_n``: LangChain's ``CrossEncoderReranker`` keeps its own.

    Example::

        from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
        from hfrag.langchain import HuggingFaceInferenceCrossEncoder

        encoder = HuggingFaceInferenceCrossEncoder(model="BAAI/bge-reranker-v2-m3")
        compressor = CrossEncoderReranker(model=encoder, top_n=3)
        compressor.compress_documents(documents, "Where is the Eiffel tower?")
    """

    model_config = ConfigDict(**ADAPTER_CONFIG)

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        """One score per ``(query, text)`` pair, in input order."""
        return _floats(self.rerank_client().score_pairs(text_pairs))

    async def ascore(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        """Async :meth:`score` (native, no thread)."""
        return _floats(await self.rerank_client().ascore_pairs(text_pairs))
