"""Execute the notebooks in place and save them with their outputs (plots included).

    .venv/bin/python scripts/execute_notebooks.py [notebooks/NAME.ipynb ...]

The committed notebooks are made this way, with the real models when the ``local`` extra is
installed (``HFRAG_NOTEBOOK_MODELS=hash`` for the hashing ones); ``tests/test_notebooks.py``
executes them the same way without saving.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def execute(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    nbformat.write(notebook, path)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s, {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for p in paths:
        execute(p)
