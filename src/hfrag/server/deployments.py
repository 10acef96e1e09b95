"""The layout of ``hfrag serve``: one listener per deployment it stands for.

A production RAG stack reaches each model through its own server: a TEI container for the
embedder, another for the re-ranker, TGI for the chat model, and the HF router in front of
hosted models. Each of those answers ``/info`` about its one model, and clients (hfrag's own
auto-detection among them) decide what to send from it. ``hfrag serve`` therefore listens on
four ports from a base port ``P``::

    P     TEI embeddings   /embed, /v1/embeddings, POST /, /info, /health
    P+1   TEI re-ranker    /rerank, /v1/rerank, /v2/rerank, /predict, POST /, /info, /health
    P+2   TGI with chat    /generate, /generate_stream, /v1/chat/completions, /v1/models,
                           POST /, /info, /health
    P+3   router layout    every route of every layout over every model (/hf-inference/models/
                           {id}/..., /v1/chat/completions by model id, provider routes, the Hub
                           model API): HFRAG_ROUTER_URL=http://127.0.0.1:P+3
    P+4   TEI sparse       /embed_sparse, /tokenize, POST /, /info, /health (a SPLADE model:
                           ``--models real`` with SPLADE-tiny installed)

A listener whose kind of model is not served (``--model`` lists no re-ranker, say) is left out.
All listeners run on one event loop and share one ``ModelRuntime``, so a model object is only
ever run on its one model thread. ``testing.serve_deployments`` starts the same layout in
process (tests, docs); ``ServerConfig`` and ``serve_in_thread`` stay one listener with every
route.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hfrag.server.config import ModelSpec, ServerConfig

__all__ = ["DEPLOYMENTS", "Deployment", "deployment_configs"]


@dataclass(frozen=True)
class Deployment:
    """One kind of listener: its name, port offset, route layout and what it is printed as."""

    name: str
    offset: int
    layout: str
    kind: str | None  # the model kind it serves alone; None: every model
    title: str
    routes: str


DEPLOYMENTS: tuple[Deployment, ...] = (
    Deployment(
        "embed", 0, "tei-embed", "embed", "TEI embeddings", "/embed /v1/embeddings POST / /info"
    ),
    Deployment(
        "rerank",
        1,
        "tei-rerank",
        "rerank",
        "TEI re-ranker",
        "/rerank /v1/rerank /v2/rerank /predict POST / /info",
    ),
    Deployment(
        "generate",
        2,
        "tgi",
        "generate",
        "TGI with chat",
        "/generate /generate_stream /v1/chat/completions POST / /info",
    ),
    Deployment(
        "router",
        3,
        "all",
        None,
        "router layout",
        "/hf-inference/models/{id}/... /v1/chat/completions /api/models/{id} and every route above",
    ),
    Deployment(
        "sparse",
        4,
        "tei-sparse",
        "sparse",
        "TEI sparse embeddings",
        "/embed_sparse /tokenize POST / /info",
    ),
)


def deployment_configs(config: ServerConfig) -> list[tuple[Deployment, ServerConfig]]:
    """The listeners for ``config``: each TEI/TGI one serves the first model of its kind alone
    (so its ``/info`` describes that model), the router one serves every model."""
    out: list[tuple[Deployment, ServerConfig]] = []
    for deployment in DEPLOYMENTS:
        if deployment.kind is None:
            out.append((deployment, config))
            continue
        spec: ModelSpec | None = config.first_of(deployment.kind)
        if spec is not None:
            out.append((deployment, replace(config, models=[spec])))
    return out
