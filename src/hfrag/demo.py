"""``hfrag demo`` (what ``make demo`` runs): a whole RAG pipeline, end to end.

The corpus shipped in ``hfrag/data/corpus.json`` is embedded (with a progress bar), the passages
nearest a question are retrieved, reranked, and handed to an LLM whose answer is printed token by
token as it streams, then the timings. Every step goes through hfrag's LangChain classes (or its
LlamaIndex ones with ``--framework llama-index``) over HTTP:

- offline (the default): hfrag's local server starts in this process on 127.0.0.1 in
  ``hfrag serve``'s layout (``serve_deployments``: a TEI embedding listener, a TEI re-ranker
  listener, a TGI listener, as a production stack deploys them), with the real models of the
  ``local`` extra when they are installed (all-MiniLM-L6-v2, its embedding-similarity reranker,
  SmolLM2-135M-Instruct) and the hashing models otherwise, and stops afterwards, also on Ctrl-C
  or an error; each class is given its listener's URL (``endpoint_url``);
- ``--hosted``: the Hugging Face router, with ``HF_TOKEN``, each class given its model id.

``--eval`` measures retrieval and reranking instead of answering: hit@1 and hit@3 over the
labelled questions shipped with the corpus (``hfrag/data/questions.json``, see ``demo_eval``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, TextIO

__all__ = ["DemoError", "Targets", "add_arguments", "load_corpus", "local_models", "run"]

HOSTED_EMBED = "sentence-transformers/all-MiniLM-L6-v2"
HOSTED_RERANK = "BAAI/bge-reranker-v2-m3"
HOSTED_LLM = "meta-llama/Llama-3.1-8B-Instruct"
QUESTION = "How do honey bees tell each other where the flowers are?"
SYSTEM = (
    "You answer questions using only the numbered passages given. Answer in one or two short "
    "sentences. If the passages do not contain the answer, say so."
)


class DemoError(Exception):
    """The demo cannot run as asked (no token for ``--hosted``, real models missing, ...)."""


@dataclass(frozen=True)
class Targets:
    """Where the pipeline's three models are: ids and the router they are reached through."""

    embed: str
    rerank: str
    llm: str
    router_url: str | None  # None: the Hugging Face router
    provider: str | None = None
    description: str = ""
    #: The local server's listeners (embed, rerank, generate); None: models by id on a router.
    endpoints: dict[str, str] | None = None

    def conn(self, role: str) -> dict[str, Any]:
        """The connection arguments of the class playing ``role`` (embed, rerank, generate)."""
        if self.endpoints is not None:
            return {"endpoint_url": self.endpoints[role]}
        model = {"embed": self.embed, "rerank": self.rerank, "generate": self.llm}[role]
        return {"model": model, "router_url": self.router_url}


@dataclass
class Timings:
    """Seconds per step, in the order they ran."""

    steps: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = self.steps.get(name, 0.0) + time.perf_counter() - start


class Printer:
    """Writes the report: whole lines, and streamed tokens as they arrive."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def token(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


def load_corpus() -> list[dict[str, str]]:
    """The demo passages (``id``, ``title``, ``text``) shipped with hfrag (Apache-2.0)."""
    data = json.loads((files("hfrag") / "data" / "corpus.json").read_text(encoding="utf-8"))
    passages: list[dict[str, str]] = data["passages"]
    return passages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hfrag demo``."""
    from hfrag.cli import _positive_int as _positive

    parser.add_argument(
        "--framework",
        choices=("langchain", "llama-index"),
        default="langchain",
        help="run the pipeline with hfrag's LangChain or LlamaIndex classes",
    )
    parser.add_argument(
        "--hosted",
        action="store_true",
        help="use the Hugging Face router instead of the local server (needs HF_TOKEN)",
    )
    parser.add_argument(
        "--models",
        choices=("auto", "real", "hash"),
        default="auto",
        help="local server models: real (the local extra), hash (fast hashing models) or auto "
        "(real when installed, else hash)",
    )
    parser.add_argument("--question", "-q", default=QUESTION, help="the question to answer")
    parser.add_argument("-k", type=_positive, default=5, help="passages retrieved")
    parser.add_argument("--top-n", type=_positive, default=3, help="passages kept after reranking")
    parser.add_argument(
        "--max-new-tokens", type=_positive, default=96, help="length limit of the streamed answer"
    )
    parser.add_argument(
        "--eval",
        action="store_true",
        help="instead of answering, report hit@1 and hit@3 of retrieval alone and of retrieval "
        "+ rerank over the labelled questions shipped with the corpus",
    )


