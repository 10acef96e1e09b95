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
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    collect,
)
from hfrag.tasks.text_generation import TextGenerationClient

__all__ = [
    "Accumulator",
    "ChatClient",
    "Chunk",
    "EmbeddingOptions",
    "EmbeddingsClient",
    "Finish",
    "GenerationOptions",
    "GenerationOutput",
    "Target",
    "TaskClient",
    "TextDelta",
    "TextGenerationClient",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "collect",
    "transport_config",
]
