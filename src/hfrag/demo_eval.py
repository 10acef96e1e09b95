"""``hfrag demo --eval``: how well the demo's retrieval and reranking find the answering passage.

The corpus ships with one labelled question per passage (``hfrag/data/questions.json``: the
question and the id of the passage that answers it, written for hfrag, Apache-2.0). For every
question, the pipeline's own classes retrieve ``k`` passages by embedding similarity, then the
reranker reorders those ``k``; hit@1 is the share of questions whose answering passage comes
first, hit@3 the share where it is among the first three. Retrieval alone and retrieval +
rerank are measured on the same retrieved passages, so the difference is the reranker's.

Which reranker that is matters for reading the table: the local server's real-model reranker
(``hfrag/minilm-cosine-rerank``) is embedding similarity of the same all-MiniLM-L6-v2
embeddings, not a cross-encoder (no cross-encoder's weights ship in a package), so it keeps the
retrieval order by construction; with ``--hosted`` it is BAAI/bge-reranker-v2-m3, a
cross-encoder. ``benchmarks/bench_retrieval_eval.py`` prints the same table for the report.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

__all__ = ["Evaluation", "evaluate", "hit_rate", "load_questions", "table"]


def load_questions() -> list[dict[str, str]]:
    """The labelled demo questions: ``question`` and the ``passage`` id that answers it."""
    text = (files("hfrag") / "data" / "questions.json").read_text(encoding="utf-8")
    questions: list[dict[str, str]] = json.loads(text)["questions"]
    return questions


def hit_rate(rankings: Sequence[Sequence[str]], answers: Sequence[str], n: int) -> float:
    """Share of questions whose answer is among the first ``n`` ids of its ranking."""
    if len(rankings) != len(answers) or not answers:
        raise ValueError("one ranking per answer, and at least one answer")
    found = sum(
        answer in list(ranked)[:n] for ranked, answer in zip(rankings, answers, strict=True)
    )
    return found / len(answers)


@dataclass(frozen=True)
class Evaluation:
    """Rankings of passage ids per question: by retrieval, and by the reranker over those."""

    answers: list[str]
    retrieved: list[list[str]]
    reranked: list[list[str]]
    embed: str
    rerank: str
    k: int

    def rows(self) -> list[tuple[str, float, float]]:
        """``(stage, hit@1, hit@3)`` for retrieval alone and for retrieval + rerank."""
        return [
            (
                f"retrieval ({self.embed}, top {self.k})",
                hit_rate(self.retrieved, self.answers, 1),
                hit_rate(self.retrieved, self.answers, 3),
            ),
            (
                f"retrieval + rerank ({self.rerank})",
                hit_rate(self.reranked, self.answers, 1),
                hit_rate(self.reranked, self.answers, 3),
            ),
        ]


def table(evaluation: Evaluation) -> str:
    """The evaluation as a printed table."""
    rows = evaluation.rows()
    width = max(len(stage) for stage, _, _ in rows)
    lines = [f"{'stage':<{width}}  hit@1  hit@3", "-" * (width + 14)]
    lines += [f"{stage:<{width}}  {h1:5.3f}  {h3:5.3f}" for stage, h1, h3 in rows]
    n = len(evaluation.answers)
    lines.append(f"({n} labelled questions, hfrag/data/questions.json)")
    return "\n".join(lines)


def _langchain(t: Any, k: int, questions: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from hfrag.demo import load_corpus
    from hfrag.langchain import HuggingFaceInferenceEmbeddings, HuggingFaceInferenceReranker

    store = InMemoryVectorStore(HuggingFaceInferenceEmbeddings(batch_size=8, **t.conn("embed")))
    store.add_documents(
        [Document(page_content=c["text"], metadata={"id": c["id"]}) for c in load_corpus()]
    )
    reranker = HuggingFaceInferenceReranker(top_n=k, **t.conn("rerank"))
    retrieved, reranked = [], []
    for question in questions:
        docs = store.similarity_search(question, k=k)
        retrieved.append([d.metadata["id"] for d in docs])
        reranked.append([d.metadata["id"] for d in reranker.compress_documents(docs, question)])
    return retrieved, reranked


def _llama_index(t: Any, k: int, questions: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    from llama_index.core import Document, VectorStoreIndex

    from hfrag.demo import load_corpus
    from hfrag.llama_index import HuggingFaceInferenceEmbedding, HuggingFaceInferenceRerank

    embed_model = HuggingFaceInferenceEmbedding(embed_batch_size=8, **t.conn("embed"))
    # The id is the label: LlamaIndex embeds metadata with the text unless told not to.
    docs = [
        Document(
            text=c["text"],
            metadata={"id": c["id"]},
            excluded_embed_metadata_keys=["id"],
            excluded_llm_metadata_keys=["id"],
        )
        for c in load_corpus()
    ]
    retriever = VectorStoreIndex.from_documents(docs, embed_model=embed_model).as_retriever(
        similarity_top_k=k
    )
    rerank = HuggingFaceInferenceRerank(top_n=k, **t.conn("rerank"))
    retrieved, reranked = [], []
    for question in questions:
        nodes = retriever.retrieve(question)
        retrieved.append([n.node.metadata["id"] for n in nodes])
        ranked = rerank.postprocess_nodes(nodes, query_str=question)
        reranked.append([n.node.metadata["id"] for n in ranked])
    return retrieved, reranked


def run_evaluation(t: Any, framework: str, k: int) -> Evaluation:
    """Retrieve and rerank every labelled question through ``framework``'s classes."""
    questions = load_questions()
    collect = _llama_index if framework == "llama-index" else _langchain
    retrieved, reranked = collect(t, k, [q["question"] for q in questions])
    return Evaluation(
        answers=[q["passage"] for q in questions],
        retrieved=retrieved,
        reranked=reranked,
        embed=t.embed,
        rerank=t.rerank,
        k=k,
    )


def evaluate(t: Any, args: argparse.Namespace, say: Callable[[str], None]) -> str:
    """``hfrag demo --eval``: print and return the table for the demo's targets."""
    k = max(args.k, 3)
    say(f"\nevaluating retrieval (top {k}) and reranking on the labelled questions")
    evaluation = run_evaluation(t, args.framework, k)
    text = table(evaluation)
    say(text)
    if t.rerank.startswith("hfrag/minilm-cosine"):
        say(
            f"note: {t.rerank} is embedding similarity (10 * cosine - 4 of the same "
            "all-MiniLM-L6-v2 embeddings), not a cross-encoder: it keeps the retrieval order."
        )
    return text
