"""Task clients: one inference task each, framework-free, over :mod:`hfrag.transport`."""

from hfrag.tasks.base import Target, TaskClient, transport_config
from hfrag.tasks.embeddings import EmbeddingOptions, EmbeddingsClient

__all__ = ["EmbeddingOptions", "EmbeddingsClient", "Target", "TaskClient", "transport_config"]
