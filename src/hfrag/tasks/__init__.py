"""Task clients: one inference task each, framework-free, over :mod:`hfrag.transport`."""

from hfrag.tasks.base import Target, TaskClient, transport_config
from hfrag.tasks.chat import ChatClient
from hfrag.tasks.embeddings import EmbeddingOptions, EmbeddingsClient
from hfrag.tasks.generation import (
    Accumulator,
    Chunk,
    Finish,
    GenerationOptions,
    GenerationOutput,
    LogprobsDelta,
    ReasoningDelta,
    TextDelta,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    Usage,
    collect,
)
from hfrag.tasks.lengths import LongInputWarning
from hfrag.tasks.rerank import RerankClient, RerankOptions, RerankResult
from hfrag.tasks.sparse import SparseEmbeddingsClient, SparseOptions, SparseVector
from hfrag.tasks.structured import StructuredAnswer, StructuredOutputError, StructuredSpec
from hfrag.tasks.text_generation import TextGenerationClient
from hfrag.tasks.tokens import Token, TokenizerClient

__all__ = [
    "Accumulator",
    "ChatClient",
    "Chunk",
    "EmbeddingOptions",
    "EmbeddingsClient",
    "Finish",
    "GenerationOptions",
    "GenerationOutput",
    "LogprobsDelta",
    "LongInputWarning",
    "ReasoningDelta",
    "RerankClient",
    "RerankOptions",
    "RerankResult",
    "SparseEmbeddingsClient",
    "SparseOptions",
    "SparseVector",
    "StructuredAnswer",
    "StructuredOutputError",
    "StructuredSpec",
    "Target",
    "TaskClient",
    "TextDelta",
    "TextGenerationClient",
    "Token",
    "TokenLogprob",
    "TokenizerClient",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "collect",
    "transport_config",
]
