"""The rerank task client against the local server: every wire form, batching, faults, inputs."""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from hfrag.errors import (
    BackendError,
    ConfigurationError,
    InferenceError,
    InputError,
    MalformedResponseError,
    RedirectError,
)
from hfrag.server.backends import sigmoid
from hfrag.server.config import ModelSpec, ServerConfig, default_models
from hfrag.server.faults import FaultConfig
from hfrag.server.hashing import HashingBackend
from hfrag.server.testing import CannedResponse, ServerHandle, serve_in_thread
from hfrag.tasks import RerankClient, RerankOptions, RerankResult
from hfrag.transport import Secret

RERANK_MODEL = "hfrag/hash-rerank"
ROUTER_PATH = f"/hf-inference/models/{RERANK_MODEL}"
FAST = {"max_retries": 10, "max_retry_wait": 0.05}
QUERY = "where is the eiffel tower in paris"
#: Input order is not score order: the best documents come last.
DOCS = [
    "bananas are yellow",
    "the tower is tall",
    "paris is in france",
    "the eiffel tower is in paris",
    "where is the eiffel tower in paris",
]

#: Each wire form on the local server: (client arguments, the path documents are posted to).
FORMS: dict[str, tuple[Callable[[str], dict[str, Any]], str]] = {
    "router": (lambda url: {"model": RERANK_MODEL, "router_url": url}, ROUTER_PATH),
    "tei-base": (lambda url: {"endpoint_url": url}, "/rerank"),
    "tei-route": (lambda url: {"endpoint_url": url + "/rerank"}, "/rerank"),
    "cohere-v1": (lambda url: {"endpoint_url": url + "/v1/rerank"}, "/v1/rerank"),
    "cohere-v2": (lambda url: {"endpoint_url": url + "/v2/rerank"}, "/v2/rerank"),
    "cohere-base": (lambda url: {"endpoint_url": url + "/v1"}, "/v1/rerank"),
    "hf-inference-endpoint": (lambda url: {"endpoint_url": url + ROUTER_PATH}, ROUTER_PATH),
}
PROTOCOL = {
    "router": "hf-inference",
    "tei-base": "tei",
    "tei-route": "tei",
    "cohere-v1": "cohere",
    "cohere-v2": "cohere",
    "cohere-base": "cohere",
    "hf-inference-endpoint": "hf-inference",
}


def rerank_config(**kw: Any) -> ServerConfig:
    return ServerConfig.default(primary=RERANK_MODEL, **kw)


@pytest.fixture(scope="module")
def module_server() -> Iterator[ServerHandle]:
    with serve_in_thread(rerank_config()) as srv:
        yield srv


@pytest.fixture
def srv(module_server: ServerHandle) -> ServerHandle:
    module_server.reset()
    return module_server


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def call(mode: str, client: RerankClient, method: str, *args: Any, **kw: Any) -> Any:
    """``client.method(...)``, or its async twin from a fresh event loop."""
    if mode == "sync":
        return getattr(client, method)(*args, **kw)
    return asyncio.run(getattr(client, "a" + method)(*args, **kw))


def client_for(form: str, url: str, **kw: Any) -> RerankClient:
    options = {k: kw.pop(k) for k in list(kw) if k in RerankOptions.__dataclass_fields__}
    return RerankClient(**FORMS[form][0](url), options=RerankOptions(**options), **kw)


def expected(server: ServerHandle, query: str, docs: list[str], raw: bool = False) -> np.ndarray:
    """What the server's backend gives each document, in input order."""
    spec = server.config.model(RERANK_MODEL)
    assert spec is not None
    logits = [spec.backend.score(query, d) for d in docs]
    return np.asarray(logits if raw else [sigmoid(x) for x in logits], dtype=np.float32)


def corpus(n: int) -> list[str]:
    """``n`` distinct documents with varied overlap with :data:`QUERY`."""
    words = ["eiffel", "tower", "paris", "france", "river", "bread", "museum", "bridge", "night"]
    return [f"doc {i}: " + " ".join(words[j % 9] for j in range(i % 7, i % 7 + i % 5 + 1))
            for i in range(n)]  # fmt: skip


# -- every wire form ----------------------------------------------------------------------------


