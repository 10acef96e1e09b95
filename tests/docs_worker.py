"""Runs documentation examples as written, next to ``hfrag serve --models real``'s listeners.

Started by ``tests/test_readme.py`` as ``python -m tests.docs_worker`` (in a private network
namespace when the machine has one, so the documented ports are free). It serves the real models
on the documented ports, prints ``ready`` on its protocol stream, then reads one JSON request a
line (``{"source", "filename", "run_async"}``) and answers one JSON line each
(``{"ok", "error", "output"}``). The examples' own output is captured, never mixed with answers;
anything written below Python (llama.cpp, onnxruntime) goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
import textwrap
import traceback
from collections.abc import Iterator
from typing import Any

from hfrag.server import ModelSpec, ServerConfig
from hfrag.server.models_real import real_models
from hfrag.server.testing import DeploymentsHandle, serve_deployments

HOST = "127.0.0.1"
BASE_PORT = 8080
#: The listeners ``hfrag serve --models real --port 8080`` prints, and what each serves.
LISTENERS = {8080: "embed", 8081: "rerank", 8082: "generate", 8084: "sparse"}
ROUTER_PORT = 8083
ROUTER_URL = f"http://{HOST}:{ROUTER_PORT}"

#: The model ids the examples name on the router, by kind; the local router serves each with
#: the real model of that kind (the examples' ids are the Hub's; the answers are the real models').
ROUTER_MODELS = {
    "BAAI/bge-small-en-v1.5": "embed",
    "intfloat/multilingual-e5-small": "embed",
    "BAAI/bge-reranker-v2-m3": "rerank",
    "meta-llama/Llama-3.1-8B-Instruct": "generate",
    "HuggingFaceTB/SmolLM3-3B": "generate",
}
ASYNC_WRAPPER = "async def __doc_block__():\n{body}    pass\n"


def router_models(real: list[ModelSpec]) -> list[ModelSpec]:
    """The real models under their own ids and under every id the examples name."""
    by_kind = {spec.kind: spec for spec in real}
    aliases = [
        ModelSpec(
            name,
            kind,  # type: ignore[arg-type]
            by_kind[kind].backend,
            max_input_length=by_kind[kind].max_input_length,
            max_total_tokens=by_kind[kind].max_total_tokens,
        )
        for name, kind in ROUTER_MODELS.items()
    ]
    return [*real, *aliases]


@contextlib.contextmanager
def listeners() -> Iterator[DeploymentsHandle]:
    """``hfrag serve --models real --port 8080``'s layout, with the examples' ids on the router."""
    config = ServerConfig(models=router_models(real_models()))
    with serve_deployments(config, port=BASE_PORT) as handle:
        yield handle


def reset_frameworks() -> None:
    """Examples may set LlamaIndex's global Settings; the next example must not inherit them."""
    core = sys.modules.get("llama_index.core")
    if core is not None:
        core.Settings._embed_model = None
        core.Settings._llm = None


def run(source: str, filename: str, run_async: bool) -> None:
    """Run ``source`` in a fresh namespace, as a reader would (inside a coroutine if asked)."""
    namespace: dict[str, Any] = {"__name__": "__doc_example__"}
    if run_async:
        wrapped = ASYNC_WRAPPER.format(body=textwrap.indent(source, "    "))
        exec(compile(wrapped, filename, "exec"), namespace)
        asyncio.run(namespace["__doc_block__"]())
    else:
        exec(compile(source, filename, "exec"), namespace)


def answer(request: dict[str, Any]) -> dict[str, Any]:
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            run(request["source"], request["filename"], bool(request["run_async"]))
    except BaseException:  # the example's failure is the answer, whatever it is
        return {"ok": False, "error": traceback.format_exc(), "output": output.getvalue()}
    finally:
        reset_frameworks()
    return {"ok": True, "error": "", "output": output.getvalue()}


def main() -> None:
    # Answers go to the original stdout; anything else written to fd 1 goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        os.environ.pop(name, None)
    os.environ["HF_TOKEN_PATH"] = os.devnull  # no saved login either
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HFRAG_ROUTER_URL"] = ROUTER_URL  # as a reader would export it
    with listeners():
        protocol.write("ready\n")
        for line in sys.stdin:
            if line.strip():
                protocol.write(json.dumps(answer(json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
