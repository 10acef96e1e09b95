"""A LlamaIndex node parser (``TextSplitter``) that cuts by the embedding endpoint's tokenizer.

:class:`HuggingFaceInferenceTextSplitter` asks a TEI endpoint (``/tokenize``, batched) where its
tokens are and cuts every node into chunks of at most ``chunk_size`` tokens as that endpoint
counts them, ``chunk_overlap`` tokens shared (:mod:`hfrag.tasks.chunking`). ``tokenizer()`` gives
the endpoint's tokenizer as the ``text -> token ids`` callable LlamaIndex's own token splitters
and ``Settings.tokenizer`` take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.node_parser.interface import TextSplitter
from llama_index.core.node_parser.node_utils import build_nodes_from_splits
from llama_index.core.schema import BaseNode
from pydantic import ConfigDict

from hfrag._fields import ADAPTER_CONFIG
from hfrag._fields.splitting import SplitterFields

__all__ = ["HuggingFaceInferenceTextSplitter"]


class HuggingFaceInferenceTextSplitter(SplitterFields, TextSplitter):
    """Split nodes into chunks that fit the embedding model, counted by its endpoint.

    Takes the connection settings of every hfrag class (``endpoint_url``, ``token``...) and
    ``chunk_size`` / ``chunk_overlap`` in the endpoint's tokens (``chunk_size`` None: the
    endpoint's ``max_input_length``).

    Example::

        from llama_index.core import VectorStoreIndex
        from hfrag.llama_index import HuggingFaceInferenceTextSplitter

        splitter = HuggingFaceInferenceTextSplitter(endpoint_url="http://127.0.0.1:8080")
        index = VectorStoreIndex.from_documents(documents, transformations=[splitter])
    """

    model_config = ConfigDict(**ADAPTER_CONFIG)

    @classmethod
    def class_name(cls) -> str:
        return "HuggingFaceInferenceTextSplitter"

    def split_text(self, text: str) -> list[str]:
        """The chunks of one text."""
        return [c.text for c in self.split_chunks([text])[0]]

    def split_texts(self, texts: list[str]) -> list[str]:
        """The chunks of every text, in order (one batched round of requests for all)."""
        return [c.text for chunks in self.split_chunks(texts) for c in chunks]

    def _parse_nodes(
        self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any
    ) -> list[BaseNode]:
        found = self.split_chunks([node.get_content() for node in nodes])
        out: list[BaseNode] = []
        for node, chunks in zip(nodes, found, strict=True):
            out.extend(
                build_nodes_from_splits([c.text for c in chunks], node, id_func=self.id_func)
            )
        return out

    def tokenizer(self) -> Callable[[str], list[int]]:
        """``text -> token ids`` by the endpoint (no special tokens), for LlamaIndex's
        ``TokenTextSplitter(tokenizer=...)`` or ``Settings.tokenizer``."""
        client = self.tokenizer_client()

        def ids(text: str) -> list[int]:
            if not text.strip():
                return []
            return [t.id for t in client.tokenize([text])[0]]

        return ids
