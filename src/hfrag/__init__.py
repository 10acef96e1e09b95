"""hfrag: Hugging Face hosted inference (embeddings, LLMs, rerankers) for RAG pipelines.

``import hfrag`` loads neither LangChain nor LlamaIndex; the adapters live in
:mod:`hfrag.langchain` and :mod:`hfrag.llama_index`.
"""

from hfrag._version import __version__
from hfrag.errors import (
    AuthenticationError,
    BackendError,
    BatchTooLargeError,
    ConfigurationError,
    HfragError,
    InferenceConnectionError,
    InferenceError,
    InferenceTimeoutError,
    InputError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    RedirectError,
    UnavailableError,
)

__all__ = [
    "AuthenticationError",
    "BackendError",
    "BatchTooLargeError",
    "ConfigurationError",
    "HfragError",
    "InferenceConnectionError",
    "InferenceError",
    "InferenceTimeoutError",
    "InputError",
    "InvalidRequestError",
    "MalformedResponseError",
    "NotFoundError",
    "PaymentRequiredError",
    "RateLimitError",
    "RedirectError",
    "UnavailableError",
    "__version__",
]