@pytest.mark.parametrize("form", sorted(FORMS))
def test_scores_match_the_backend_in_input_order(srv: ServerHandle, form: str, mode: str) -> None:
    want = expected(srv, QUERY, DOCS)
    assert list(np.argsort(-want)) != list(range(len(DOCS)))  # the server's order differs
    client = client_for(form, srv.url)
    scores = call(mode, client, "score", QUERY, DOCS)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, want, rtol=1e-6)
    assert client.protocol == PROTOCOL[form]
    assert srv.counters.total(FORMS[form][1], 200) == 1
    ranked = call(mode, client, "rerank", QUERY, DOCS, top_n=2)
    assert ranked == [(4, pytest.approx(want[4])), (3, pytest.approx(want[3]))]
    assert isinstance(ranked[0], RerankResult)
    assert srv.counters.total("/info") <= 1  # probed once, remembered


@pytest.mark.parametrize(
    ("form", "answer"),
    [
        ("tei-route", [{"index": i, "score": s} for i, s in ((2, 0.9), (0, 0.5), (1, 0.1))]),
        (
            "cohere-v1",
            {
                "results": [
                    {"index": i, "relevance_score": s} for i, s in ((2, 0.9), (0, 0.5), (1, 0.1))
                ]
            },
        ),
    ],
)
def test_answers_sorted_by_score_are_mapped_back_by_index(
    srv: ServerHandle, form: str, answer: Any
) -> None:
    srv.script(FORMS[form][1], CannedResponse(200, answer))
    scores = client_for(form, srv.url).score("q", ["a", "b", "c"])
    np.testing.assert_allclose(scores, [0.5, 0.1, 0.9])


@pytest.mark.parametrize("form", ["router", "tei-route", "cohere-v1"])
def test_thousand_documents_under_faults_are_each_scored_once_and_in_place(
    make_server: Callable[..., ServerHandle], form: str, mode: str
) -> None:
    server = make_server(rerank_config(max_client_batch_size=32))
    server.set_faults(
        FaultConfig(
            seed=8,
            p_loading=0.04,
            estimated_time=0.01,
            p_rate_limit=0.04,
            retry_after=0.01,
            p_500=0.03,
            p_502=0.03,
            p_drop=0.03,
            p_truncate=0.03,
        )
    )
    docs = corpus(1000)
    client = client_for(form, server.url, batch_size=64, max_concurrency=4, **FAST)
    scores = call(mode, client, "score", QUERY, docs)
    np.testing.assert_allclose(scores, expected(server, QUERY, docs), rtol=1e-6)
    failures = sum(n for (_, status), n in server.counters.requests.items() if status != 200)
    assert failures > 0.1 * len(server.counters.batch_sizes), "the fault mix must fire often"
    assert max(server.counters.batch_sizes) <= 64
    # Every document was scored exactly once: nothing lost, nothing sent again after success.
    assert set(server.counters.texts_ok) == set(docs)
    assert max(server.counters.texts_ok.values()) == 1


def test_a_batch_too_large_is_split_and_the_size_remembered(
    make_server: Callable[..., ServerHandle], mode: str
) -> None:
    server = make_server(rerank_config(max_client_batch_size=16))
    docs = corpus(200)
    client = client_for("router", server.url, batch_size=50, max_concurrency=1)
    np.testing.assert_allclose(
        call(mode, client, "score", QUERY, docs), expected(server, QUERY, docs), rtol=1e-6
    )
    assert server.counters.total(status=413) == 1
    assert server.counters.batch_sizes[0] == 50
    assert max(server.counters.batch_sizes[1:]) <= 16


@pytest.mark.parametrize("form", ["tei-base", "cohere-v1"])
def test_the_endpoint_batch_limit_is_respected_up_front(
    make_server: Callable[..., ServerHandle], form: str
) -> None:
    server = make_server(rerank_config(max_client_batch_size=8))
    client = client_for(form, server.url, batch_size=100, max_concurrency=2)
    client.score(QUERY, corpus(50))
    client.score(QUERY, corpus(20))
    assert server.counters.total(status=413) == 0
    assert max(server.counters.batch_sizes) == 8
    assert server.counters.total("/info") == 1


# -- protocol="auto" ----------------------------------------------------------------------------


