"""LangChain ``dumps``/``loads``: credentials by id, restored only from what the loader gives."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.load import dumps, loads

from hfrag.langchain import HuggingFaceInferenceEmbeddings

TOKEN = "hf_PLANTEDexplicit0001"
AMBIENT = "hf_PLANTEDambient0002"
KEY = "key-PLANTED-header-0003"


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # loads() is marked beta
        yield


def _loads(text: str, **kwargs: Any) -> HuggingFaceInferenceEmbeddings:
    back = loads(
        text,
        valid_namespaces=["hfrag"],
        allowed_objects=[HuggingFaceInferenceEmbeddings],
        **kwargs,
    )
    assert isinstance(back, HuggingFaceInferenceEmbeddings)
    return back


def test_explicit_token_for_a_local_endpoint_never_becomes_the_ambient_one(
    local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emb = HuggingFaceInferenceEmbeddings(endpoint_url=local.url + "/embed", token=TOKEN)
    text = dumps(emb)
    assert TOKEN not in text
    monkeypatch.setenv("HF_TOKEN", AMBIENT)
    back = _loads(text, secrets_from_env=True)
    back.embed_documents(["a"])
    sent = local.counters.headers[-1].get("authorization", "")
    assert AMBIENT not in sent  # the ambient token never goes to a third-party host
    monkeypatch.setenv("HFRAG_TOKEN", TOKEN)  # the id written for this target
    _loads(text, secrets_from_env=True).embed_documents(["b"])
    assert local.counters.headers[-1]["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("kwargs", "secret_id"),
    [
        ({"model": "BAAI/bge-small-en-v1.5"}, "HF_TOKEN"),
        ({"endpoint_url": "https://x.us-east-1.aws.endpoints.huggingface.cloud"}, "HF_TOKEN"),
        ({"model": "a/b", "router_url": "http://127.0.0.1:9"}, "HFRAG_TOKEN"),
        ({"endpoint_url": "https://my-space.hf.space/embed"}, "HFRAG_TOKEN"),
        ({"endpoint_url": "http://127.0.0.1:8080"}, "HFRAG_TOKEN"),
    ],
)
def test_token_secret_id_depends_on_the_target(kwargs: dict[str, Any], secret_id: str) -> None:
    data = json.loads(dumps(HuggingFaceInferenceEmbeddings(**kwargs, token=TOKEN)))
    assert data["kwargs"]["token"]["id"] == [secret_id]


def test_header_secrets_round_trip(local: Any) -> None:
    emb = HuggingFaceInferenceEmbeddings(
        endpoint_url=local.url + "/embed",
        headers={"X-Api-Key": KEY, "X-Trace": "visible", "X-Auth.Part": KEY + "2"},
    )
    text = dumps(emb)
    assert KEY not in text
    assert "visible" in text
    back = _loads(
        text,
        secrets_map={"HFRAG_HEADER_X_API_KEY": KEY, "HFRAG_HEADER_X_AUTH_PART": KEY + "2"},
    )
    assert back.headers == emb.headers
    back.embed_documents(["a"])
    sent = local.counters.headers[-1]
    assert sent["x-api-key"] == KEY
    assert sent["x-auth.part"] == KEY + "2"
    assert sent["x-trace"] == "visible"
    assert dumps(back) == text  # stable


def test_a_header_secret_not_given_back_is_dropped_with_a_warning() -> None:
    emb = HuggingFaceInferenceEmbeddings(model="a/b", headers={"X-Api-Key": KEY})
    with pytest.warns(UserWarning, match="HFRAG_HEADER_X_API_KEY"):
        back = _loads(dumps(emb))
    assert back.headers is None


URL_SECRET = "PLANTED-url-key-0004"


@pytest.mark.parametrize(
    "url",
    [
        f"http://127.0.0.1:9/embed?api_key={URL_SECRET}",
        f"http://me:{URL_SECRET}@127.0.0.1:9/embed",
    ],
    ids=["query", "user-info"],
)
def test_url_credentials_never_show(url: str) -> None:
    from hfrag.llama_index import HuggingFaceInferenceEmbedding

    lc = HuggingFaceInferenceEmbeddings(endpoint_url=url)
    li = HuggingFaceInferenceEmbedding(endpoint_url=url)
    shown = [
        repr(lc),
        str(lc),
        dumps(lc),
        lc.model_dump_json(),
        repr(li),
        li.to_json(),
        json.dumps(li.to_dict()),
        li.model_name,
    ]
    for text in shown:
        assert URL_SECRET not in text
    back = _loads(dumps(lc), secrets_map={"HFRAG_ENDPOINT_URL": url})
    assert back.endpoint_url == url
