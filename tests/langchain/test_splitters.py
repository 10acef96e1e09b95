"""LangChain's TextSplitter by the endpoint's tokenizer: every chunk fits as the server counts
it, exact start indices, metadata kept, async, configuration like every other class."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from hfrag.errors import ConfigurationError
from hfrag.langchain import HuggingFaceInferenceTextSplitter
from tests.adapters import PLANTED
from tests.hybrid import MIXED, minilm_server, server_counts

__all__ = ["minilm_server"]


def test_every_chunk_fits_and_starts_where_it_says(minilm_server: Any) -> None:
    splitter = HuggingFaceInferenceTextSplitter(
        endpoint_url=minilm_server.url, chunk_overlap=16, add_start_index=True
    )
    assert isinstance(splitter, TextSplitter)
    docs = [Document(page_content=MIXED, metadata={"source": "a"}), Document(page_content="tiny")]
    chunks = splitter.split_documents(docs)
    assert len(chunks) > 5
    counts = server_counts(minilm_server, [c.page_content for c in chunks])
    assert max(counts) <= 256
    for chunk in chunks[:-1]:
        start = chunk.metadata["start_index"]
        assert MIXED[start : start + len(chunk.page_content)] == chunk.page_content
        assert chunk.metadata["source"] == "a"
    assert chunks[-1].page_content == "tiny"
    assert splitter.split_text("tiny") == ["tiny"]


async def test_async_gives_the_same_chunks(minilm_server: Any) -> None:
    splitter = HuggingFaceInferenceTextSplitter(endpoint_url=minilm_server.url, chunk_size=48)
    docs = [Document(page_content=MIXED)]
    assert await splitter.atransform_documents(docs) == splitter.split_documents(docs)


def test_configured_like_every_other_class(minilm_server: Any) -> None:
    splitter = HuggingFaceInferenceTextSplitter(endpoint_url=minilm_server.url, token=PLANTED)
    assert PLANTED not in repr(splitter)
    assert splitter.split_text("hello there") == ["hello there"]
    assert minilm_server.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"
    with pytest.raises(ConfigurationError):
        HuggingFaceInferenceTextSplitter(endpoint_url=minilm_server.url, chunk_size=0)
    with pytest.raises(ConfigurationError):
        HuggingFaceInferenceTextSplitter(endpoint_url=minilm_server.url, chunk_sise=10)
    with pytest.raises(ConfigurationError, match="endpoint_url"):
        HuggingFaceInferenceTextSplitter(model="sentence-transformers/all-MiniLM-L6-v2")
