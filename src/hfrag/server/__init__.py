"""The local inference server behind ``hfrag serve``.

One faithful model of the servers hfrag talks to (the HF router's ``hf-inference`` layout, TEI
and TGI), over pluggable backends, with reproducible fault injection. Tests talk HTTP to it,
benchmarks load it, and it is the offline default endpoint.

Needs the ``server`` extra (aiohttp)::

    from hfrag.server import ServerConfig, FaultConfig
    from hfrag.server.testing import serve_in_thread

    with serve_in_thread(ServerConfig.default(primary="hfrag/hash-rerank")) as srv:
        ...  # point hfrag at srv.url
"""

from __future__ import annotations

from hfrag.server.backends import (
    EmbeddingBackend,
    GenerationParams,
    HashingBackend,
    PairScorer,
    TextGenerator,
    extract_answer,
)
from hfrag.server.config import ModelSpec, ServerConfig, default_models
from hfrag.server.faults import FaultConfig

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
    # expected vectors in tests that run without the ``server`` extra.
    if name == "build_app":
        from hfrag.server.app import build_app

        return build_app
    raise AttributeError(f"module 'hfrag.server' has no attribute {name!r}")
