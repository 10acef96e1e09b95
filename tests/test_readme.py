"""Every ```python block of README.md and docs/*.md runs as written against the real models.

Nothing in a block is rewritten: the blocks run in ``tests/docs_worker.py``, next to the
listeners ``hfrag serve --models real`` prints (``http://127.0.0.1:8080`` TEI embeddings,
``:8081`` TEI re-ranker, ``:8082`` TGI with chat, ``:8083`` the router layout, which serves the
real models under every model id the examples name; ``HFRAG_ROUTER_URL`` points at it). The
worker runs in a private network namespace (``unshare -rn``) where the machine allows one, so
the documented ports are free whatever else runs; otherwise on the machine's loopback.

The conventions (fixed for everyone who writes an example):

- A block whose first line is ``# In Jupyter or an async function:`` runs inside an async function.
- A block whose first line is ``# not run: <reason>`` is skipped with that reason.
- A block right after a paragraph ``Before:`` (docs/MIGRATING.md) is another package's code.
- Each block runs in a fresh namespace (an undefined name fails) with no ambient token.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tests.docs_worker import LISTENERS, ROUTER_PORT, run

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
ASYNC_MARK = "# In Jupyter or an async function:"
SKIP_MARK = "# not run:"
BEFORE_MARK = "Before:"
#: Seconds one block may take (SmolLM2 writes about 60 tokens a second on an idle core).
BLOCK_TIMEOUT = 240.0
STARTUP_TIMEOUT = 240.0


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


def run_block(block: Block, source: str) -> None:
    """Run ``source`` here, as the worker does (for the tests of the conventions)."""
    run(source, f"{block.page}:{block.line}", is_async(block))


def is_async(block: Block) -> bool:
    first = block.source.lstrip().splitlines()[0] if block.source.strip() else ""
    return first.startswith(ASYNC_MARK)


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


def namespace_prefix() -> list[str]:
    """``unshare`` arguments for a private network namespace with loopback up, if allowed."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return []
    probe = subprocess.run(
        [unshare, "-rn", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30
    )
    if probe.returncode != 0:
        return []
    return [unshare, "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']


class Worker:
    """The worker process: sends a block, waits for its answer (at most ``BLOCK_TIMEOUT``)."""

    def __init__(self, prefix: list[str], log: IO[str]) -> None:
        cmd = [*prefix, sys.executable, "-m", "tests.docs_worker"]
        self.log = log
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._next(STARTUP_TIMEOUT)
        assert ready == "ready\n", f"the worker did not start: {ready!r}\n{self.stderr()}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def _next(self, timeout: float) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            return "(no answer within the time limit)"

    def stderr(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def run(self, block: Block) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.poll() is None, self.stderr()
        request = {
            "source": block.source,
            "filename": f"{block.page}:{block.line}",
            "run_async": is_async(block),
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self._next(BLOCK_TIMEOUT)
        if not line.startswith("{"):
            return {"ok": False, "error": f"{line}\n{self.stderr()}", "output": ""}
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    """The worker and its real-model listeners, for the whole module."""
    pytest.importorskip("llama_cpp", reason="the examples run on the real models: hfrag[local]")
    from hfrag.server.models_real import missing_runtimes

    missing = missing_runtimes()
    if missing:
        pytest.skip("the examples run on the real models, which need " + ", ".join(missing))
    prefix = namespace_prefix()
    if not prefix:
        busy = [port for port in [*LISTENERS, ROUTER_PORT] if port_in_use(port)]
        assert not busy, f"the examples' ports {busy} are taken and no network namespace is allowed"
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        handle = Worker(prefix, log)
        try:
            yield handle
        finally:
            handle.close()


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_doc_block_runs_as_written(block: Block, worker: Worker) -> None:
    reason = skip_reason(block)
    if reason is not None:
        pytest.skip(reason)
    answer = worker.run(block)
    assert answer["ok"], f"{block.page}:{block.line}\n{answer['error']}\n{answer['output']}"


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


def test_the_documented_ports_serve_the_real_models(worker: Worker) -> None:
    source = textwrap.dedent(
        """
        import httpx

        served = {port: httpx.get(f"http://127.0.0.1:{port}/info").json()["model_id"]
                  for port in (8080, 8081, 8082)}
        assert served == {
            8080: "sentence-transformers/all-MiniLM-L6-v2",
            8081: "hfrag/minilm-cosine-rerank",
            8082: "HuggingFaceTB/SmolLM2-135M-Instruct",
        }, served
        import os
        assert os.environ["HFRAG_ROUTER_URL"] == "http://127.0.0.1:8083"
        assert "HF_TOKEN" not in os.environ
        """
    )
    answer = worker.run(Block("ports", 1, 1, source, "test"))
    assert answer["ok"], answer["error"]


def test_a_failing_block_is_reported_with_its_place(worker: Worker) -> None:
    answer = worker.run(Block("x", 1, 7, "print('before')\nraise RuntimeError('boom')\n", "P.md"))
    assert not answer["ok"]
    assert 'File "P.md:7", line 2' in answer["error"]
    assert "RuntimeError: boom" in answer["error"]
    assert answer["output"] == "before\n"
