"""Where requests go: every URL rule of hfrag, in one module of pure functions.

- A model id is served by the Hugging Face router (``router_url``, default
  ``https://router.huggingface.co``, overridable by argument or ``HFRAG_ROUTER_URL``).
- An endpoint URL (Inference Endpoint, TEI, TGI, any compatible server) is used as given.
- TEI/TGI explicit routes (``/info``, ``/rerank``...) hang off an endpoint's base.
- Chat and embeddings URLs of OpenAI-compatible servers follow the OpenAI ``/v1`` conventions.
- Inference Providers hang off the router as ``{router}/{provider}{route}``; the provider's model
  id comes from the Hub's model API (``hub_url``, else ``$HF_ENDPOINT``, else huggingface.co).
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from hfrag.errors import ConfigurationError

DEFAULT_ROUTER_URL = "https://router.huggingface.co"
ROUTER_ENV = "HFRAG_ROUTER_URL"
DEFAULT_HUB_URL = "https://huggingface.co"
HUB_ENV = "HF_ENDPOINT"  # as huggingface_hub reads it

#: Tasks whose router URL carries a ``/pipeline/{task}`` suffix.
PIPELINE_TASKS = frozenset({"feature-extraction", "sentence-similarity"})
#: Tasks served at the bare model URL.
MODEL_TASKS = frozenset({"text-classification", "text-generation"})

#: Route suffixes of TEI and TGI that name an operation rather than a deployment.
_KNOWN_ROUTES = (
    "/v1/chat/completions",
    "/v1/rerank",
    "/v2/rerank",
    "/v1/embeddings",
    "/v1/models",
    "/embeddings",
    "/chat/completions",
    "/generate_stream",
    "/generate",
    "/embed_all",
    "/embed_sparse",
    "/embed",
    "/rerank",
    "/predict",
    "/info",
    "/health",
    "/v1",
)

# Hub repo ids: optional namespace, then a name; letters, digits, '-', '_', '.'.
_MODEL_ID = re.compile(r"(?:[\w.\-]+/)?[\w.\-]+")


def router_base(router_url: str | None = None) -> str:
    """The router to use: the argument, else ``$HFRAG_ROUTER_URL``, else the public router."""
    if router_url:
        return check_url(router_url, what="router_url").rstrip("/")
    from_env = os.environ.get(ROUTER_ENV)
    if from_env:
        # Say where the bad value came from: the user never typed it in this program.
        return check_url(from_env, what=f"the environment variable {ROUTER_ENV}").rstrip("/")
    return DEFAULT_ROUTER_URL


def check_url(url: str, *, what: str = "endpoint_url") -> str:
    """Validate an absolute http(s) URL and return it unchanged."""
    problem = f"{what} must be an absolute http:// or https:// URL, got {redact_url(url)!r}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port validates it (range, digits)
    except ValueError as exc:
        raise ConfigurationError(f"{problem} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or url != url.strip():
        raise ConfigurationError(problem)
    return url


def check_model_id(model: str) -> str:
    """Validate a Hub model id such as ``BAAI/bge-small-en-v1.5``."""
    if "://" in model:
        raise ConfigurationError(
            f"model={redact_url(model)!r} looks like a URL: pass it as endpoint_url=... instead; "
            "model is for Hub model ids such as 'BAAI/bge-small-en-v1.5'"
        )
    if not _MODEL_ID.fullmatch(model) or ".." in model:
        raise ConfigurationError(
            f"model={model!r} is not a Hub model id (expected 'namespace/name', e.g. "
            "'sentence-transformers/all-MiniLM-L6-v2')"
        )
    return model


def model_url(model: str, task: str, router_url: str | None = None) -> str:
    """The router URL that serves ``task`` for ``model`` on the hf-inference provider."""
    base = router_base(router_url)
    check_model_id(model)
    if task in PIPELINE_TASKS:
        return f"{base}/hf-inference/models/{model}/pipeline/{task}"
    if task in MODEL_TASKS:
        return f"{base}/hf-inference/models/{model}"
    raise ValueError(f"unknown task {task!r}")


def endpoint_base(endpoint_url: str) -> str:
    """An endpoint URL without a trailing operation route, so TEI/TGI routes can hang off it."""
    parts = urlsplit(check_url(endpoint_url))
    path = parts.path.rstrip("/")
    for route in _KNOWN_ROUTES:
        if path.endswith(route):
            path = path[: -len(route)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def named_route(endpoint_url: str) -> str | None:
    """The operation route an endpoint URL ends with (``/rerank``, ``/v1/rerank``...), if any."""
    path = urlsplit(check_url(endpoint_url)).path.rstrip("/")
    return next((route for route in _KNOWN_ROUTES if path.endswith(route)), None)


def endpoint_route(endpoint_url: str, route: str) -> str:
    """A TEI/TGI explicit route (``/info``, ``/rerank``, ``/generate_stream``...) of an endpoint."""
    return endpoint_base(endpoint_url) + "/" + route.lstrip("/")


def chat_url(base_url: str) -> str:
    """The chat-completions URL for an OpenAI-compatible base.

    ``/ep``, ``/ep/`` and ``/ep/v1`` all mean ``/ep/v1/chat/completions``; a URL that already
    ends in ``/chat/completions`` is kept.
    """
    parts = urlsplit(check_url(base_url))
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        if not path.endswith("/v1"):
            path += "/v1"
        path += "/chat/completions"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def router_chat_url(router_url: str | None = None) -> str:
    """The router's OpenAI-compatible chat URL."""
    return router_base(router_url) + "/v1/chat/completions"