def test_an_embedding_endpoint_is_refused_before_any_document_is_sent(
    make_server: Callable[..., ServerHandle], mode: str
) -> None:
    server = make_server(ServerConfig())  # primary: an embedding model, as a TEI embedder
    client = RerankClient(endpoint_url=server.url)
    with pytest.raises(ConfigurationError, match="serves an embedding model") as info:
        call(mode, client, "score", QUERY, DOCS)
    assert "hfrag/hash-embed" in str(info.value)
    assert "re-ranker" in str(info.value)
    assert server.counters.total() == server.counters.total("/info")  # nothing but the probe
    assert server.counters.bodies == []


@pytest.mark.parametrize(("route", "form"), [("/rerank", "tei"), ("/v1/rerank", "cohere")])
def test_an_explicit_route_wins_over_the_info_of_an_all_in_one_server(
    make_server: Callable[..., ServerHandle], mode: str, route: str, form: str
) -> None:
    # One server for every model (/info describes its embedding model): the route the user
    # wrote says which re-ranker to call, and no probe overrules it.
    server = make_server(ServerConfig())
    client = RerankClient(endpoint_url=server.url + route)
    scores = call(mode, client, "score", QUERY, DOCS)
    assert scores.shape == (len(DOCS),)
    assert client.protocol == form
    assert server.counters.total(route, 200) == 1


def test_a_generation_endpoint_is_refused(make_server: Callable[..., ServerHandle]) -> None:
    server = make_server(ServerConfig.default(primary="hfrag/extractive-gen"))
    with pytest.raises(ConfigurationError, match="text-generation"):
        RerankClient(endpoint_url=server.url).score(QUERY, DOCS)
    assert server.counters.bodies == []


def test_a_multi_label_classifier_endpoint_is_refused_by_auto(
    make_server: Callable[..., ServerHandle],
) -> None:
    server = make_server(classifier_config(("negative", "positive")))
    with pytest.raises(
        ConfigurationError, match=r"classifier with labels \['negative', 'positive'\]"
    ):
        RerankClient(endpoint_url=server.url).score(QUERY, DOCS)
    assert server.counters.bodies == []
    # TEI's own answer, for a client that insists on /rerank
    with pytest.raises(BackendError, match="not a re-ranker model"):
        RerankClient(endpoint_url=server.url + "/rerank", max_retries=0).score(QUERY, DOCS)


def test_an_endpoint_without_info_is_taken_for_the_hf_pipeline(srv: ServerHandle) -> None:
    srv.script("/info", CannedResponse(404, "Not Found", content_type="text/plain"))
    client = RerankClient(endpoint_url=srv.url)
    srv.script("/", CannedResponse(200, [[{"label": "LABEL_0", "score": 0.25}]] * len(DOCS)))
    np.testing.assert_allclose(client.score(QUERY, DOCS), [0.25] * len(DOCS))
    assert client.protocol == "hf-inference"
    assert srv.counters.bodies[-1]["inputs"][0] == {"text": QUERY, "text_pair": DOCS[0]}


def test_explicit_protocols_pick_their_routes(srv: ServerHandle) -> None:
    for protocol, path in (("tei", "/rerank"), ("cohere", "/v1/rerank")):
        client = RerankClient(endpoint_url=srv.url + "/", options=RerankOptions(protocol=protocol))
        assert client.protocol == protocol
        client.score(QUERY, DOCS)
        assert srv.counters.total(path, 200) == 1
    with pytest.raises(ConfigurationError, match="needs endpoint_url"):
        RerankClient(model=RERANK_MODEL, options=RerankOptions(protocol="tei"))


# -- what is sent -------------------------------------------------------------------------------


def test_bodies_of_each_wire_form(srv: ServerHandle) -> None:
    options = {"truncate": False, "truncation_direction": "left"}
    client_for("tei-route", srv.url, **options).score(QUERY, DOCS[:2])
    assert srv.counters.bodies[-1] == {
        "query": QUERY,
        "texts": DOCS[:2],
        "raw_scores": False,
        "truncate": False,
        "truncation_direction": "left",
    }
    client_for("cohere-v1", srv.url, served_model=RERANK_MODEL).score(QUERY, DOCS[:2])
    assert srv.counters.bodies[-1] == {
        "query": QUERY,
        "documents": DOCS[:2],
        "return_documents": False,
        "model": RERANK_MODEL,
    }
    client_for("router", srv.url).score(QUERY, DOCS[:2])
    assert srv.counters.bodies[-1] == {
        "inputs": [{"text": QUERY, "text_pair": d} for d in DOCS[:2]],
        "parameters": {"truncation": True, "top_k": 1000},  # every label, not the top one
    }


