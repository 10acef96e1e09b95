"""The notebooks run top to bottom the way Jupyter runs them: inside a running event loop."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def _cells(path: Path) -> list[CodeType]:
    notebook = json.loads(path.read_text())
    sources = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return [compile(src, f"{path.name}[{i}]", "exec", flags) for i, src in enumerate(sources)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
async def test_notebook_runs_in_a_running_loop(path: Path) -> None:
    namespace: dict[str, Any] = {}
    for code in _cells(path):
        result = eval(code, namespace)  # a cell with top-level await returns a coroutine
        if asyncio.iscoroutine(result):
            await result
    assert namespace["hits"][0].page_content == "The Eiffel Tower is in Paris."
    assert "North Sea" in namespace["nodes"][0].node.get_content()
    assert "position" in namespace["message"]
