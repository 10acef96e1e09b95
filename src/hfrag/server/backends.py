"""Model backends of the local server: the protocols a backend satisfies, and shared helpers.

A backend is any object with the methods of one of the protocols below; the server never checks
its class, so a backend slots in by being passed in a ``ModelSpec``::

    EmbeddingBackend   tokenize, truncate_text, embed, token_embeddings     (kind "embed")
    PairScorer         tokenize, truncate_text, score                        (kind "rerank")
    TextGenerator      tokenize, render_chat, generate_tokens                (kind "generate")

The real backends are ``backends_onnx`` (MiniLM on onnxruntime or numpy, and the cosine scorer)
and ``backends_llama`` (SmolLM2 on llama.cpp); the test doubles are ``hashing.HashingBackend``
(all three protocols, no weights) and ``tools.RuleTools`` (a wrapper giving a generator the
documented tool-call rule). A generator is handed the chat request's tools and
``response_format`` as ``GenerationParams.constraint`` (see ``chat_format``); what it makes of
them is its own business: llama.cpp decodes under a grammar, the rule wrapper applies its rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from hfrag.server.chat_format import ChatConstraint

__all__ = [
    "EmbeddingBackend",
    "GenerationParams",
    "PairScorer",
    "TextGenerator",
    "message_text",
    "normalize_rows",
    "sigmoid",
]

FloatArray = npt.NDArray[np.float32]


def sigmoid(x: float) -> float:
    """The logistic function, safe for large magnitudes."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@dataclass
class GenerationParams:
    """Decoding parameters a generator may honour; the server enforces the stopping ones.

    ``max_new_tokens`` and ``stop`` are applied by the server to whatever a backend yields, so a
    backend may ignore them; sampling parameters are passed through for real models.
    """

    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    do_sample: bool = False
    #: What a chat answer must be (tools offered, ``response_format``); None for free text.
    constraint: ChatConstraint | None = None


@runtime_checkable
class EmbeddingBackend(Protocol):
    """Turns texts into pooled vectors and per-token vectors."""

    dim: int

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text``; their count is what ``max_input_length`` limits."""
        ...

    def truncate_text(self, text: str, max_tokens: int, direction: str = "right") -> str:
        """``text`` cut to its first (``right``) or last (``left``) ``max_tokens`` tokens."""
        ...

    def embed(self, texts: Sequence[str], normalize: bool = True) -> FloatArray:
        """Pooled embeddings, shape ``(len(texts), dim)``."""
        ...

    def token_embeddings(self, text: str) -> FloatArray:
        """Per-token vectors of a model without a pooling head, shape ``(n_tokens, dim)``."""
        ...


@runtime_checkable
class PairScorer(Protocol):
    """Scores (query, text) pairs like a cross-encoder with one output label."""

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text``."""
        ...

    def truncate_text(self, text: str, max_tokens: int, direction: str = "right") -> str:
        """``text`` cut to ``max_tokens`` tokens."""
        ...

    def score(self, query: str, text: str) -> float:
        """Raw relevance logit of ``text`` for ``query``."""
        ...


@runtime_checkable
class TextGenerator(Protocol):
    """Generates text token by token from a prompt."""

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text`` (prompt length accounting)."""
        ...

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The prompt for a list of OpenAI-style chat messages (the model's chat template)."""
        ...

    def generate_tokens(self, prompt: str, params: GenerationParams) -> Iterable[str]:
        """Token texts of the continuation; the concatenation is the generated text.

        The server pulls one token at a time on its generation thread and streams each at
        once, and closes the iterator as soon as it needs no more (``max_new_tokens``, a stop
        sequence, a client that left): a generator that makes tokens lazily suits it best.
        """
        ...


def normalize_rows(matrix: FloatArray) -> FloatArray:
    """Divide each row by its L2 norm (rows of zeros stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: FloatArray = (matrix / norms).astype(np.float32)
    return out


def message_text(content: Any) -> str:
    """The text of a chat message ``content``: a string or a list of ``{"type": "text"}`` parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        ]
        return "\n".join(texts)
    return str(content)
