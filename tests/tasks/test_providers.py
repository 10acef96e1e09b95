"""Embeddings through Inference Providers: the Hub mapping, each provider's route, the errors."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import numpy as np
import pytest

from hfrag.errors import ConfigurationError, MalformedResponseError, NotFoundError, RedirectError
from hfrag.server import ServerConfig
from hfrag.server.testing import CannedResponse
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from hfrag.tasks.providers import EMBEDDING_ROUTES
from hfrag.transport import token_for
from hfrag.transport.urls import hub_mapping_url, model_url, provider_url
from tests.tasks.conftest import EMBED_MODEL, expected

HUB_PATH = f"/api/models/{EMBED_MODEL}"
TEXTS = ["the tower is in paris", "bananas are yellow", "a third text"]
FE = "feature-extraction"


def entry(provider_id: str, status: str = "live", task: str = FE) -> dict[str, str]:
    return {"providerId": provider_id, "status": status, "task": task}


def client_for(
    srv: Any, provider: str | None, model: str = EMBED_MODEL, **kw: Any
) -> EmbeddingsClient:
    options = EmbeddingOptions(provider=provider, hub_url=kw.pop("hub_url", srv.url), **kw)
    return EmbeddingsClient(model=model, router_url=srv.url, options=options)


@pytest.mark.parametrize(
    ("provider", "path", "provider_id"),
    [
        ("together", "/together/v1/embeddings", EMBED_MODEL),
        ("scaleway", "/scaleway/v1/embeddings", "hash-embed"),
        ("deepinfra", "/deepinfra/v1/openai/embeddings", EMBED_MODEL),
    ],
)
def test_each_provider_route_and_payload(server, embed, provider, path, provider_id):
    out = embed(client_for(server, provider), TEXTS)
    np.testing.assert_allclose(out, expected(server, TEXTS), atol=1e-6)
    assert server.counters.total(path, 200) == 1
    assert server.counters.bodies[-1] == {
        "input": TEXTS,
        "model": provider_id,
        "encoding_format": "base64",
    }


def test_hf_inference_and_none_keep_the_pipeline_route(server, embed):
    for provider in (None, "hf-inference"):
        embed(client_for(server, provider), TEXTS)
    path = f"/hf-inference/models/{EMBED_MODEL}/pipeline/{FE}"
    assert server.counters.total(path, 200) == 2
    assert server.counters.total(HUB_PATH) == 0  # no look-up for the default path


@pytest.mark.parametrize("form", ["dict", "list"])
def test_mapping_is_looked_up_once_per_client_in_both_forms(make_server, form):
    srv = make_server(ServerConfig(mapping_form=form))
    client = client_for(srv, "scaleway")

    async def concurrent() -> None:
        await asyncio.gather(*(client.aembed(TEXTS) for _ in range(5)))

    asyncio.run(concurrent())  # five first calls at once share one look-up
    client.embed(TEXTS)
    client.embed(TEXTS[:1])
    assert srv.counters.total(HUB_PATH) == 1
    assert srv.counters.total("/scaleway/v1/embeddings", 200) == 7
    assert all(b["model"] == "hash-embed" for b in srv.counters.bodies if "input" in b)
    other = client_for(srv, "scaleway")  # a new client looks up again
    other.embed(TEXTS)
    assert srv.counters.total(HUB_PATH) == 2


def test_hf_endpoint_is_the_default_hub(server, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    client = client_for(server, "together", hub_url=None)
    client.embed(TEXTS)
    assert server.counters.total(HUB_PATH) == 1


def test_provider_model_skips_the_lookup(server):
    client = client_for(server, "together", provider_model=EMBED_MODEL)
    client.embed(TEXTS)
    assert server.counters.total(HUB_PATH) == 0
    assert server.counters.bodies[-1]["model"] == EMBED_MODEL
    wrong = client_for(server, "together", provider_model="not/served")
    with pytest.raises(NotFoundError, match="does not exist on together"):
        wrong.embed(TEXTS)


def test_auto_takes_the_first_live_provider_that_embeds(make_server):
    mapping = {
        EMBED_MODEL: {
            "sambanova": entry("sn-embed"),  # a provider hfrag has no route for: skipped
            "hf-inference": entry(EMBED_MODEL, task="text-classification"),
            "scaleway": entry("hash-embed", status="error"),
            "together": entry(EMBED_MODEL),
            "deepinfra": entry(EMBED_MODEL),
        }
    }
    srv = make_server(ServerConfig(provider_mapping=mapping, mapping_form="list"))
    client = client_for(srv, "auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a live provider was chosen: no warning
        out = client.embed(TEXTS)
    np.testing.assert_allclose(out, expected(srv, TEXTS), atol=1e-6)
    assert srv.counters.total("/together/v1/embeddings", 200) == 1


def test_auto_with_hf_inference_first_uses_the_pipeline(server):
    client_for(server, "auto").embed(TEXTS)
    assert server.counters.total(f"/hf-inference/models/{EMBED_MODEL}/pipeline/{FE}", 200) == 1


@pytest.mark.parametrize("status", ["staging", "error"])
def test_staging_or_error_status_warns(make_server, status):
    mapping = {EMBED_MODEL: {"together": entry(EMBED_MODEL, status=status)}}
    srv = make_server(ServerConfig(provider_mapping=mapping))
    with pytest.warns(UserWarning, match=status):
        out = client_for(srv, "auto").embed(TEXTS)
    assert out.shape == (3, 384)


@pytest.mark.parametrize("bad", ["togther", "openai", "", "Together"])
def test_unknown_provider_fails_at_construction(server, bad):
    with pytest.raises(ConfigurationError, match="unknown provider") as info:
        client_for(server, bad)
    assert "together" in str(info.value)
    assert server.counters.total() == 0


def test_typo_gets_a_suggestion(server):
    with pytest.raises(ConfigurationError, match="did you mean 'together'"):
        client_for(server, "togther")


def test_model_with_no_feature_extraction_provider_lists_what_serves_it(server, embed):
    gen = "hfrag/extractive-gen"
    with pytest.raises(ConfigurationError) as info:
        embed(client_for(server, "auto", model=gen), TEXTS)
    message = str(info.value)
    assert f"no provider serves {gen} for feature-extraction" in message
    assert "together (conversational, live)" in message
    with pytest.raises(ConfigurationError, match="for conversational, not feature-extraction"):
        embed(client_for(server, "together", model=gen), TEXTS)
    with pytest.raises(ConfigurationError, match="'scaleway' does not serve"):
        embed(client_for(server, "scaleway", model=gen), TEXTS)
    assert server.counters.total("/together/v1/embeddings") == 0


def test_model_unknown_to_the_hub_is_not_found(server):
    with pytest.raises(NotFoundError):
        client_for(server, "auto", model="nobody/nothing").embed(TEXTS)


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"inferenceProviderMapping": "together"},
        {"inferenceProviderMapping": [{"providerId": "x", "task": FE}]},
        {"inferenceProviderMapping": {"together": {"status": "live", "task": FE}}},
    ],
)
def test_malformed_mapping_is_a_malformed_response(server, body):
    server.script(HUB_PATH, CannedResponse(200, body))
    with pytest.raises(MalformedResponseError, match="provider mapping"):
        client_for(server, "together").embed(TEXTS)


def test_provider_options_that_make_no_sense_are_refused(server):
    with pytest.raises(ConfigurationError, match="endpoint URL"):
        EmbeddingsClient(endpoint_url=server.url, options=EmbeddingOptions(provider="together"))
    with pytest.raises(ConfigurationError, match="provider_model"):
        EmbeddingsClient(model=EMBED_MODEL, options=EmbeddingOptions(provider_model="x"))
    with pytest.raises(ConfigurationError, match="instead of provider='auto'"):
        EmbeddingOptions(provider="auto", provider_model="x")
    with pytest.raises(ConfigurationError, match="prompt names"):
        client_for(server, "together", query_prompt_name="query")
    with pytest.raises(ConfigurationError, match="hub_url"):
        EmbeddingOptions(provider="auto", hub_url="huggingface.co")


def test_too_many_inputs_on_a_provider_is_split(make_server):
    srv = make_server(ServerConfig(max_client_batch_size=8))
    client = client_for(srv, "deepinfra", batch_size=20, max_concurrency=1)
    texts = [f"text {i}" for i in range(40)]
    out = client.embed(texts)
    np.testing.assert_allclose(out, expected(srv, texts), atol=1e-6)
    assert srv.counters.total("/deepinfra/v1/openai/embeddings", 400) == 1
    assert max(srv.counters.batch_sizes[1:]) == 8


# -- the credential rule on the new URLs ------------------------------------------------------


def test_ambient_token_goes_to_the_router_provider_path_and_the_hub(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_ambient")
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    for provider, route in EMBEDDING_ROUTES.items():
        assert token_for(provider_url(provider, route), None) == "hf_ambient"
    assert token_for(model_url(EMBED_MODEL, FE), None) == "hf_ambient"
    assert token_for(hub_mapping_url(EMBED_MODEL), None) == "hf_ambient"
    assert hub_mapping_url(EMBED_MODEL).startswith("https://huggingface.co/api/models/")


def test_ambient_token_never_reaches_a_local_router_or_hub(server, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_ambient_secret")
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    client_for(server, "together", hub_url=None).embed(TEXTS)
    assert len(server.counters.headers) == 2  # the hub, then the provider route
    assert all("authorization" not in h for h in server.counters.headers)


def test_explicit_token_goes_to_both(server):
    options = EmbeddingOptions(provider="together", hub_url=server.url)
    client = EmbeddingsClient(
        model=EMBED_MODEL, router_url=server.url, token="hf_explicit_1234", options=options
    )
    client.embed(TEXTS)
    assert [h["authorization"] for h in server.counters.headers] == ["Bearer hf_explicit_1234"] * 2


def test_a_renamed_model_is_an_error_naming_the_new_id(server):
    # The Hub redirects a renamed model; hfrag follows no redirect, and its error names the
    # new location so the user can update the model id.
    location = f"{HUB_PATH}?expand[]=inferenceProviderMapping"
    server.script(
        "/api/models/old-org/old-name", CannedResponse(307, "", headers={"Location": location})
    )
    with pytest.raises(RedirectError, match=HUB_PATH):
        client_for(server, "together", model="old-org/old-name").embed(TEXTS)
    assert server.counters.total(HUB_PATH) == 0


def test_a_failed_lookup_is_asked_again_on_the_next_call(server):
    server.script(HUB_PATH, CannedResponse(404, {"error": "Repository not found"}))
    client = client_for(server, "together")
    with pytest.raises(NotFoundError):
        client.embed(TEXTS)
    assert client.embed(TEXTS).shape == (3, 384)
    assert server.counters.total(HUB_PATH) == 2


def test_auto_with_prompt_names_is_fine_on_hf_inference_and_refused_elsewhere(make_server):
    client = client_for(make_server(), "auto", query_prompt_name="query")  # hf-inference first
    client.embed_query("where is the tower")
    mapping = {EMBED_MODEL: {"together": entry(EMBED_MODEL)}}
    srv = make_server(ServerConfig(provider_mapping=mapping))
    with pytest.raises(ConfigurationError, match="prompt names"):
        client_for(srv, "auto", query_prompt_name="query").embed_query("where is the tower")
    assert srv.counters.total("/together/v1/embeddings") == 0
