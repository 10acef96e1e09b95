"""The hashing backend: a test double for every model kind, with no model weights.

``HashingBackend`` satisfies ``EmbeddingBackend``, ``PairScorer`` and ``TextGenerator`` (see
``backends``). It serves the ``--models hash`` server and the tests; it never runs under
``--models real``. Everything it returns is deterministic and can be recomputed by a test from
the same public methods:

- ``tokenize(text)`` splits on words (``\\w+``) and single punctuation marks; it is what
  ``max_input_length`` counts and what truncation cuts.
- ``token_embeddings(text)`` is an ``(n_tokens, dim)`` float32 array, one L2-normalised row per
  token: the signed feature hash (blake2b, never Python's ``hash``) of the lower-cased word plus
  its character 3-grams. A text without tokens is embedded as one pseudo-token ``[EMPTY]``.
- ``embed(texts, normalize=False)[i] == token_embeddings(texts[i]).mean(axis=0)`` (mean pooling;
  CLS pooling would be row 0), and ``normalize=True`` divides that by its L2 norm.
- ``score(query, text) == 10 * cos(embed([query])[0], embed([text])[0]) - 3``: a raw logit, so
  ``sigmoid(score)`` is about 0.05 for unrelated texts and rises with lexical overlap.
- ``generate_tokens(prompt)`` is extractive: it answers with the context sentence that shares
  the most words with the question (see ``extract_answer``), one whitespace-led token at a time.
  It ignores tools and ``response_format``; ``tools.RuleTools`` wraps it to answer those.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from hfrag.server.backends import GenerationParams, message_text, normalize_rows

__all__ = ["NO_ANSWER", "HashingBackend", "extract_answer"]

FloatArray = npt.NDArray[np.float32]

_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_OUTPUT_TOKEN_RE = re.compile(r"\s*\S+")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_LABEL_RE = re.compile(r"^\s*(context|question|answer|documents?|passage|query)\s*:\s*", re.I)
_QUESTION_MARKER_RE = re.compile(r"question\s*:\s*", re.I)
_CHAT_MARKER_RE = re.compile(r"^<\|[a-z_]+\|>$")
_STOPWORDS = frozenset(
    (  # noqa: SIM905 - a word list reads better as text
        "a an and are as at be by can did do does for from has have how i in is it its of on or "
        "that the their this to was were what when where which who whom why will with you your "
        "answer question context use following only based given please"
    ).split(" ")
)
EMPTY_TOKEN = "[EMPTY]"
NO_ANSWER = "I don't know."


class HashingBackend:
    """Deterministic embedding, scoring and extractive generation with no model weights.

    Args:
        dim: embedding dimension.
        seed: mixed into every hash, so two seeds give unrelated vector spaces.
        ngram: character n-gram size added to each word's features (0 disables them).

    Example::

        b = HashingBackend(dim=384)
        v = b.embed(["hello world"])            # (1, 384) float32, unit norm
        t = b.token_embeddings("hello world")   # (2, 384): v == t.mean(0) / norm
    """

    def __init__(self, dim: int = 384, seed: int = 0, ngram: int = 3) -> None:
        if dim < 1:
            raise ValueError("dim must be at least 1")
        self.dim = dim
        self.seed = seed
        self.ngram = ngram
        self._key = seed.to_bytes(8, "little", signed=True)
        self._cache: dict[str, FloatArray] = {}

    def __repr__(self) -> str:
        return f"HashingBackend(dim={self.dim}, seed={self.seed})"

    # -- tokens ---------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """Word tokens (``\\w+``) and single punctuation marks, case preserved."""
        return _TOKEN_RE.findall(text)

    def truncate_text(self, text: str, max_tokens: int, direction: str = "right") -> str:
        """Keep the first (``right``: cut on the right) or last (``left``) ``max_tokens`` tokens.

        The result is the substring of ``text`` spanning the kept tokens, so
        ``tokenize(truncate_text(t, n)) == tokenize(t)[:n]``.
        """
        spans = [m.span() for m in _TOKEN_RE.finditer(text)]
        if len(spans) <= max_tokens:
            return text
        if max_tokens <= 0:
            return ""
        kept = spans[-max_tokens:] if direction.lower() == "left" else spans[:max_tokens]
        return text[kept[0][0] : kept[-1][1]]

    # -- vectors --------------------------------------------------------------------------------

    def _hash(self, feature: str) -> int:
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "little")

    def _token_vector(self, token: str) -> FloatArray:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = token.lower()
        vec = np.zeros(self.dim, dtype=np.float64)
        features = [("w:" + word, 1.0)]
        if self.ngram > 0:
            padded = f"<{word}>"
            grams = [
                padded[i : i + self.ngram] for i in range(max(1, len(padded) - self.ngram + 1))
            ]
            features.extend(("c:" + g, 0.5) for g in grams)
        for feature, weight in features:
            h = self._hash(feature)
            sign = 1.0 if (h >> 63) & 1 else -1.0
            vec[h % self.dim] += sign * weight
        norm = float(np.linalg.norm(vec))
        out = (vec / norm if norm > 0 else vec).astype(np.float32)
        out.setflags(write=False)
        if len(self._cache) < 200_000:
            self._cache[token] = out
        return out

    def token_embeddings(self, text: str) -> FloatArray:
        """One unit-norm float32 row per token of ``tokenize(text)`` (``[EMPTY]`` if none)."""
        tokens = self.tokenize(text) or [EMPTY_TOKEN]
        return np.stack([self._token_vector(t) for t in tokens]).astype(np.float32)

    def embed(self, texts: Sequence[str], normalize: bool = True) -> FloatArray:
        """Mean of ``token_embeddings`` per text, L2-normalised when ``normalize``."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts, not a string")
        out: FloatArray = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.token_embeddings(text).mean(axis=0)
        if normalize:
            out = normalize_rows(out)
        return out

    # -- scoring --------------------------------------------------------------------------------

    def score(self, query: str, text: str) -> float:
        """Raw logit ``10 * cosine(embed(query), embed(text)) - 3``."""
        vecs = self.embed([query, text], normalize=True)
        cos = float(np.dot(vecs[0].astype(np.float64), vecs[1].astype(np.float64)))
        return 10.0 * cos - 3.0

    # -- generation -----------------------------------------------------------------------------

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """A minimal chat template: ``<|role|>`` marker lines, each followed by the content."""
        parts: list[str] = []
        for message in messages:
            parts.append(f"<|{message.get('role', 'user')}|>")
            parts.append(message_text(message.get("content")))
        parts.append("<|assistant|>")
        return "\n".join(parts) + "\n"

    def generate_tokens(self, prompt: str, params: GenerationParams) -> Iterator[str]:
        """Yield the extractive answer to ``prompt`` (see ``extract_answer``) token by token.

        Tokens are whitespace-led chunks (``" capital"``), so their concatenation is exactly the
        answer. Sampling parameters are ignored: the output is the same for every seed.
        """
        yield from _OUTPUT_TOKEN_RE.findall(extract_answer(prompt))


