"""Every ```python block of README.md and docs/*.md runs, against local servers, as a reader would.

The conventions (fixed for everyone who writes a README section):

- ``$HFRAG_ROUTER_URL`` points at a local server that serves every model id the README may use,
  each with the right kind (embeddings, reranker, LLM), plus hfrag's own ``hfrag/hash-*``.
- ``http://127.0.0.1:8080`` is a server whose primary model embeds (TEI), ``:8081`` reranks
  (TEI), ``:8082`` generates (TGI / OpenAI-compatible); the block's source is rewritten to the
  test servers' URLs, route suffixes included.
- A block whose first line is ``# In Jupyter or an async function:`` runs inside an async function.
- A block whose first line is ``# not run: <reason>`` is skipped with that reason.
- A block right after a paragraph ``Before:`` (docs/MIGRATING.md) is another package's code.
- Each block runs in a fresh namespace (an undefined name fails) with no ambient token.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hfrag.server import HashingBackend, ModelSpec, ServerConfig
from hfrag.server.config import DEFAULT_PROMPTS, default_models
from hfrag.server.testing import ServerHandle, serve_in_thread
from hfrag.server.tools import RuleTools

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
BEFORE_MARK = "Before:"
ASYNC_MARK = "# In Jupyter or an async function:"
SKIP_MARK = "# not run:"

#: The model ids README examples may name on the router, by kind (see the project's conventions).
ROUTER_MODELS = {
    "BAAI/bge-small-en-v1.5": "embed",
    "intfloat/multilingual-e5-small": "embed",
    "sentence-transformers/all-MiniLM-L6-v2": "embed",
    "BAAI/bge-reranker-v2-m3": "rerank",
    "meta-llama/Llama-3.1-8B-Instruct": "generate",
    "HuggingFaceTB/SmolLM3-3B": "generate",
}
#: The endpoint URLs README examples may use, and the primary model of the server behind each.
ENDPOINTS = {
    "http://127.0.0.1:8080": "hfrag/hash-embed",
    "http://127.0.0.1:8081": "hfrag/hash-rerank",
    "http://127.0.0.1:8082": "hfrag/extractive-gen",
}


@dataclass(frozen=True)
class Block:
    heading: str
    index: int  # 1-based, within its heading
    line: int
    source: str
    page: str = "README.md"
    before: bool = False  # shown as the code before migrating to hfrag

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-") or "top"
        prefix = "" if self.page == "README.md" else self.page.removesuffix(".md").lower() + "-"
        return f"{prefix}{slug}-{self.index}"


def python_blocks(text: str, page: str = "README.md") -> list[Block]:
    """Every ```python block of a Markdown text, named by its heading and position under it."""
    blocks: list[Block] = []
    heading, counts = "", {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        elif line.strip() == "```python":
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            counts[heading] = counts.get(heading, 0) + 1
            source = "\n".join(lines[start:end]) + "\n"
            previous = next((p.strip() for p in reversed(lines[:i]) if p.strip()), "")
            before = previous == BEFORE_MARK
            blocks.append(Block(heading, counts[heading], start + 1, source, page, before))
            i = end
        i += 1
    return blocks


def all_models() -> list[ModelSpec]:
    """hfrag's default models plus every README model id, each of its kind."""
    backend = HashingBackend()
    models = default_models()
    for name, kind in ROUTER_MODELS.items():
        prompts = dict(DEFAULT_PROMPTS) if kind == "embed" else {}
        extra: dict[str, Any] = {}
        if kind == "generate":
            extra = {"max_input_length": 4096, "max_total_tokens": 8192}
        served = RuleTools(backend) if kind == "generate" else backend
        models.append(ModelSpec(name, kind, served, prompts=prompts, **extra))  # type: ignore[arg-type]
    return models


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServerHandle]]:
    """The router stand-in and one server per endpoint URL, for the whole module."""
    with serve_in_thread(ServerConfig(models=all_models())) as router:
        handles = {"router": router}
        with (
            serve_in_thread(
                ServerConfig(models=all_models()).with_primary(ENDPOINTS["http://127.0.0.1:8080"])
            ) as embed,
            serve_in_thread(
                ServerConfig(models=all_models()).with_primary(ENDPOINTS["http://127.0.0.1:8081"])
            ) as rerank,
            serve_in_thread(
                ServerConfig(models=all_models()).with_primary(ENDPOINTS["http://127.0.0.1:8082"])
            ) as generate,
        ):
            handles.update(
                {
                    "http://127.0.0.1:8080": embed,
                    "http://127.0.0.1:8081": rerank,
                    "http://127.0.0.1:8082": generate,
                }
            )
            yield handles


