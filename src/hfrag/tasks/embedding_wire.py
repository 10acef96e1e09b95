"""The wire forms of embeddings, and which one a client speaks: a small table, chosen once.

=========  ===========================================  =========================================
form       body                                         answer
=========  ===========================================  =========================================
``tei``    ``{"inputs": [...], "normalize"?, ...}``     ``[[f32, ...], ...]`` (TEI, HF pipeline)
``openai`` ``{"input", "model"?, "encoding_format",     ``{"data": [{"index", "embedding"}]}``
           "dimensions"?}``                             (floats or base64)
=========  ===========================================  =========================================

:func:`resolve_route` picks the URL, the form and the ``model`` to send (the client asks it once,
through :meth:`~hfrag.tasks.base.TaskClient.choose_wire`):

- a model id: ``provider`` None or ``"hf-inference"`` is the router's pipeline URL (tei form);
  another provider (or ``"auto"``) is ``{router}/{provider}{route}`` in the openai form, with
  the provider's own model id from ``provider_model`` or the Hub's mapping (looked up once);
- an endpoint URL: ``protocol="tei"`` posts to it as given; ``"openai"`` posts to its
  ``/v1/embeddings``; ``"auto"`` takes the openai form for a URL ending in ``/v1`` or
  ``/embeddings``, else lets ``GET /info`` decide (TEI answers it), else ``GET /v1/models``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from hfrag.errors import ConfigurationError, InferenceError
from hfrag.tasks.providers import (
    AUTO,
    EMBEDDING_ROUTES,
    HF_INFERENCE,
    TASK,
    ProviderMapping,
    choose,
    parse_mapping,
)
from hfrag.tasks.vectors import Matrix, openai_matrix, to_matrix, unit_rows
from hfrag.transport import Request
from hfrag.transport.urls import (
    endpoint_route,
    hub_mapping_url,
    is_openai_url,
    model_url,
    openai_embeddings_url,
    provider_url,
)

if TYPE_CHECKING:
    from hfrag.tasks.embeddings import EmbeddingOptions, EmbeddingsClient, Kind

Protocol = Literal["auto", "tei", "openai"]
EncodingFormat = Literal["float", "base64"]
PROTOCOLS: tuple[str, ...] = ("auto", "tei", "openai")
ENCODINGS: tuple[str, ...] = ("float", "base64")


@dataclass(frozen=True)
class WireForm:
    """How one form builds a body and reads an answer."""

    name: str
    build: Callable[[list[str], EmbeddingOptions, Kind, str | None], dict[str, Any]]
    decode: Callable[[Any, int, int, str, int | None, EmbeddingOptions], Matrix]


@dataclass(frozen=True)
class Route:
    """Where a client's batches go, in which form, and the ``model`` the body names."""

    url: str
    form: WireForm
    model: str | None = None


def _tei_body(
    inputs: list[str], options: EmbeddingOptions, kind: Kind, model: str | None
) -> dict[str, Any]:
    return {"inputs": inputs, **options.payload_options(kind)}


def _tei_decode(
    payload: Any, n: int, first: int, url: str, dim: int | None, options: EmbeddingOptions
) -> Matrix:
    return to_matrix(
        payload,
        n,
        first=first,
        url=url,
        pooling=options.pooling,
        normalize_pooled=options.normalize is not False,
        dim=dim,
    )


