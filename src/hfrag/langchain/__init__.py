"""LangChain adapters of hfrag (needs ``langchain-core``: ``pip install 'hfrag[langchain]'``).

Importing this package imports LangChain only, never LlamaIndex.
"""

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hfrag.langchain needs langchain-core: pip install 'hfrag[langchain]'"
    ) from exc

from hfrag.langchain.chat_models import ChatHuggingFaceInference
from hfrag.langchain.embeddings import HuggingFaceInferenceEmbeddings
from hfrag.langchain.llms import HuggingFaceInferenceLLM
from hfrag.langchain.rerank import HuggingFaceInferenceCrossEncoder, HuggingFaceInferenceReranker

__all__ = [
    "ChatHuggingFaceInference",
    "HuggingFaceInferenceCrossEncoder",
    "HuggingFaceInferenceEmbeddings",
    "HuggingFaceInferenceLLM",
    "HuggingFaceInferenceReranker",
    "HuggingFaceInferenceSparseEmbeddings",
    "HuggingFaceInferenceTextSplitter",
]

# Imported on first use: they need langchain-qdrant and langchain-text-splitters, which a user
# of the other classes may not have.
_LAZY = {
    "HuggingFaceInferenceSparseEmbeddings": "hfrag.langchain.sparse",
    "HuggingFaceInferenceTextSplitter": "hfrag.langchain.splitters",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hfrag.langchain' has no attribute {name!r}")