@pytest.mark.parametrize("form", ["router", "tei-route"])
def test_raw_scores_are_the_logits(srv: ServerHandle, form: str) -> None:
    scores = client_for(form, srv.url, raw_scores=True).score(QUERY, DOCS)
    np.testing.assert_allclose(scores, expected(srv, QUERY, DOCS, raw=True), rtol=1e-5)
    body = srv.counters.bodies[-1]
    assert body.get("raw_scores") is True or body["parameters"]["function_to_apply"] == "none"


def test_long_documents_are_truncated_unless_asked_not_to(srv: ServerHandle) -> None:
    long_doc = "paris " * 600
    for form in ("router", "tei-route"):
        assert np.isfinite(client_for(form, srv.url).score(QUERY, [long_doc])).all()
        with pytest.raises(InferenceError, match="must have less than 512 tokens"):
            client_for(form, srv.url, truncate=False).score(QUERY, [long_doc])


# -- multi-label classifiers on the hf-inference form --------------------------------------------


def classifier_config(labels: tuple[str, ...]) -> ServerConfig:
    backend = HashingBackend()
    spec = ModelSpec("org/classifier", "rerank", backend, labels=labels)
    return ServerConfig(models=[spec, *default_models()])


@pytest.mark.parametrize(
    ("labels", "label", "picked"),
    [
        (("LABEL_0", "LABEL_1"), None, "LABEL_1"),
        (("contradiction", "neutral", "entailment"), None, "entailment"),
        (("Irrelevant", "Relevant"), None, "Relevant"),
        (("a", "b", "c"), "b", "b"),
    ],
)
def test_the_relevant_label_of_a_multi_label_model(
    make_server: Callable[..., ServerHandle],
    labels: tuple[str, ...],
    label: str | None,
    picked: str,
) -> None:
    server = make_server(classifier_config(labels))
    client = RerankClient(
        model="org/classifier", router_url=server.url, options=RerankOptions(label=label)
    )
    scores = client.score(QUERY, DOCS)
    backend = server.config.model("org/classifier").backend
    # The server's classifier: logit on the last label, 0 on the others, softmax over them.
    for score, doc in zip(scores, DOCS, strict=True):
        logits = np.array([0.0] * (len(labels) - 1) + [backend.score(QUERY, doc)])
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert score == pytest.approx(probs[labels.index(picked)], rel=1e-5)


def test_an_unknown_label_set_asks_for_label(make_server: Callable[..., ServerHandle]) -> None:
    server = make_server(classifier_config(("a", "b", "c")))
    client = RerankClient(model="org/classifier", router_url=server.url)
    with pytest.raises(ConfigurationError, match=r"labels \['a', 'b', 'c'\].*label=\.\.\."):
        client.score(QUERY, DOCS)
    named = RerankClient(
        model="org/classifier", router_url=server.url, options=RerankOptions(label="z")
    )
    with pytest.raises(MalformedResponseError, match="has no label 'z'"):
        named.score(QUERY, DOCS)


# -- ranking ------------------------------------------------------------------------------------