def _content_words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w+", text)} - _STOPWORDS


def _sentences(text: str) -> list[str]:
    out = []
    for raw in _SENTENCE_SPLIT_RE.split(text):
        sentence = _LABEL_RE.sub("", raw).strip()
        if sentence:
            out.append(sentence)
    return out


def extract_answer(prompt: str) -> str:
    """The deterministic answer of the extractive generator to ``prompt``.

    The prompt is split into sentences (after ``.!?`` and at newlines; chat marker lines and
    ``Context:``-style labels dropped). The question is the text after the last ``Question:``
    marker (up to the line end or ``Answer:``), else the last sentence containing ``?``, else the
    last sentence. The answer is the other sentence sharing the most non-stopword words with the
    question (the earliest on ties); if none shares a word, it is ``"I don't know."``.
    """
    lines = [ln for ln in prompt.splitlines() if not _CHAT_MARKER_RE.match(ln.strip())]
    text = "\n".join(lines)
    markers = list(_QUESTION_MARKER_RE.finditer(text))
    if markers:
        last = markers[-1]
        rest = text[last.end() :]
        question = re.split(r"\n|answer\s*:", rest, maxsplit=1, flags=re.I)[0].strip()
        sentences = _sentences(text[: last.start()] + "\n" + rest[len(question) :])
    else:
        sentences = _sentences(text)
        if not sentences:
            return NO_ANSWER
        asking = [i for i, s in enumerate(sentences) if "?" in s]
        question = sentences.pop(asking[-1] if asking else len(sentences) - 1)
    q_words = _content_words(question)
    best, best_overlap = "", 0
    for sentence in sentences:
        if sentence == question:
            continue
        overlap = len(q_words & _content_words(sentence))
        if overlap > best_overlap:
            best, best_overlap = sentence, overlap
    return best if best else NO_ANSWER