def local_models(choice: str = "auto", say: Callable[[str], None] = print) -> list[Any]:
    """The server's model specs for ``--models choice``, saying which ones it serves."""
    from hfrag.server.config import default_models

    if choice == "hash":
        say("models: hashing models (--models hash)")
        return default_models()
    try:
        from hfrag.server.models_real import missing_runtimes, real_models
    except ImportError:  # a server without real-model support
        missing = ["the real-model backends of hfrag.server"]
    else:
        missing = missing_runtimes()
        if not missing:
            say("models: real (loading all-MiniLM-L6-v2 and SmolLM2-135M-Instruct)")
            return list(real_models())
    if choice == "real":
        raise DemoError(
            f"--models real needs {', '.join(missing)}: pip install 'hfrag[local]' "
            "(or run without --models real to use the hashing models)"
        )
    say(
        f"models: real models not installed (missing {', '.join(missing)}); FALLING BACK to "
        "hfrag's hashing models: retrieval is by shared words and the 'answer' copies a "
        "passage. Install them with: pip install 'hfrag[local]'"
    )
    return default_models()


@contextlib.contextmanager
def _targets(hosted: bool, models: str, say: Callable[[str], None]) -> Iterator[Targets]:
    """The router models, or the local server started for the block (and stopped after it)."""
    if hosted:
        if not os.environ.get("HF_TOKEN"):
            raise DemoError(
                "--hosted runs on the Hugging Face router and needs a token: set HF_TOKEN "
                "(https://huggingface.co/settings/tokens), or run without --hosted to stay offline"
            )
        yield Targets(
            HOSTED_EMBED,
            HOSTED_RERANK,
            HOSTED_LLM,
            None,
            provider="auto",
            description="the Hugging Face router "
            f"({os.environ.get('HFRAG_ROUTER_URL') or 'https://router.huggingface.co'})",
        )
        return
    try:
        from hfrag.server.config import ServerConfig
        from hfrag.server.testing import serve_deployments
    except ImportError:  # pragma: no cover - make demo installs hfrag[all]
        raise DemoError("the local server needs: pip install 'hfrag[server]'") from None
    specs = local_models(models, say)
    config = ServerConfig(models=specs)

    def first(kind: str) -> str:
        spec = config.first_of(kind)
        assert spec is not None  # both model lists serve every kind
        return spec.name

    with serve_deployments(config) as server:
        urls = server.urls
        yield Targets(
            first("embed"),
            first("rerank"),
            first("generate"),
            urls["router"],
            description=f"hfrag's local server at {urls['embed']} (TEI embeddings), "
            f"{urls['rerank']} (TEI re-ranker), {urls['generate']} (TGI)",
            endpoints={k: urls[k] for k in ("embed", "rerank", "generate")},
        )
    say("local server stopped")


def _prompt(question: str, passages: list[str]) -> str:
    context = "\n".join(f"[{i}] {text}" for i, text in enumerate(passages, 1))
    return f"Passages:\n{context}\n\nQuestion: {question}"


def _langchain(t: Targets, args: argparse.Namespace, p: Printer, clock: Timings) -> str:
    from langchain_core.documents import Document
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.vectorstores import InMemoryVectorStore

    from hfrag.langchain import (
        ChatHuggingFaceInference,
        HuggingFaceInferenceEmbeddings,
        HuggingFaceInferenceReranker,
    )

    corpus = load_corpus()
    embeddings = HuggingFaceInferenceEmbeddings(batch_size=8, show_progress=True, **t.conn("embed"))
    store = InMemoryVectorStore(embeddings)
    docs = [Document(page_content=c["text"], metadata={"id": c["id"]}) for c in corpus]
    p.line(f"\n1. embedding {len(docs)} passages with {t.embed}")
    with clock.step("embed corpus"):
        store.add_documents(docs)
    # The bar is for the corpus; the question is one text.
    store.embedding = HuggingFaceInferenceEmbeddings(**t.conn("embed"))

    p.line(f"\n2. retrieved for: {args.question}")
    with clock.step("retrieve"):
        hits = store.similarity_search_with_score(args.question, k=args.k)
    for doc, score in hits:
        p.line(f"  {score:6.3f}  [{doc.metadata['id']}] {doc.page_content[:90]}")

    reranker = HuggingFaceInferenceReranker(top_n=args.top_n, **t.conn("rerank"))
    with clock.step("rerank"):
        ranked = reranker.compress_documents([doc for doc, _ in hits], args.question)
    p.line(f"\n3. reranked by {t.rerank}")
    for doc in ranked:
        p.line(f"  {doc.metadata['relevance_score']:6.3f}  [{doc.metadata['id']}]")

    chat = ChatHuggingFaceInference(
        provider=t.provider,
        max_new_tokens=args.max_new_tokens,
        temperature=0.0,
        **t.conn("generate"),
    )
    messages = [
        SystemMessage(SYSTEM),
        HumanMessage(_prompt(args.question, [d.page_content for d in ranked])),
    ]
    pieces = (c.text if isinstance(c.text, str) else str(c.content) for c in chat.stream(messages))
    return _stream_answer(t.llm, pieces, p, clock)


