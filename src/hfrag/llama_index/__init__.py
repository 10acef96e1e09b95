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

__all__ = ["HuggingFaceInferenceEmbedding", "HuggingFaceInferenceLLM", "HuggingFaceInferenceRerank"]
