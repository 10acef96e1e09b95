"""Fixtures of the adapter tests (shared with the other framework's): see ``tests.adapters``."""

from tests.adapters import module_server, rerank_module_server, rerank_srv, srv, target

__all__ = ["module_server", "rerank_module_server", "rerank_srv", "srv", "target"]
