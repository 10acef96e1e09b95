"""Task clients: one inference task each, framework-free, over :mod:`hfrag.transport`."""

from hfrag.tasks.base import Target, TaskClient, transport_config
from hfrag.tasks.embeddings import EmbeddingOptions, EmbeddingsClient
from hfrag.tasks.rerank import RerankClient, RerankOptions, RerankResult

__all__ = [
    "EmbeddingOptions",
    "EmbeddingsClient",
    "RerankClient",
    "RerankOptions",
    "RerankResult",
    "Target",
    "TaskClient",
    "transport_config",
]
