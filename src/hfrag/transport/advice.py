"""What to do about a failed call: the one place where an error learns its advice.

An error's class knows the status; only the transport knows the rest of the story: which kind of
target was called (the router or an endpoint), the path it posted to, whether a credential was
sent, whether the ambient ``HF_TOKEN`` was withheld by the credential rule, and how long hfrag
tried. :func:`advise` is called once, when the drivers give up on a request, and returns a copy
of the error (same class) that says all of that:

- 401/403: whether a credential was sent; on a host that is not Hugging Face's, that ``HF_TOKEN``
  was withheld and how to pass ``token=``; the fine-grained-token hint on Hugging Face hosts only.
- 404/405 from an endpoint: the path posted to, the routes TEI and TGI serve, and that a base URL
  is enough. From the router: check the model id.
- A prompt name the model does not define: the name, and the prompts the server listed.
- Connection failures: a host name that does not resolve, a refused connection, how long hfrag
  tried.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from hfrag.errors import (
    CONNECTION_REFUSED,
    NAME_NOT_RESOLVED,
    AuthenticationError,
    InferenceError,
    InvalidRequestError,
    NotFoundError,
)
from hfrag.transport.credentials import implicit_token, is_hf_host
from hfrag.transport.responses import PROMPT_PROBLEM
from hfrag.transport.retry import REFUSED_BUDGET
from hfrag.transport.urls import DEFAULT_ROUTER_URL, ROUTER_ENV, redact_url

__all__ = ["SERVER_ROUTES", "TargetKind", "advise", "defined_prompts"]

TargetKind = Literal["router", "endpoint"]

#: The routes each server type answers, for the advice on a 404/405 from an endpoint.
SERVER_ROUTES: Mapping[str, str] = {
    "TEI (embeddings, reranking)": "POST /, /embed, /rerank, /predict, /v1/embeddings",
    "TGI (generation, chat)": "POST /, /generate, /generate_stream, /v1/chat/completions",
    "an Inference Endpoint": "POST /",
}

_FINE_GRAINED = "a fine-grained token needs the 'Make calls to Inference Providers' permission"
_LISTED = re.compile(r"prompts?\W*:?\s*\[([^\]]*)\]", re.IGNORECASE)
_QUOTED = re.compile(r"[\"'`]([^\"'`]+)[\"'`]")


def defined_prompts(message: str) -> list[str] | None:
    """The prompt names a server's message lists (TEI: ``Available prompts: ["a", "b"]``)."""
    match = _LISTED.search(message)
    if match is None:
        return None
    return _QUOTED.findall(match.group(1))


def guess_target(url: str) -> TargetKind:
    """Router or endpoint, from the URL alone (for callers that did not say)."""
    parts = urlsplit(url)
    router = urlsplit(os.environ.get(ROUTER_ENV) or DEFAULT_ROUTER_URL)
    if parts.netloc == router.netloc or "/hf-inference/models/" in parts.path:
        return "router"
    return "endpoint"


def _ambient_source() -> str | None:
    """Where the ambient token comes from, if there is one (never the token itself)."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(name, "").strip():
            return name
    return "the token saved by `hf auth login`" if implicit_token() else None


def _auth_advice(url: str, headers: Mapping[str, str], explicit: bool) -> str:
    sent = "authorization" in headers
    if is_hf_host(url):
        if sent:
            return (
                "The Hugging Face token that was sent was refused: check it (`hf auth whoami`); "
                + _FINE_GRAINED
            )
        return (
            "No token was sent: set HF_TOKEN, run `hf auth login`, or pass token=...; "
            + _FINE_GRAINED
        )
    host = urlsplit(url).netloc
    if sent:
        given = "as token=..." if explicit else "in headers=..."
        return (
            f"hfrag sent the credential given {given} (Authorization header) and {host} "
            "refused it: check that it is this server's key (TEI and TGI: --api-key)"
        )
    source = _ambient_source()
    if source is not None:
        return (
            f"hfrag sent no credential: {source} is set, but the ambient Hugging Face token is "
            f"sent only to Hugging Face hosts and {host} is not one. Pass token=... to send a "
            "credential to this server (as 'Authorization: Bearer ...')"
        )
    return (
        f"hfrag sent no credential to {host}: pass token=... (sent as 'Authorization: Bearer ...')"
    )


def _not_found_advice(method: str, url: str, target: TargetKind) -> str:
    if target == "router":
        return (
            "Check the model id (exact spelling and case) and that a provider serves it for "
            "this task on the router; for your own server, pass endpoint_url=... instead"
        )
    parts = urlsplit(url)
    path = parts.path or "/"
    routes = "; ".join(f"{kind}: {paths}" for kind, paths in SERVER_ROUTES.items())
    return (
        f"hfrag sent {method} {path} to {parts.scheme}://{parts.netloc}, which does not serve "
        f"that path. Routes by server type: {routes}. The base URL "
        f"({parts.scheme}://{parts.netloc}) is enough: hfrag picks the route for the task"
    )


def _prompt_advice(message: str, body: Any) -> str:
    prompt = body.get("prompt_name") if isinstance(body, dict) else None
    named = f"prompt_name={prompt!r}" if prompt else "the prompt name"
    defined = defined_prompts(message)
    if defined:
        listed = ", ".join(repr(p) for p in defined)
        what = f"the model defines {listed}"
    elif defined is not None or "no prompts" in message.lower():
        what = "the model defines no prompts"
    else:
        what = "the server did not list the prompts it defines"
    return (
        f"{named} is not a prompt of this model: {what}. Pass one of them as "
        "query_prompt_name/document_prompt_name/prompt_name, or prepend text yourself with "
        "query_instruction/document_instruction"
    )


def _connection_advice(error: InferenceError) -> str | None:
    if error.error_type == NAME_NOT_RESOLVED:
        return (
            "Check the host name in endpoint_url or router_url (or $HFRAG_ROUTER_URL); "
            "a name that does not resolve is not retried"
        )
    if error.error_type == CONNECTION_REFUSED:
        return (
            "Check that the server is running and the host and port are right; a refused "
            f"connection is retried for {REFUSED_BUDGET:g} s at most"
        )
    return None


def advise(
    error: InferenceError,
    *,
    method: str,
    url: str,
    body: Any,
    headers: Mapping[str, str],
    explicit_token: bool,
    target: TargetKind | None,
    attempts: int,
    elapsed: float,
) -> InferenceError:
    """A copy of ``error`` that says what to do about it, and how long hfrag tried.

    ``headers`` are the (lower-cased) headers the request carried; ``explicit_token`` whether a
    ``token=`` was configured; ``target`` the kind of target the client calls (guessed from the
    URL when None).
    """
    url = redact_url(url)  # user-info and query values never reach a message
    kind = target or guess_target(url)
    advice: str | None = None
    if isinstance(error, AuthenticationError):
        advice = _auth_advice(url, headers, explicit_token)
    elif isinstance(error, NotFoundError) and error.status in (404, 405):
        advice = _not_found_advice(method, url, kind)
    elif isinstance(error, InvalidRequestError) and PROMPT_PROBLEM.search(error.message):
        advice = _prompt_advice(error.message, body)
    elif error.status is None:
        advice = _connection_advice(error)
    changes: dict[str, Any] = {}
    if advice is not None:
        changes["advice"] = advice
    if attempts > 1 or error.status is None:
        changes.update(attempts=attempts, elapsed=elapsed)
    return error.replaced(**changes) if changes else error
