"""LlamaIndex's node parser by the endpoint's tokenizer: every node fits as the server counts
it, and the endpoint's tokenizer as a callable for LlamaIndex's own token splitters."""

from __future__ import annotations

from typing import Any

from llama_index.core import Document
from llama_index.core.node_parser import TokenTextSplitter

from hfrag.llama_index import HuggingFaceInferenceTextSplitter
from tests.hybrid import MIXED, minilm_server, server_counts

__all__ = ["minilm_server"]


def test_every_node_fits_as_the_server_counts_it(minilm_server: Any) -> None:
    splitter = HuggingFaceInferenceTextSplitter(endpoint_url=minilm_server.url, chunk_overlap=8)
    nodes = splitter.get_nodes_from_documents([Document(text=MIXED), Document(text="tiny")])
    texts = [n.get_content() for n in nodes]
    assert max(server_counts(minilm_server, texts)) <= 256
    assert texts[-1] == "tiny"
    assert all(t in MIXED for t in texts[:-1])
    assert splitter.split_texts([MIXED, "tiny"]) == texts


def test_the_endpoints_tokenizer_drives_llama_index_token_splitters(minilm_server: Any) -> None:
    tokenizer = HuggingFaceInferenceTextSplitter(endpoint_url=minilm_server.url).tokenizer()
    assert tokenizer("hello world") == [7592, 2088]  # bert-base-uncased ids, no [CLS]/[SEP]
    pieces = TokenTextSplitter(chunk_size=40, chunk_overlap=0, tokenizer=tokenizer).split_text(
        MIXED[:1500]
    )
    assert max(server_counts(minilm_server, pieces)) <= 42  # 40 and [CLS] [SEP]