def rewrite(source: str, servers: dict[str, ServerHandle]) -> str:
    """The block with each documented endpoint URL pointing at its test server."""
    for url in ENDPOINTS:
        source = source.replace(url, servers[url].url)
        source = source.replace(url.replace("127.0.0.1", "localhost"), servers[url].url)
    return source


def run_block(block: Block, source: str) -> None:
    """Run ``source`` as the README reader would, in a fresh namespace."""
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    filename = f"{block.page}:{block.line}"
    first = block.source.lstrip().splitlines()[0] if block.source.strip() else ""
    if first.startswith(ASYNC_MARK):
        wrapped = "async def __readme_block__():\n" + textwrap.indent(source, "    ") + "    pass\n"
        exec(compile(wrapped, filename, "exec"), namespace)
        asyncio.run(namespace["__readme_block__"]())
    else:
        exec(compile(source, filename, "exec"), namespace)


def skip_reason(block: Block) -> str | None:
    """The reason a block gives for not running (its first line ``# not run: <reason>``)."""
    if block.before:
        return "the code before migrating: another package"
    first = block.source.lstrip().splitlines()[0] if block.source.strip() else ""
    if first.startswith(SKIP_MARK):
        return first[len(SKIP_MARK) :].strip() or "marked not run"
    return None


BLOCKS = [
    block
    for page in PAGES
    for block in python_blocks(page.read_text(encoding="utf-8"), page.relative_to(ROOT).name)
]


def test_readme_and_docs_have_python_blocks() -> None:
    assert len([b for b in BLOCKS if b.page == "README.md"]) >= 2
    assert len(BLOCKS) >= 40


def test_blocks_are_found_with_their_headings() -> None:
    text = (
        "# A\n```python\nx = 1\n```\n## B c\n```python\ny\n```\n"
        "```python\nz\n```\n```text\nq\n```\n"
    )
    blocks = python_blocks(text)
    assert [b.id for b in blocks] == ["a-1", "b-c-1", "b-c-2"]
    assert blocks[2].source == "z\n"


def test_a_block_after_before_is_another_packages_code() -> None:
    text = "Before:\n\n```python\nimport other\n```\n\nAfter:\n\n```python\nimport hfrag\n```\n"
    first, second = python_blocks(text, "MIGRATING.md")
    assert skip_reason(first) == "the code before migrating: another package"
    assert skip_reason(second) is None
    assert first.id == "migrating-top-1"


@pytest.fixture
def reset_frameworks() -> Iterator[None]:
    """README blocks may set LlamaIndex's global Settings; later tests must not inherit them."""
    yield
    import sys

    core = sys.modules.get("llama_index.core")
    if core is not None:
        settings = core.Settings
        settings._embed_model = None
        settings._llm = None


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
@pytest.mark.usefixtures("reset_frameworks")
def test_readme_block_runs(
    block: Block, servers: dict[str, ServerHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = skip_reason(block)
    if reason is not None:
        pytest.skip(reason)
    monkeypatch.setenv("HFRAG_ROUTER_URL", servers["router"].url)
    run_block(block, rewrite(block.source, servers))


def test_an_async_block_without_the_marker_fails() -> None:
    block = Block("x", 1, 1, "import asyncio\nawait asyncio.sleep(0)\n")
    with pytest.raises(SyntaxError):
        run_block(block, block.source)


def test_an_undefined_name_fails() -> None:
    block = Block("x", 1, 1, "vectors = client.embed(texts)\n")
    with pytest.raises(NameError):
        run_block(block, block.source)


def test_a_not_run_block_is_skipped_with_its_reason() -> None:
    assert skip_reason(Block("x", 1, 1, "# not run: needs a GPU\nraise SystemExit(1)\n")) == (
        "needs a GPU"
    )
    assert skip_reason(Block("x", 1, 1, "x = 1\n# not run: later lines do not count\n")) is None