def _llama_index(t: Targets, args: argparse.Namespace, p: Printer, clock: Timings) -> str:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.llms import ChatMessage

    from hfrag.llama_index import (
        HuggingFaceInferenceEmbedding,
        HuggingFaceInferenceLLM,
        HuggingFaceInferenceRerank,
    )

    corpus = load_corpus()
    embed_model = HuggingFaceInferenceEmbedding(embed_batch_size=8, **t.conn("embed"))
    docs = [Document(text=c["text"], metadata={"id": c["id"]}) for c in corpus]
    p.line(f"\n1. embedding {len(docs)} passages with {t.embed}")
    with clock.step("embed corpus"):
        index = VectorStoreIndex.from_documents(docs, embed_model=embed_model, show_progress=True)

    p.line(f"\n2. retrieved for: {args.question}")
    with clock.step("retrieve"):
        nodes = index.as_retriever(similarity_top_k=args.k).retrieve(args.question)
    for n in nodes:
        p.line(f"  {n.score or 0.0:6.3f}  [{n.node.metadata['id']}] {n.node.get_content()[:90]}")

    rerank = HuggingFaceInferenceRerank(top_n=args.top_n, **t.conn("rerank"))
    with clock.step("rerank"):
        ranked = rerank.postprocess_nodes(nodes, query_str=args.question)
    p.line(f"\n3. reranked by {t.rerank}")
    for n in ranked:
        p.line(f"  {n.score or 0.0:6.3f}  [{n.node.metadata['id']}]")

    llm = HuggingFaceInferenceLLM(
        provider=t.provider,
        max_new_tokens=args.max_new_tokens,
        temperature=0.0,
        **t.conn("generate"),
    )
    messages = [
        ChatMessage(role="system", content=SYSTEM),
        ChatMessage(
            role="user", content=_prompt(args.question, [n.node.get_content() for n in ranked])
        ),
    ]
    return _stream_answer(t.llm, (r.delta or "" for r in llm.stream_chat(messages)), p, clock)


def _stream_answer(llm: str, pieces: Iterator[str], p: Printer, clock: Timings) -> str:
    """Print the answer's pieces as they arrive; time the first one and the whole answer."""
    p.line(f"\n4. answer from {llm} (streamed)")
    parts: list[str] = []
    begun = time.perf_counter()
    with clock.step("answer"):
        for text in pieces:
            if text:
                if not parts:
                    clock.steps["first token"] = time.perf_counter() - begun
                parts.append(text)
                p.token(text)
    p.line()
    return "".join(parts)


def run(args: argparse.Namespace, out: TextIO | None = None) -> str:
    """Run the pipeline for the parsed ``hfrag demo`` arguments; return the answer (with
    ``--eval``, the evaluation table).

    Raises ``DemoError`` when it cannot run as asked; the local server is stopped on any exit.
    """
    p = Printer(out or sys.stdout)
    clock = Timings()
    start = time.perf_counter()
    pipeline = _llama_index if args.framework == "llama-index" else _langchain
    with _targets(args.hosted, args.models, p.line) as targets:
        clock.steps["start"] = time.perf_counter() - start
        p.line(f"hfrag demo: {args.framework} pipeline on {targets.description}")
        if getattr(args, "eval", False):
            from hfrag.demo_eval import evaluate

            with clock.step("evaluate"):
                answer = evaluate(targets, args, p.line)
        else:
            answer = pipeline(targets, args, p, clock)
    total = time.perf_counter() - start
    p.line("\ntimings:")
    for name, seconds in clock.steps.items():
        p.line(f"  {name:<13} {seconds:7.2f} s")
    p.line(f"  {'total':<13} {total:7.2f} s")
    return answer
