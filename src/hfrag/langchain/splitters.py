"""A LangChain ``TextSplitter`` that cuts by the embedding endpoint's own tokenizer.

:class:`HuggingFaceInferenceTextSplitter` asks a TEI endpoint (``/tokenize``, batched) where its
tokens are and cuts every text into chunks of at most ``chunk_size`` tokens as that endpoint
counts them, ``chunk_overlap`` tokens shared (:mod:`hfrag.tasks.chunking`), so every chunk is
embedded whole. Needs ``langchain-text-splitters``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from pydantic import ConfigDict

from hfrag._fields import ADAPTER_CONFIG
from hfrag._fields.splitting import SplitterFields

try:
    from langchain_text_splitters import TextSplitter
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "HuggingFaceInferenceTextSplitter needs langchain-text-splitters: "
        "pip install langchain-text-splitters"
    ) from exc

__all__ = ["HuggingFaceInferenceTextSplitter"]


class _Fields(SplitterFields):
    model_config = ConfigDict(**ADAPTER_CONFIG)


class HuggingFaceInferenceTextSplitter(TextSplitter):
    """Split texts into chunks that fit the embedding model, counted by its endpoint.

    Takes the connection settings of every hfrag class (``endpoint_url``, ``token``, ``timeout``,
    ``max_retries``, ``deadline``, ``headers``...) and ``chunk_size`` / ``chunk_overlap`` in the
    endpoint's tokens (``chunk_size`` None: the endpoint's ``max_input_length``). With
    ``add_start_index=True`` every document's ``metadata["start_index"]`` is its exact character
    offset in the text it came from.

    Example::

        from hfrag.langchain import HuggingFaceInferenceTextSplitter

        splitter = HuggingFaceInferenceTextSplitter(
            endpoint_url="http://127.0.0.1:8080", chunk_overlap=32, add_start_index=True
        )
        chunks = splitter.split_documents(documents)   # each fits all-MiniLM-L6-v2's 256 tokens
    """

    def __init__(self, *, add_start_index: bool = False, **fields: Any) -> None:
        self.fields = _Fields(**fields)
        self.fields.chunker()  # settings are checked here, at construction
        size = self.fields.chunk_size or self.fields.chunk_overlap + 1
        super().__init__(
            chunk_size=size,
            chunk_overlap=self.fields.chunk_overlap,
            length_function=self._count,
            add_start_index=add_start_index,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fields!r})"

    def _count(self, text: str) -> int:
        counted = self.fields.tokenizer_client().count([text])[0]
        return int(counted) if counted is not None else 0

    def split_text(self, text: str) -> list[str]:
        """The chunks of one text."""
        return [c.text for c in self.fields.split_chunks([text])[0]]

    def create_documents(
        self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None
    ) -> list[Document]:
        """Documents of the chunks of every text (one batched round of requests for all)."""
        metas = metadatas or [{}] * len(texts)
        out = []
        for chunks, meta in zip(self.fields.split_chunks(list(texts)), metas, strict=True):
            for chunk in chunks:
                metadata = copy.deepcopy(meta)
                if self._add_start_index:
                    metadata["start_index"] = chunk.start
                out.append(Document(page_content=chunk.text, metadata=metadata))
        return out

    async def atransform_documents(
        self, documents: Sequence[Document], **kwargs: Any
    ) -> Sequence[Document]:
        """Async :meth:`transform_documents`."""
        docs = list(documents)
        found = await self.fields.asplit_chunks([d.page_content for d in docs])
        out = []
        for doc, chunks in zip(docs, found, strict=True):
            for chunk in chunks:
                metadata = copy.deepcopy(doc.metadata)
                if self._add_start_index:
                    metadata["start_index"] = chunk.start
                out.append(Document(page_content=chunk.text, metadata=metadata))
        return out

    def split_documents(self, documents: Iterable[Document]) -> list[Document]:
        """The chunks of ``documents``, metadata copied to each."""
        docs = list(documents)
        return self.create_documents([d.page_content for d in docs], [d.metadata for d in docs])
