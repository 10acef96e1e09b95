"""The settings the framework adapters share, declared once as pydantic mixins.

- :mod:`~hfrag._fields.connection`: where and how to connect (every adapter).
- :mod:`~hfrag._fields.embeddings`: the embedding options and the client built from them.
- :mod:`~hfrag._fields.generation`: the LLM options and the chat/text clients built from them.

This package imports pydantic (both frameworks bring it) and neither framework; ``import hfrag``
does not import it.
"""

from hfrag._fields.connection import ADAPTER_CONFIG, InferenceFields, sensitive_headers
from hfrag._fields.embeddings import EmbeddingFields
from hfrag._fields.generation import GenerationFields

__all__ = [
    "ADAPTER_CONFIG",
    "EmbeddingFields",
    "GenerationFields",
    "InferenceFields",
    "sensitive_headers",
]