def test_ties_keep_input_order_and_cuts_apply_after_the_merge(srv: ServerHandle) -> None:
    client = client_for("tei-route", srv.url, batch_size=2, max_concurrency=1)
    first = [{"index": 1, "score": 0.5}, {"index": 0, "score": 0.5}]  # documents 0 and 1
    second = [{"index": 1, "score": 0.75}, {"index": 0, "score": 0.5}]  # documents 3 and 2

    def rerank(**kw: Any) -> list[RerankResult]:
        srv.script("/rerank", CannedResponse(200, first), CannedResponse(200, second))
        return client.rerank("q", ["a", "b", "c", "d"], **kw)

    assert rerank() == [(3, 0.75), (0, 0.5), (1, 0.5), (2, 0.5)]
    assert rerank(top_n=2) == [(3, 0.75), (0, 0.5)]
    assert rerank(top_n=2, score_threshold=0.6) == [(3, 0.75)]
    assert rerank(score_threshold=0.5) == [(3, 0.75), (0, 0.5), (1, 0.5), (2, 0.5)]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"top_n": 0}, "top_n must be"),
        ({"top_n": True}, "top_n must be"),
        ({"top_n": 2.5}, "top_n must be"),
        ({"score_threshold": float("nan")}, "score_threshold must be"),
        ({"score_threshold": "0.5"}, "score_threshold must be"),
    ],
)
def test_bad_cuts_are_refused_before_sending(
    srv: ServerHandle, kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        client_for("tei-route", srv.url).rerank(QUERY, DOCS, **kwargs)
    assert srv.counters.total() == 0


# -- inputs -------------------------------------------------------------------------------------


def test_empty_documents_are_not_sent_and_rank_last(
    srv: ServerHandle, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hfrag.tasks")
    docs = ["", DOCS[3], "   ", DOCS[0], "\n"]
    client = client_for("tei-route", srv.url)
    scores = call(mode, client, "score", QUERY, docs)
    assert np.isneginf(scores[[0, 2, 4]]).all()
    np.testing.assert_allclose(scores[[1, 3]], expected(srv, QUERY, [DOCS[3], DOCS[0]]), rtol=1e-6)
    assert srv.counters.bodies[-1]["texts"] == [DOCS[3], DOCS[0]]
    assert "at positions 0, 2, 4" in caplog.text
    ranked = call(mode, client, "rerank", QUERY, docs)
    assert [r.index for r in ranked] == [1, 3]


def test_nothing_to_send_sends_nothing(srv: ServerHandle, mode: str) -> None:
    client = client_for("tei-base", srv.url)
    assert call(mode, client, "score", QUERY, []).shape == (0,)
    assert call(mode, client, "rerank", QUERY, []) == []
    assert np.isneginf(call(mode, client, "score", QUERY, ["", " "])).all()
    assert srv.counters.total() == 0


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_an_empty_query_is_an_input_error(srv: ServerHandle, mode: str, query: str) -> None:
    with pytest.raises(InputError, match="query is empty"):
        call(mode, client_for("tei-route", srv.url), "rerank", query, DOCS)
    assert srv.counters.total() == 0


@pytest.mark.parametrize(
    ("query", "docs", "words"),
    [
        (None, DOCS, "query must be a string"),
        (b"q", DOCS, "query must be a string"),
        (QUERY, "one string", "single string"),
        (QUERY, ["a", None], "input 1 is NoneType"),
        (QUERY, ["a", 3], "input 1 is int"),
    ],
)
def test_wrong_types_are_type_errors(srv: ServerHandle, query: Any, docs: Any, words: str) -> None:
    with pytest.raises(TypeError, match=words):
        client_for("tei-route", srv.url).score(query, docs)
    assert srv.counters.total() == 0


def test_pairs_with_several_queries(srv: ServerHandle, mode: str) -> None:
    pairs = [(QUERY, DOCS[0]), ("bananas", "bananas are yellow"), (QUERY, DOCS[3]), (QUERY, "")]
    scores = call(mode, client_for("router", srv.url), "score_pairs", pairs)
    want = [expected(srv, q, [d])[0] if d else -np.inf for q, d in pairs]
    np.testing.assert_allclose(scores, want, rtol=1e-6)
    with pytest.raises(TypeError, match="pair 1 is not"):
        client_for("router", srv.url).score_pairs([(QUERY, "a"), ("only one",)])  # type: ignore[list-item]


# -- malformed answers --------------------------------------------------------------------------


def tei(*middle: Any) -> list[Any]:
    """A TEI answer for three documents whose result for index 1 is ``middle``."""
    return [{"index": 0, "score": 0.1}, *middle, {"index": 2, "score": 0.3}]


def label(name: str = "LABEL_0", score: Any = 0.1) -> list[dict[str, Any]]:
    return [{"label": name, "score": score}]


MALFORMED = [
    ("tei-route", tei(), "no result for index 1"),
    ("tei-route", tei({"index": 0, "score": 0.2}), "index 0 appears twice"),
    ("tei-route", tei({"index": 3, "score": 0.2}), "index 3 is out of range"),
    ("tei-route", tei({"index": 1, "score": 0.2}, {"index": 3, "score": 0.2}), "out of range"),
    ("tei-route", tei({"index": -1, "score": 0.2}), "out of range"),
    ("tei-route", tei({"index": 1, "score": "0.2"}), "not a number"),
    ("tei-route", tei({"index": True, "score": 0.2}), "not an integer"),
    ("tei-route", tei({"index": 1.0, "score": 0.2}), "not an integer"),
    ("tei-route", tei({"index": 1, "score": False}), "not a number"),
    ("tei-route", tei({"index": 1}), "has no 'score'"),
    ("tei-route", tei(0.2), "not an object"),
    (
        "tei-route",
        b'[{"index":0,"score":NaN},{"index":1,"score":0},{"index":2,"score":0}]',
        "finite",
    ),
    (
        "tei-route",
        b'[{"index":0,"score":1e39},{"index":1,"score":0},{"index":2,"score":0}]',
        "float32",
    ),
    ("tei-route", {"results": []}, "expected a JSON array"),
    ("cohere-v1", [{"index": 0, "relevance_score": 0.1}], "expected an object with 'results'"),
    ("cohere-v1", {"data": []}, "expected an object with 'results'"),
    ("cohere-v1", {"results": tei({"index": 1, "score": 0.2})}, "no 'relevance_score'"),
    ("router", [label()] * 2, "2 answers for 3 documents"),
    ("router", [label(), [], label()], "not a list of labels"),
    ("router", [[{"score": 0.1}]] * 3, "without a string 'label'"),
    ("router", [label(score=None)] * 3, "not a number"),
    ("router", [label(score=[0.1])] * 3, "not a number"),
    ("router", [label("yes")[0], label("no")[0], label("yes")[0]], "only the top label"),
    ("router", {"error": None}, "expected a JSON array"),
]


@pytest.mark.parametrize(("form", "body", "words"), MALFORMED)
def test_malformed_answers_name_the_batch(
    srv: ServerHandle, form: str, body: Any, words: str
) -> None:
    srv.script(FORMS[form][1], CannedResponse(200, body, content_type="application/json"))
    with pytest.raises(MalformedResponseError) as info:
        client_for(form, srv.url).score(QUERY, ["a b", "c d", "e f"])
    assert words in str(info.value)
    assert "documents 0-2" in str(info.value)
    assert info.value.positions == (0, 1, 2)


def test_positions_of_a_failure_are_the_callers(srv: ServerHandle) -> None:
    srv.set_faults(FaultConfig(p_500=1.0), route="/rerank")
    docs = ["a", "", "b", "c", "", "d"]
    client = client_for("tei-route", srv.url, batch_size=2, max_concurrency=1, max_retries=0)
    with pytest.raises(BackendError) as info:
        client.score(QUERY, docs)
    assert info.value.positions == (0, 2, 3, 5)  # the empty ones were never to be sent


def test_a_huge_answer_is_refused_as_malformed(srv: ServerHandle) -> None:
    huge = [{"index": i, "score": 0.5} for i in range(200_000)]
    srv.script("/rerank", CannedResponse(200, huge))
    with pytest.raises(MalformedResponseError, match="out of range"):
        client_for("tei-route", srv.url).score(QUERY, DOCS)


def test_a_redirect_is_an_error_that_names_the_new_location(srv: ServerHandle) -> None:
    # hfrag follows no redirect (docs/PROTOCOL.md section 7): a POST must not become a GET, nor
    # reach a route of another form; the error says where the server points.
    for location in ("/rerank", "/v1/rerank"):
        srv.script("/old/rerank", CannedResponse(307, b"", headers={"Location": location}))
        client = RerankClient(endpoint_url=srv.url + "/old/rerank")
        with pytest.raises(RedirectError, match=location) as info:
            client.score(QUERY, DOCS)
        assert info.value.status == 307
        assert info.value.positions == tuple(range(len(DOCS)))
    assert srv.counters.total("/rerank") == srv.counters.total("/v1/rerank") == 0


# -- configuration, copies, event loops ---------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"batch_size": "8"}, "batch_size must be an integer"),
        ({"batch_size": True}, "batch_size must be an integer"),
        ({"max_concurrency": 0}, "max_concurrency must be >= 1"),
        ({"protocol": "openai"}, "protocol must be one of"),
        ({"truncation_direction": "middle"}, "truncation_direction"),
        ({"truncate": "yes"}, "truncate must be"),
        ({"raw_scores": 1}, "raw_scores must be"),
        ({"function_to_apply": "relu"}, "function_to_apply must be"),
        ({"label": ""}, "label must not be empty"),
        ({"label": 1}, "label must be a string"),
        ({"raw_scores": True, "function_to_apply": "softmax"}, "give one"),
        ({"protocol": "cohere", "raw_scores": True}, "no raw scores"),
        ({"protocol": "tei", "function_to_apply": "sigmoid"}, "hf-inference form"),
        ({"protocol": "cohere", "label": "LABEL_1"}, "hf-inference form"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        RerankOptions(**options)


def test_options_that_the_detected_form_cannot_carry_fail_before_sending(
    srv: ServerHandle,
) -> None:
    client = RerankClient(endpoint_url=srv.url, options=RerankOptions(label="LABEL_0"))
    with pytest.raises(ConfigurationError, match="hf-inference form"):
        client.score(QUERY, DOCS)
    assert srv.counters.bodies == []


def test_a_typo_in_an_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="batchsize"):
        RerankOptions(batchsize=8)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="options must be a RerankOptions"):
        RerankClient(model=RERANK_MODEL, options={"batch_size": 8})  # type: ignore[arg-type]


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_copy_is_a_fresh_working_client(srv: ServerHandle, how: str) -> None:
    # A token given as a Secret travels in a pickle; a plain string would stay behind.
    token = Secret("secret-key")
    client = client_for("tei-base", srv.url, token=token, headers={"X-Trace": "1"})
    client.score(QUERY, DOCS)  # connections open, protocol remembered
    other = pickle.loads(pickle.dumps(client)) if how == "pickle" else copy.deepcopy(client)
    assert other.protocol is None
    assert (other._sync, other._async) == (None, None)
    np.testing.assert_allclose(other.score(QUERY, DOCS), expected(srv, QUERY, DOCS), rtol=1e-6)
    assert srv.counters.headers[-1]["authorization"] == "Bearer secret-key"
    assert srv.counters.headers[-1]["x-trace"] == "1"
    assert client.score(QUERY, DOCS[:1]).shape == (1,)  # the original still works


def test_sync_call_from_inside_a_running_loop(srv: ServerHandle) -> None:
    client = client_for("cohere-v1", srv.url)

    async def inside() -> np.ndarray:
        return client.score(QUERY, DOCS)  # as a Jupyter cell would

    np.testing.assert_array_equal(asyncio.run(inside()), asyncio.run(client.ascore(QUERY, DOCS)))


def test_a_422_batch_size_answer_is_split_too(make_server: Callable[..., ServerHandle]) -> None:
    server = make_server(rerank_config(max_client_batch_size=16, validation_status=422))
    docs = corpus(100)
    client = client_for("router", server.url, batch_size=40, max_concurrency=1)
    np.testing.assert_allclose(client.score(QUERY, docs), expected(server, QUERY, docs), rtol=1e-6)
    assert server.counters.total(status=422) == 1
    assert max(server.counters.batch_sizes[1:]) <= 16


def test_a_failure_in_pairs_names_the_callers_positions(srv: ServerHandle) -> None:
    srv.script(ROUTER_PATH, CannedResponse(200, [[{"label": "LABEL_0", "score": 0.5}]] * 2))
    srv.set_faults(FaultConfig(p_500=1.0), route=ROUTER_PATH)
    pairs = [("q1", "a"), ("q2", "b"), ("q1", "c"), ("q2", "d"), ("q3", "e")]
    client = client_for("router", srv.url, max_retries=0)
    with pytest.raises(BackendError) as info:
        client.score_pairs(pairs)
    assert info.value.positions == (1, 3, 4)  # q1's pairs were scored; q2 failed, q3 never ran


def test_a_redirect_to_another_host_does_not_carry_the_token(
    srv: ServerHandle, make_server: Callable[..., ServerHandle]
) -> None:
    other = make_server(rerank_config())
    srv.script("/rerank", CannedResponse(307, b"", headers={"Location": other.url + "/rerank"}))
    client = client_for("tei-route", srv.url, token="secret-key")
    with pytest.raises(RedirectError, match=other.url):
        client.score(QUERY, DOCS)
    assert srv.counters.headers[-1]["authorization"] == "Bearer secret-key"
    assert other.counters.total() == 0  # nothing, and so no token, went to the other host


def test_an_explicit_protocol_is_trusted_over_info(
    make_server: Callable[..., ServerHandle],
) -> None:
    server = make_server(ServerConfig())  # /info describes the embedding primary
    for protocol in ("tei", "cohere"):
        client = RerankClient(endpoint_url=server.url, options=RerankOptions(protocol=protocol))
        np.testing.assert_allclose(
            client.score(QUERY, DOCS), expected(server, QUERY, DOCS), rtol=1e-6
        )
