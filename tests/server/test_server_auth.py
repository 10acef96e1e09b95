"""The credential check of a server started with ``api_key`` (TEI: exactly ``Bearer K``)."""

from __future__ import annotations

import httpx
import pytest

from hfrag.server import ServerConfig

KEY = "local-secret-key"
BODY = {"inputs": ["x"]}


@pytest.fixture
def keyed(make_server):
    srv = make_server(ServerConfig.default(api_key=KEY))
    with httpx.Client(base_url=srv.url) as c:
        yield c


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"bearer {KEY}"},
        {"Authorization": KEY},
    ],
)
def test_wrong_or_missing_credential_is_401(keyed, headers):
    r = keyed.post("/embed", json=BODY, headers=headers)
    assert (r.status_code, r.content) == (401, b"")
    assert keyed.get("/info", headers=headers).status_code == 401


def test_exact_bearer_is_accepted(keyed):
    auth = {"Authorization": f"Bearer {KEY}"}
    assert keyed.post("/embed", json=BODY, headers=auth).status_code == 200
    assert keyed.get("/info", headers=auth).status_code == 200


def test_health_stays_public(keyed):
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/").status_code == 200


def test_router_layout_401_has_a_json_body(keyed):
    r = keyed.post("/hf-inference/models/hfrag/hash-embed/pipeline/feature-extraction", json=BODY)
    assert r.status_code == 401
    assert "error" in r.json()
    assert KEY not in r.text


def test_no_key_means_no_check(client):
    assert client.post("/embed", json=BODY, headers={"Authorization": "Bearer anything"}).is_success
