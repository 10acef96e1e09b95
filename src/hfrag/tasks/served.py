"""What a server serves, so that an error from a server of another task names it.

A class pointed at the wrong kind of server fails in that server's terms: TEI answers a chat
request with a 404, TGI answers an embedding batch with a 422 about ``inputs``, an embedding
server answers a prompt with vectors, which hfrag's text-generation decoder then calls
malformed. None of those says the cause. When a call to an endpoint fails that way,
:func:`name_the_cause` asks what the server serves (its ``GET /info``, read once per client, or
the 422's own words) and gives the error advice that says so:

    http://127.0.0.1:8080 serves an embedding model (sentence-transformers/all-MiniLM-L6-v2,
    from its GET /info), not chat or text generation: point endpoint_url at a chat or
    text-generation server (TGI, vLLM, llama.cpp), or give model=... for the router

It also names, for a refused connection, the URL the user gave apart from the route or probe
hfrag was sending to. The error keeps its class; only its advice changes. Facts about ``/info``
and the 422 wording: docs/PROTOCOL.md ("What a server serves").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from hfrag.errors import (
    CONNECTION_REFUSED,
    BackendError,
    InferenceError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
)
from hfrag.transport.retry import REFUSED_BUDGET
from hfrag.transport.urls import redact_url

if TYPE_CHECKING:
    from hfrag.tasks.base import TaskClient

__all__ = ["Task", "name_the_cause", "served_from_body", "served_from_info", "wrong_server_advice"]

#: The task a client does (``TaskClient.task_kind``).
Task = Literal["embeddings", "reranking", "generation"]
Served = Literal["embeddings", "reranking", "classification", "generation"]

_WANTED: Mapping[Task, str] = {
    "embeddings": "embeddings",
    "reranking": "reranking",
    "generation": "chat or text generation",
}
_FIX: Mapping[Task, str] = {
    "embeddings": "point endpoint_url at an embedding server (TEI with an embedding model, an "
    "OpenAI-compatible /v1/embeddings)",
    "reranking": "point endpoint_url at a re-ranker (TEI with a cross-encoder such as "
    "BAAI/bge-reranker-v2-m3, a Cohere-style /v1/rerank)",
    "generation": "point endpoint_url at a chat or text-generation server (TGI, vLLM, llama.cpp)",
}
_KINDS: Mapping[Served, str] = {
    "embeddings": "an embedding model",
    "reranking": "a re-ranker",
    "classification": "a text classifier",
    "generation": "a text-generation model",
}
#: A 422 from an axum server (TEI, TGI) whose JSON body lacked the field a route needs names
#: that field: "Failed to deserialize the JSON body into the target type: missing field `x`".
_MISSING_FIELD = re.compile(r"missing field `(\w+)`")
_ROUTE_OF_FIELD: Mapping[str, tuple[Served, str]] = {
    "messages": ("generation", "chat completions (it asks for `messages`)"),
    "query": ("reranking", "reranking (it asks for `query`)"),
    "texts": ("reranking", "reranking (it asks for `texts`)"),
}
#: TGI's /generate wants one prompt string in ``inputs``; an embedding batch is a list.
_PROMPT_STRING = "inputs: invalid type: sequence, expected a string"


def served_from_info(info: Mapping[str, Any]) -> tuple[Served, str] | None:
    """What an endpoint's ``GET /info`` says it serves, and its model id (None: it does not say)."""
    model = info.get("model_id")
    name = model if isinstance(model, str) and model else "unknown"
    model_type = info.get("model_type")
    if isinstance(model_type, Mapping):
        if "embedding" in model_type:
            return "embeddings", name
        if "reranker" in model_type:
            return "reranking", name
        if "classifier" in model_type:
            return "classification", name
    if (
        info.get("router") == "text-generation-router"
        or "max_total_tokens" in info
        or info.get("model_pipeline_tag") == "text-generation"
    ):
        return "generation", name
    return None


def served_from_body(message: str) -> tuple[Served, str] | None:
    """What a 422's message says the route wants, when it names the field it missed."""
    if _PROMPT_STRING in message:
        return "generation", "text generation (it wants one prompt string in `inputs`)"
    match = _MISSING_FIELD.search(message)
    return _ROUTE_OF_FIELD.get(match.group(1)) if match else None


def _accepts(task: Task, served: Served) -> bool:
    return served == task or (task == "reranking" and served == "classification")


def wrong_server_advice(
    task: Task, where: str, info: Mapping[str, Any], message: str = ""
) -> str | None:
    """The advice for a client doing ``task`` whose call to ``where`` failed, when the server
    serves another task (from ``info``, else from the error ``message``); None otherwise."""
    from_info = served_from_info(info)
    if from_info is not None:
        served, model = from_info
        if _accepts(task, served):
            return None
        what = f"{_KINDS[served]} ({model}, from its GET /info)"
    else:
        from_body = served_from_body(message)
        if from_body is None or _accepts(task, from_body[0]):
            return None
        what = f"a route for {from_body[1]}"
    fix = f"{_FIX[task]}, or give model=... for the router"
    return f"{where} serves {what}, not {_WANTED[task]}: {fix}"


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path or "/"


def _refused_advice(given: str, sent_to: str | None) -> str:
    doing = ""
    if sent_to is not None and redact_url(sent_to).rstrip("/") != given.rstrip("/"):
        path = _path(sent_to)
        probe = " (a probe of what the server is)" if path in ("/info", "/v1/models") else ""
        doing = f"; hfrag was sending to {path} there{probe}"
    return (
        f"Nothing is listening at {given}, the endpoint_url given{doing}. Check that the server "
        f"is running and the host and port are right; a refused connection is retried for "
        f"{REFUSED_BUDGET:g} s at most"
    )


def _refused(error: InferenceError) -> bool:
    """A refused connection, or the deadline that ended its retries (same error type)."""
    return error.status is None and error.error_type == CONNECTION_REFUSED


def _task_failure(error: InferenceError) -> bool:
    """Whether ``error`` is how a server of another task answers (not a transient failure)."""
    if isinstance(error, NotFoundError):
        return error.status in (404, 405)
    if isinstance(error, InvalidRequestError):
        return error.status in (400, 422)
    if isinstance(error, BackendError):
        return error.status == 424
    return isinstance(error, MalformedResponseError)


async def name_the_cause(client: TaskClient, error: InferenceError) -> InferenceError:
    """``error`` with advice naming its cause when the endpoint serves another task or refused
    the connection; ``error`` itself otherwise (and always for a router target)."""
    target = client.target
    if target.endpoint_url is None:
        return error
    given = target.describe()
    if _refused(error):
        return error.replaced(advice=_refused_advice(given, error.url))
    task = client.task_kind
    if task is None or not _task_failure(error):
        return error
    info = await client._endpoint_info()
    advice = wrong_server_advice(task, given, info, error.message)
    return error if advice is None else error.replaced(advice=advice)
