"""LlamaIndex adapters of hfrag (needs ``llama-index-core``: ``pip install 'hfrag[llama-index]'``).

Importing this package imports LlamaIndex only, never LangChain.
"""

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hfrag.llama_index needs llama-index-core: pip install 'hfrag[llama-index]'"
    ) from exc

from hfrag.llama_index.embeddings import HuggingFaceInferenceEmbedding
from hfrag.llama_index.llms import HuggingFaceInferenceLLM
from hfrag.llama_index.rerank import HuggingFaceInferenceRerank
from hfrag.llama_index.sparse import HuggingFaceInferenceSparseEmbedding

__all__ = [
    "HuggingFaceInferenceEmbedding",
    "HuggingFaceInferenceLLM",
    "HuggingFaceInferenceRerank",
    "HuggingFaceInferenceSparseEmbedding",
    "HuggingFaceInferenceTextSplitter",
]


def __getattr__(name: str) -> object:
    # Imported on first use, like the framework's own optional parts.
    if name == "HuggingFaceInferenceTextSplitter":
        from hfrag.llama_index.splitters import HuggingFaceInferenceTextSplitter

        return HuggingFaceInferenceTextSplitter
    raise AttributeError(f"module 'hfrag.llama_index' has no attribute {name!r}")
