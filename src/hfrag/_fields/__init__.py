"""The settings the framework adapters share, declared once as pydantic mixins.

- :mod:`~hfrag._fields.connection`: where and how to connect (every adapter).
- :mod:`~hfrag._fields.embeddings`: the embedding options and the client built from them.
- :mod:`~hfrag._fields.rerank`: the rerank options, what to keep of a ranking, and the client.
- :mod:`~hfrag._fields.generation`: the LLM options and the chat/text clients built from them.
- :mod:`~hfrag._fields.sparse`: the sparse-embedding options and their client.

This package imports pydantic (both frameworks bring it) and neither framework; ``import hfrag``
does not import it.
"""

from hfrag._fields.connection import ADAPTER_CONFIG, InferenceFields, sensitive_headers
from hfrag._fields.embeddings import EmbeddingFields
from hfrag._fields.generation import GenerationFields
from hfrag._fields.rerank import RankingFields, RerankFields
from hfrag._fields.sparse import SparseFields

__all__ = [
    "ADAPTER_CONFIG",
    "EmbeddingFields",
    "GenerationFields",
    "InferenceFields",
    "RankingFields",
    "RerankFields",
    "SparseFields",
    "sensitive_headers",
]
