"""``import hfrag.llama_index`` loads LlamaIndex only: no LangChain, no local server."""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = "import json, sys; import hfrag.llama_index; print(json.dumps(sorted(sys.modules)))"


def test_llama_index_adapter_imports_no_other_framework() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert {"hfrag.llama_index.embeddings", "hfrag._fields", "llama_index.core"} <= loaded
    leaked = [m for m in loaded if m.split(".")[0] in ("langchain", "langchain_core")]
    assert sorted(leaked + [m for m in loaded if m.startswith("hfrag.server")]) == []
