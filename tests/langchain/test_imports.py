"""``import hfrag.langchain`` loads LangChain only: no LlamaIndex, no local server."""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = "import json, sys; import hfrag.langchain; print(json.dumps(sorted(sys.modules)))"


def test_langchain_adapter_imports_no_other_framework() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert {"hfrag.langchain.embeddings", "hfrag._fields", "langchain_core"} <= loaded
    assert sorted(m for m in loaded if m.startswith(("llama_index", "hfrag.server"))) == []
