"""Shared by the LangChain and LlamaIndex adapter tests: a server per module, targets, a corpus."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from hfrag.server import ServerConfig
from hfrag.server.backends import sigmoid
from hfrag.server.testing import ServerHandle, serve_in_thread

EMBED_MODEL = "hfrag/hash-embed"
RERANK_MODEL = "hfrag/hash-rerank"
#: A credential planted in tests of secrecy; it must never show up anywhere.
PLANTED = "hf_PLANTEDsecretTOKEN0123456789"


@pytest.fixture(scope="module")
def module_server() -> Iterator[ServerHandle]:
    """One local server (default models) for a test module."""
    with serve_in_thread() as srv:
        yield srv


@pytest.fixture
def srv(module_server: ServerHandle) -> ServerHandle:
    """The module's server with fresh counters, scripts and faults."""
    module_server.reset()
    return module_server


@pytest.fixture(params=["router", "endpoint"])
def target(request: pytest.FixtureRequest) -> str:
    """Both layouts: a model id on the router layout, and an endpoint URL (TEI layout)."""
    return str(request.param)


def target_kwargs(kind: str, url: str) -> dict[str, Any]:
    """Adapter arguments for the router layout (model id), the TEI layout (endpoint URL), or the
    OpenAI form (``/v1``)."""
    if kind == "router":
        return {"model": EMBED_MODEL, "router_url": url}
    if kind == "openai":
        return {"endpoint_url": url + "/v1"}
    return {"endpoint_url": url + "/embed"}


#: What the server's prompts prepend; the OpenAI form has no prompt names, so hfrag prepends it.
PROMPTS = {"query": "query: ", "document": "passage: "}


def prompt_kwargs(kind: str) -> dict[str, str]:
    """Query/document prompts: by name (TEI, router), or as instructions (OpenAI form)."""
    if kind == "openai":
        return {"query_instruction": PROMPTS["query"], "document_instruction": PROMPTS["document"]}
    return {"query_prompt_name": "query", "document_prompt_name": "document"}


def sent(kind: str, text: str) -> str:
    """The text the server receives for a document: instructions are prepended client-side."""
    return PROMPTS["document"] + text if kind == "openai" else text


def expected(server: ServerHandle, texts: Sequence[str]) -> np.ndarray:
    """What the server's deterministic backend gives ``texts`` (prompts already applied)."""
    spec = server.config.model(EMBED_MODEL)
    assert spec is not None
    return np.asarray(spec.backend.embed(list(texts)), dtype=np.float32)


def make_corpus(n: int, seed: int = 7) -> tuple[list[str], list[str]]:
    """``n`` chunks, each with a unique code word, and for each a query that should find it."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "bo", "da"]
    vocab = sorted({"".join(rng.choices(syllables, k=3)) for _ in range(3000)})
    chunks, queries = [], []
    for i in range(n):
        words = rng.sample(vocab, 10)
        code = f"rec{i:05d}"
        chunks.append(f"Record {code}: " + " ".join(words) + ".")
        queries.append(f"{code} " + " ".join(words[1:10:2]))
    return chunks, queries


@pytest.fixture(scope="module")
def rerank_module_server() -> Iterator[ServerHandle]:
    """One local server for a test module whose primary model is the re-ranker (a TEI re-ranker
    at its base URL; the router layout serves every model as usual)."""
    with serve_in_thread(ServerConfig.default(primary=RERANK_MODEL)) as srv:
        yield srv


@pytest.fixture
def rerank_srv(rerank_module_server: ServerHandle) -> ServerHandle:
    """The re-ranker module server with fresh counters, scripts and faults."""
    rerank_module_server.reset()
    return rerank_module_server


def rerank_kwargs(kind: str, url: str) -> dict[str, Any]:
    """Reranker arguments for the router layout (model id) or a TEI re-ranker (endpoint URL)."""
    if kind == "router":
        return {"model": RERANK_MODEL, "router_url": url}
    return {"endpoint_url": url}


def rerank_scores(server: ServerHandle, query: str, texts: Sequence[str]) -> list[float]:
    """The relevance probabilities the server's deterministic backend gives ``texts``."""
    spec = server.config.model(RERANK_MODEL)
    assert spec is not None
    return [float(np.float32(sigmoid(spec.backend.score(query, t)))) for t in texts]
