"""``make demo``: a small retrieval pipeline, end to end.

Without ``HF_TOKEN`` it runs offline: hfrag's local inference server starts on 127.0.0.1 with its
embedded default models and the pipeline talks HTTP to it like it would to a TEI endpoint. With
``HF_TOKEN`` set it uses the Hugging Face router and a hosted sentence-transformers model.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

CORPUS = [
    "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
    "Photosynthesis turns light, water and carbon dioxide into glucose and oxygen.",
    "The Rhine flows from the Swiss Alps to the North Sea through Germany.",
    "Python's asyncio runs coroutines on an event loop in a single thread.",
    "Text Embeddings Inference rejects batches larger than its max_client_batch_size.",
    "Honey bees communicate the direction of flowers with a waggle dance.",
    "Mount Kilimanjaro in Tanzania is the highest mountain in Africa.",
    "A vector store indexes embeddings so that nearest neighbours are found quickly.",
    "Retrieval-augmented generation grounds a language model's answer in retrieved text.",
    "The Great Barrier Reef lies off the coast of Queensland in Australia.",
]

QUESTIONS = [
    "When was the Eiffel Tower completed?",
    "How do bees tell each other where flowers are?",
    "What does a vector store do with embeddings?",
]

ROUTER_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@contextlib.contextmanager
def _target(use_router: bool) -> Iterator[tuple[str | None, str | None]]:
    """``(model, endpoint_url)``: the router model, or the local server started here."""
    if use_router:
        yield ROUTER_MODEL, None
        return
    try:
        from hfrag.server.testing import serve_in_thread
    except ImportError:  # pragma: no cover - make demo installs hfrag[all]
        raise SystemExit("the local server needs: pip install 'hfrag[server]'") from None
    with serve_in_thread() as server:
        yield None, server.url


def run(echo: Callable[[str], None], *, local: bool = False, k: int = 2) -> None:
    """Embed the corpus, store it, and retrieve the best passages for a few questions.

    ``echo`` receives each line of the report (``hfrag demo`` passes ``print``).
    """
    from langchain_core.vectorstores import InMemoryVectorStore

    from hfrag.langchain import HuggingFaceInferenceEmbeddings

    use_router = bool(os.environ.get("HF_TOKEN")) and not local
    with _target(use_router) as (model, endpoint_url):
        where = f"router model {model}" if model else f"local server at {endpoint_url}"
        echo(f"hfrag demo: embedding {len(CORPUS)} passages with the {where}")
        embeddings = HuggingFaceInferenceEmbeddings(model=model, endpoint_url=endpoint_url)
        store = InMemoryVectorStore.from_texts(CORPUS, embeddings)
        for question in QUESTIONS:
            echo(f"\nQ: {question}")
            for doc, score in store.similarity_search_with_score(question, k=k):
                echo(f"  {score:.3f}  {doc.page_content}")
