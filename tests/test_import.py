"""``import hfrag`` and ``import hfrag.transport`` load no framework and no server dependency."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("langchain_core", "langchain", "llama_index", "aiohttp", "hfrag.server")

_CHILD = """
import json, sys
for name in sys.argv[1:]:
    __import__(name)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    "modules",
    [["hfrag"], ["hfrag.transport"], ["hfrag.tasks"], ["hfrag", "hfrag.transport", "hfrag.errors"]],
    ids=lambda m: "+".join(m),
)
def test_import_loads_no_framework(modules: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *modules],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(out.stdout))
    assert set(modules) <= loaded  # the child really imported what it was asked to
    leaked = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN))
    assert leaked == []
