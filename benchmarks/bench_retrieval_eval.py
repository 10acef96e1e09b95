"""Hit@1 and hit@3 on the demo's labelled questions: retrieval alone and retrieval + rerank.

Runs ``hfrag demo --eval``'s measurement (``hfrag.demo_eval``) through the LangChain and
LlamaIndex classes against ``hfrag serve``'s layout started in process (``serve_deployments``),
on the real models when the ``local`` extra's packages are installed (all-MiniLM-L6-v2 and its
embedding-similarity reranker) and on the hashing models in any case, and prints one table.

Usage: ``python benchmarks/bench_retrieval_eval.py [-k 5]``
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

from hfrag.demo_eval import run_evaluation
from hfrag.server import ServerConfig
from hfrag.server.testing import serve_deployments


def _configs() -> list[tuple[str, ServerConfig]]:
    configs = [("hashing models", ServerConfig())]
    from hfrag.server.models_real import missing_runtimes, real_models

    missing = missing_runtimes(generation=False)
    if missing:
        print(f"real models not measured: missing {', '.join(missing)}")
    else:
        configs.insert(0, ("real models", ServerConfig(models=real_models(generation=False))))
    return configs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, default=5, help="passages retrieved per question")
    ns = parser.parse_args()
    rows = []
    for label, config in _configs():
        with serve_deployments(config) as srv:
            embed, rerank = config.first_of("embed"), config.first_of("rerank")
            assert embed is not None
            assert rerank is not None
            targets = SimpleNamespace(
                embed=embed.name,
                rerank=rerank.name,
                conn=lambda role, urls=srv.urls: {"endpoint_url": urls[role]},
            )
            for framework in ("langchain", "llama-index"):
                evaluation = run_evaluation(targets, framework, ns.k)
                for stage, h1, h3 in evaluation.rows():
                    rows.append((label, framework, stage, h1, h3))
    n = len(evaluation.answers)
    print(
        f"{n} labelled questions (hfrag/data/questions.json), top {ns.k} retrieved, then reranked"
    )
    width = max(len(r[2]) for r in rows)
    print(f"{'models':<15} {'framework':<12} {'stage':<{width}}  hit@1  hit@3")
    print("-" * (15 + 12 + width + 16))
    for label, framework, stage, h1, h3 in rows:
        print(f"{label:<15} {framework:<12} {stage:<{width}}  {h1:5.3f}  {h3:5.3f}")
    print(
        "\nThe real-model reranker (hfrag/minilm-cosine-rerank) is embedding similarity of the "
        "same\nembeddings, not a cross-encoder (none ships in a package): it keeps the "
        "retrieval order."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