def provider_url(provider: str, route: str, router_url: str | None = None) -> str:
    """An Inference Provider's route through the router: ``{router}/{provider}{route}``."""
    return f"{router_base(router_url)}/{provider}{route}"


def hub_base(hub_url: str | None = None) -> str:
    """The Hub to ask about models: the argument, else ``$HF_ENDPOINT``, else huggingface.co."""
    base = hub_url or os.environ.get(HUB_ENV) or DEFAULT_HUB_URL
    return check_url(base, what="hub_url").rstrip("/")


def hub_mapping_url(model: str, hub_url: str | None = None) -> str:
    """The Hub model API URL that lists ``model``'s Inference Providers."""
    check_model_id(model)
    return f"{hub_base(hub_url)}/api/models/{model}?expand[]=inferenceProviderMapping"


def is_openai_url(url: str) -> bool:
    """Whether an endpoint URL names the OpenAI form (path ending ``/v1`` or ``/embeddings``)."""
    path = urlsplit(url).path.rstrip("/")
    return path.endswith(("/v1", "/embeddings"))


def openai_embeddings_url(base_url: str) -> str:
    """The OpenAI-compatible embeddings URL for an endpoint.

    A URL already ending in ``/embeddings`` is kept (``/v1/embeddings``, TEI's ``/embeddings``,
    DeepInfra's ``/v1/openai/embeddings``); ``/ep/v1`` means ``/ep/v1/embeddings``; otherwise a
    TEI route (``/embed``, ``/info``...) is dropped and ``/v1/embeddings`` added to the base.
    """
    parts = urlsplit(check_url(base_url))
    path = parts.path.rstrip("/")
    if path.endswith("/embeddings"):
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    if not path.endswith("/v1"):
        path = urlsplit(endpoint_base(base_url)).path + "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path + "/embeddings", parts.query, ""))


def redact_url(url: str) -> str:
    """A URL fit for messages and logs: user-info and query values that may hold secrets removed."""
    try:
        parts = urlsplit(url)
        if not parts.netloc and "@" in url.split("/", 1)[0]:
            parts = urlsplit("//" + url)  # "user:secret@host/...": no scheme, still user-info
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(
        (kv.split("=", 1)[0] + "=***") if "=" in kv else kv for kv in parts.query.split("&") if kv
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
