"""The local inference server behind ``hfrag serve``.

One faithful model of the servers hfrag talks to (the HF router's layout, TEI and TGI), over
pluggable backends. Tests talk HTTP to it, benchmarks load it, and it is the offline default.
Its modules, by what they are::

    routes (one per protocol)  routes_tei (TEI embed/rerank/predict/info), routes_cohere
                               (/v1/rerank, /v2/rerank), routes_openai (embeddings, /v1/models),
                               routes_tgi (TGI generate/info), routes_chat (OpenAI chat),
                               routes_router (/hf-inference/models/...), routes_hub (Hub API),
                               routes_sparse (/embed_sparse, /tokenize)
    wire rules                 validation, generation (TGI's stopping and events), streaming
                               (SSE sending), chat_format (tools and response_format: the
                               request's constraint and reading answers back), inference
    serving                    app (route table, request pipeline), runtime (model threads,
                               dynamic batching), deployments (one listener per deployment),
                               config, state, logs
    real backends              backends_onnx (MiniLM on onnxruntime / numpy, cosine scorer),
                               backends_llama (SmolLM2 on llama.cpp), grammars (tool calls
                               and response_format as llama.cpp grammars), backends_sparse
                               (SPLADE-tiny; its LexicalSparse is a double), models_real
    test doubles               hashing (HashingBackend), tools (RuleTools: the tool-call rule),
                               traits (reasoning-model answers of hashing ids), faults
                               (injected failures), testing (in-process harness)

What runs under ``--models real``: the routes, wire rules and serving modules above, with
``models_real``, ``backends_onnx``, ``backends_llama`` and ``grammars``; ``hashing`` and ``tools``
are never imported there (``tests/server/test_real_tools.py`` checks ``sys.modules``). Handlers
only parse, ``admit`` what a request carries, compute and answer; faults, the simulated
latency and the counters are applied around them by the request pipeline in ``app`` (a stream's
injected cut by ``streaming``, the SSE sender), and stay off unless asked for.

Needs the ``server`` extra (aiohttp)::

    from hfrag.server import ServerConfig, FaultConfig
    from hfrag.server.testing import serve_deployments, serve_in_thread

    with serve_in_thread(ServerConfig.default(primary="hfrag/hash-rerank")) as srv:
        ...  # one listener with every route: point hfrag at srv.url
    with serve_deployments(ServerConfig.default()) as srv:
        ...  # hfrag serve's layout: srv.urls["embed"], ["rerank"], ["generate"], ["router"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hfrag.server.backends import EmbeddingBackend, GenerationParams, PairScorer, TextGenerator
from hfrag.server.config import ModelSpec, ServerConfig, default_models
from hfrag.server.faults import FaultConfig

if TYPE_CHECKING:
    from hfrag.server.hashing import HashingBackend, extract_answer

__all__ = [
    "EmbeddingBackend",
    "FaultConfig",
    "GenerationParams",
    "HashingBackend",
    "ModelSpec",
    "PairScorer",
    "ServerConfig",
    "TextGenerator",
    "build_app",
    "default_models",
    "extract_answer",
]


def __getattr__(name: str) -> object:
    # The aiohttp app is imported lazily so that ``HashingBackend`` (numpy only) can compute
    # expected vectors in tests that run without the ``server`` extra; the test doubles are, so
    # that a ``--models real`` server never loads them.
    if name == "build_app":
        from hfrag.server.app import build_app

        return build_app
    if name in ("HashingBackend", "extract_answer"):
        from hfrag.server import hashing

        return getattr(hashing, name)
    raise AttributeError(f"module 'hfrag.server' has no attribute {name!r}")
