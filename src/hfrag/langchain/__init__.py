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

__all__ = ["ChatHuggingFaceInference", "HuggingFaceInferenceEmbeddings", "HuggingFaceInferenceLLM"]