def _openai_body(
    inputs: list[str], options: EmbeddingOptions, kind: Kind, model: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": inputs}
    if model is not None:
        body["model"] = model
    body["encoding_format"] = options.encoding_format
    if options.dimensions is not None:
        body["dimensions"] = options.dimensions
    return body


def _openai_decode(
    payload: Any, n: int, first: int, url: str, dim: int | None, options: EmbeddingOptions
) -> Matrix:
    # Token-level answers are pooled and normalised (normalize=False is refused for this form).
    matrix = openai_matrix(payload, n, first=first, url=url, pooling=options.pooling, dim=dim)
    # The OpenAI form has no switch for it: do it here.
    return unit_rows(matrix) if options.normalize else matrix


FORMS: dict[str, WireForm] = {
    "tei": WireForm("tei", _tei_body, _tei_decode),
    "openai": WireForm("openai", _openai_body, _openai_decode),
}


def check_form(options: EmbeddingOptions, form: str, where: str) -> None:
    """Refuse options the form cannot carry, rather than drop them silently."""
    if form != "openai":
        return
    prompts = [
        name
        for name in ("prompt_name", "query_prompt_name", "document_prompt_name")
        if getattr(options, name) is not None
    ]
    if prompts:
        raise ConfigurationError(
            f"{', '.join(prompts)} only exist in TEI's own form (/embed), but {where} speaks the "
            "OpenAI form (/v1/embeddings), which has no prompt names: use query_instruction= and "
            "document_instruction= (text hfrag prepends), or protocol='tei' for a TEI server"
        )
    if options.normalize is False:
        raise ConfigurationError(
            f"normalize=False cannot be sent to {where}: the OpenAI form has no such switch "
            "(its servers decide); use protocol='tei' with a TEI server"
        )
    if options.truncation_direction is not None:
        raise ConfigurationError(
            f"truncation_direction cannot be sent to {where}: the OpenAI form has no such "
            "option; use protocol='tei' with a TEI server"
        )


def static_form(client: EmbeddingsClient) -> str | None:
    """The form known without asking any server (None: ``GET /info`` or the Hub decides)."""
    options, target = client.options, client.target
    if target.endpoint_url is None:
        if options.provider == AUTO:
            return None  # hf-inference (TEI form) or another provider: the Hub decides
        return "tei" if options.provider in (None, HF_INFERENCE) else "openai"
    if options.protocol != "auto":
        return options.protocol
    if is_openai_url(target.endpoint_url):
        return "openai"
    # A URL that names TEI's own route needs no probe (``GET /info`` still gives its limits).
    return "tei" if urlsplit(target.endpoint_url).path.rstrip("/").endswith("/embed") else None


async def _get(client: EmbeddingsClient, url: str) -> Any:
    """A GET whose failure (other than no answer or no credential) means "not this kind"."""
    try:
        return await client.async_transport.request(Request(url, method="GET"))
    except InferenceError as error:
        if error.status is None or error.status in (401, 403):
            raise
        return None


class _Lookups:
    """What one resolution asks servers, each at most once (nothing is kept on the client)."""

    def __init__(self, client: EmbeddingsClient) -> None:
        self.client = client
        self._served: list[str] | None = None

    async def served_models(self) -> list[str]:
        """The model names an OpenAI-compatible endpoint serves (``GET /v1/models``)."""
        if self._served is None:
            assert self.client.target.endpoint_url is not None
            url = endpoint_route(self.client.target.endpoint_url, "/v1/models")
            listing = await _get(self.client, url)
            data = listing.get("data") if isinstance(listing, dict) else None
            self._served = [
                item["id"]
                for item in data or []
                if isinstance(item, dict) and isinstance(item.get("id"), str)
            ]
        return self._served

    async def endpoint_form(self) -> str:
        info = await self.client._endpoint_info()
        if info.get("model_type") is not None or "max_client_batch_size" in info:
            return "tei"  # TEI answers /info; its own form carries every option
        if not info and await self.served_models():
            return "openai"  # vLLM, llama.cpp, Infinity: no /info, but /v1/models
        return "tei"  # an Inference Endpoint (HF toolkit): POST the URL as given


async def provider_mappings(client: EmbeddingsClient) -> list[ProviderMapping]:
    """The model's Inference Providers from the Hub."""
    assert client.target.model is not None
    url = hub_mapping_url(client.target.model, client.options.hub_url)
    payload = await client.async_transport.request(Request(url, method="GET"))
    return parse_mapping(payload, client.target.model, url)


async def resolve_route(client: EmbeddingsClient) -> Route:
    """Where and how this client sends its batches (see the module docstring)."""
    options, target = client.options, client.target
    if target.endpoint_url is not None:
        lookups = _Lookups(client)
        url = target.endpoint_url
        form = static_form(client) or await lookups.endpoint_form()
        check_form(options, form, f"endpoint {target.describe()}")
        if form == "tei":
            return Route(url, FORMS["tei"])
        model = options.provider_model
        if model is None:
            served = await lookups.served_models()
            model = served[0] if served else (await client._endpoint_info()).get("model_id")
        return Route(openai_embeddings_url(url), FORMS["openai"], model)
    assert target.model is not None
    provider = options.provider
    if provider in (None, HF_INFERENCE) and options.provider_model is None:
        return Route(model_url(target.model, TASK, target.router_url), FORMS["tei"])
    if options.provider_model is not None and provider is not None:
        mapping = ProviderMapping(provider, options.provider_model, "live", TASK)
    else:
        assert provider is not None
        mapping = choose(await provider_mappings(client), provider, target.model)
    if mapping.provider == HF_INFERENCE:
        check_form(options, "tei", HF_INFERENCE)
        return Route(model_url(mapping.provider_id, TASK, target.router_url), FORMS["tei"])
    check_form(options, "openai", f"provider {mapping.provider!r}")
    route = EMBEDDING_ROUTES[mapping.provider]
    url = provider_url(mapping.provider, route, target.router_url)
    return Route(url, FORMS["openai"], mapping.provider_id)
