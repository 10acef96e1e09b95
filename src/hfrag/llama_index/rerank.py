"""LlamaIndex reranking over Hugging Face hosted inference: fields, docstrings, client calls.

Everything else (wire forms, batching, retries, response checks) is the task client's
(:class:`hfrag.tasks.RerankClient`); the fields are declared once in :mod:`hfrag._fields`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from pydantic import ConfigDict, Field

from hfrag._fields import ADAPTER_CONFIG, RankingFields
from hfrag.errors import InputError
from hfrag.tasks import RerankResult
from hfrag.tasks.inputs import check_objects

__all__ = ["HuggingFaceInferenceRerank"]

dispatcher = get_dispatcher(__name__)


class HuggingFaceInferenceRerank(RankingFields, BaseNodePostprocessor):
    """Rerank retrieved nodes with a cross-encoder on the Hugging Face router or any endpoint.

    Give ``model`` (a Hub model id, served by text classification on the router) or
    ``endpoint_url`` (a TEI re-ranker, an Inference Endpoint, or any server speaking the
    Cohere-style ``/v1/rerank``: Infinity, vLLM, Jina; see ``protocol``). The best ``top_n``
    nodes come back as new ``NodeWithScore`` objects holding copies of the nodes, scored by the
    model; with ``keep_retrieval_score`` the retriever's score goes to
    ``metadata["retrieval_score"]`` of the copy. The caller's nodes are never changed. Nodes are
    scored on their content as embedded (``MetadataMode.EMBED``); nodes with empty content are
    not sent and not returned (a warning names them).

    Example::

        from llama_index.core import Document, VectorStoreIndex
        from hfrag.llama_index import HuggingFaceInferenceRerank

        rerank = HuggingFaceInferenceRerank(model="BAAI/bge-reranker-v2-m3", top_n=3)
        # or: HuggingFaceInferenceRerank(endpoint_url="http://127.0.0.1:8081")  # TEI
        engine = index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank])
        engine.query("Where is the Eiffel tower?")
    """

    model_config = ConfigDict(**ADAPTER_CONFIG, protected_namespaces=("pydantic_model_",))

    keep_retrieval_score: bool = Field(
        default=False,
        description="Keep the retriever's score in metadata['retrieval_score'] of each copy.",
    )

    @classmethod
    def class_name(cls) -> str:
        return "HuggingFaceInferenceRerank"

    def _inputs(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[QueryBundle, list[str]]:
        if query_bundle is None:
            raise InputError("reranking needs a query: pass query_bundle or query_str")
        checked = check_objects(nodes, NodeWithScore, "LlamaIndex NodeWithScore objects")
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in checked]
        return query_bundle, texts

    def _cut(self) -> dict[str, Any]:
        return {"top_n": self.top_n, "score_threshold": self.score_threshold}

    @contextlib.contextmanager
    def _reranking(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle
    ) -> Iterator[Callable[[list[RerankResult]], list[NodeWithScore]]]:
        """LlamaIndex's instrumentation and callback events around one rerank; yields the
        function that turns the ranking into new nodes (copies: the caller's nodes stay)."""
        top_n = len(nodes) if self.top_n is None else self.top_n
        name = self._target_name()
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=top_n, model_name=name)
        )
        out: list[NodeWithScore] = []

        def finish(results: list[RerankResult]) -> list[NodeWithScore]:
            for index, score in results:
                node = nodes[index].node.model_copy(deep=True)
                if self.keep_retrieval_score:
                    node.metadata["retrieval_score"] = nodes[index].score
                out.append(NodeWithScore(node=node, score=score))
            return out

        payload: dict[str, Any] = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: name,
            EventPayload.QUERY_STR: query_bundle.query_str,
            EventPayload.TOP_K: top_n,
        }
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
            yield finish
            event.on_end(payload={EventPayload.NODES: out})
        dispatcher.event(ReRankEndEvent(nodes=out))

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query, texts = self._inputs(nodes, query_bundle)
        if not nodes:
            return []
        with self._reranking(nodes, query) as finish:
            return finish(self.rerank_client().rerank(query.query_str, texts, **self._cut()))

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query, texts = self._inputs(nodes, query_bundle)
        if not nodes:
            return []
        with self._reranking(nodes, query) as finish:
            return finish(await self.rerank_client().arerank(query.query_str, texts, **self._cut()))
