"""The aiohttp application: routes of the three layouts and the request pipeline.

Every request goes through one middleware, in this order:

1. record its headers and decoded body (``Counters.headers``/``bodies``); a body above
   ``payload_limit`` gets axum's 413;
2. a scripted ``CannedResponse`` queued for its path, if any, is sent instead of anything else;
3. GET routes: the credential check (``/health`` and ``GET /`` stay public), then the handler;
4. POST routes: one fault draw; the credential check (401); cold start (503, or held with
   ``x-wait-for-model: true``); an injected loading/429/500/502/drop answer; a stall; then the
   handler, inside the ``max_concurrency`` queue; after it, the simulated service time of
   what the handler ``admit``-ted is spent (a stream spends it before its first event), and
   the answer may be truncated or its stream cut by the drawn fault.

Handlers hold none of this: they parse, call ``inference.admit(items, texts)`` once, compute
and answer. Faults, latency and counters are applied here, around them.

A path with no route gets aiohttp's 404/405 without any of this. The answer's status goes to
``Counters.requests`` (-1 for a dropped connection, or for an answer whose client had already
left, e.g. after its own timeout during a stall); the inputs of a 200 answer go to
``texts_ok``/``items_ok`` only if the answer was delivered whole (not truncated or cut) to a
client still there. Each drawn fault is counted in ``Counters.faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hfrag.server.config import ServerConfig
from hfrag.server.faults import Fault, FaultRuntime
from hfrag.server.inference import (
    STATE_KEY,
    RequestContext,
    begin,
    current,
    end,
    json_response,
    state_of,
)
from hfrag.server.logs import access_log
from hfrag.server.routes_chat import chat_completions
from hfrag.server.routes_cohere import cohere_rerank_route
from hfrag.server.routes_hub import model_info
from hfrag.server.routes_openai import (
    PROVIDER_ROUTES,
    models_route,
    openai_embeddings_route,
    provider_route,
)
from hfrag.server.routes_router import model_route, pipeline_route
from hfrag.server.routes_sparse import embed_sparse_route, tokenize_route
from hfrag.server.routes_tei import (
    embed_route,
    feature_extraction,
    predict_route,
    rerank_route,
    rerank_with,
    tei_info,
)
from hfrag.server.routes_tgi import (
    generate_route,
    generate_stream_route,
    text_generation,
    tgi_info,
)
from hfrag.server.state import CannedResponse, ServerState
from hfrag.server.validation import ApiError

__all__ = ["LAYOUTS", "build_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = frozenset({"/health", "/ping"})
BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


def _error_response(err: ApiError) -> web.Response:
    if isinstance(err.body, dict):
        resp = json_response(err.body, status=err.status, headers=err.headers)
    else:
        body = err.body.encode() if isinstance(err.body, str) else err.body
        resp = web.Response(status=err.status, body=body, headers=err.headers)
        if err.content_type:
            resp.headers["Content-Type"] = err.content_type
    return resp


def _drop(request: web.Request) -> web.Response:
    current().dropped = True
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


async def _send_canned(request: web.Request, canned: CannedResponse) -> web.StreamResponse:
    if canned.drop:
        return _drop(request)
    if canned.sse is not None:
        resp = web.StreamResponse(status=canned.status, headers=canned.headers)
        resp.headers["Content-Type"] = canned.content_type or "text/event-stream"
        await resp.prepare(request)
        for line in canned.sse:
            await resp.write(line.encode() + b"\n")
        await resp.write_eof()
        return resp
    body = canned.body
    content_type = canned.content_type
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        content_type = content_type or "application/json"
    elif isinstance(body, str):
        data = body.encode()
        content_type = content_type or "text/plain; charset=utf-8"
    else:
        data = body
    resp = web.Response(status=canned.status, body=data, headers=canned.headers)
    if content_type:
        resp.headers["Content-Type"] = content_type
    return resp


def _model_name(request: web.Request, body: Any) -> str:
    """The model a request addresses, for loading messages."""
    state = state_of(request)
    if "model_id" in request.match_info:
        return request.match_info["model_id"]
    if request.path.endswith("/chat/completions") and isinstance(body, dict):
        model = body.get("model")
        if isinstance(model, str) and model and model != "tgi":
            return model
    return state.config.primary.name


def _authorized(request: web.Request, state: ServerState) -> web.Response | None:
    key = state.config.api_key
    if key is None or request.headers.get("Authorization") == f"Bearer {key}":
        return None
    if request.path.startswith("/hf-inference/"):
        return json_response({"error": "Invalid credentials in Authorization header"}, status=401)
    return web.Response(status=401)


def _fault_response(
    request: web.Request,
    fault: Fault,
    runtime: FaultRuntime,
    model: str,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The answer of an injected fault; a 429 carries ``headers`` (its ``Retry-After`` by
    default; an empty value leaves it out, as TEI's overloaded answer has none)."""
    config = runtime.config
    if fault is Fault.LOADING:
        loading = {
            "error": f"Model {model} is currently loading",
            "estimated_time": config.estimated_time,
        }
        return json_response(loading, status=503)
    if fault is Fault.RATE_LIMIT:
        if request.path.startswith("/hf-inference/"):
            body: dict[str, Any] = {"error": "Rate limit reached. Please retry later."}
        elif request.path in ("/embed", "/rerank", "/predict"):
            body = {"error": "Model is overloaded", "error_type": "Overloaded"}
        else:
            body = {"error": "Model is overloaded", "error_type": "overloaded"}
        sent = headers if headers is not None else {"Retry-After": f"{config.retry_after:g}"}
        return json_response(body, status=429, headers={k: v for k, v in sent.items() if v})
    if fault is Fault.ERROR_500:
        return json_response({"error": "Internal Server Error"}, status=500)
    if fault is Fault.ERROR_502:
        return web.Response(status=502, text=BAD_GATEWAY_HTML, content_type="text/html")
    return _drop(request)


async def _truncate(request: web.Request, resp: web.Response) -> web.StreamResponse:
    """Send ``resp``'s headers with its full length, half of its body, then hang up."""
    body = resp.body if isinstance(resp.body, bytes) else b""
    out = web.StreamResponse(status=resp.status, headers=resp.headers)
    out.content_length = len(body)
    await out.prepare(request)
    await out.write(body[: len(body) // 2])
    current().cut = True
    if request.transport is not None:
        request.transport.close()
    return out


async def _handle_post(
    request: web.Request, handler: Handler, state: ServerState, body: Any
) -> web.StreamResponse:
    runtime = state.faults.for_path(request.path)
    fault = runtime.draw()
    state.counters.record_fault(fault.value)
    denied = _authorized(request, state)
    if denied is not None:
        return denied
    model = _model_name(request, body)
    cold = runtime.cold_left()
    if cold > 0:
        if request.headers.get("x-wait-for-model", "").lower() == "true":
            await asyncio.sleep(cold)
        else:
            loading = {
                "error": f"Model {model} is currently loading",
                "estimated_time": round(cold, 3),
            }
            return json_response(loading, status=503)
    if fault in (Fault.LOADING, Fault.RATE_LIMIT, Fault.ERROR_500, Fault.ERROR_502, Fault.DROP):
        return _fault_response(request, fault, runtime, model)
    if fault is Fault.STALL:
        await asyncio.sleep(runtime.config.stall_seconds)
    allowed, rate_headers = runtime.rate()
    if not allowed:
        return _fault_response(request, Fault.RATE_LIMIT, runtime, model, rate_headers)
    if not runtime.admit():
        return _fault_response(request, Fault.RATE_LIMIT, runtime, model, {"Retry-After": ""})
    context = current()
    context.fault = fault
    context.runtime = runtime
    semaphore = runtime.semaphore()
    try:
        async with semaphore if semaphore is not None else contextlib.nullcontext():
            state.counters.enter()
            try:
                resp = await _call(request, handler)
                if resp.status == 200 and not resp.prepared:  # streams spend it themselves
                    await context.spend()  # the simulated service time of ``admit``
            finally:
                state.counters.leave()
    finally:
        runtime.leave()
    if not resp.prepared:
        resp.headers.update(rate_headers)
    if fault is Fault.TRUNCATE and isinstance(resp, web.Response) and not resp.prepared:
        return await _truncate(request, resp)
    return resp


async def _call(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        if isinstance(err.body, dict) and err.body.get("error_type") == "Validation":
            err.status = state_of(request).config.validation_status
        return _error_response(err)


def _undeliverable(request: web.Request, resp: web.StreamResponse) -> bool:
    """True when the answer is still to be sent and its client has closed the connection."""
    transport = request.transport
    return not resp.prepared and (transport is None or transport.is_closing())


@web.middleware
async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request pipeline described in the module docstring."""
    state = request.app[STATE_KEY]
    headers = {k.lower(): v for k, v in request.headers.items()}
    status = -1
    context = RequestContext()
    context.models = state.models
    context.counters = state.counters
    token = begin(context)
    posted = request.method == "POST"
    if posted:
        state.counters.arrive()
    try:
        body: Any = None
        has_body = False
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                state.counters.record_received(headers, None, False)
                text = "Failed to buffer the request body: length limit exceeded"
                too_large = web.Response(status=413, text=text)
                status = too_large.status
                return too_large
            context.raw = raw
            has_body = bool(raw)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        state.counters.record_received(headers, body, has_body)
        canned = state.scripts.pop(request.path)
        resp: web.StreamResponse
        if canned is not None:
            resp = await _send_canned(request, canned)
        elif getattr(request.match_info, "http_exception", None) is not None:
            resp = await handler(request)  # no such route: aiohttp's 404/405, nothing else
        elif request.method == "POST":
            resp = await _handle_post(request, handler, state, body)
        elif request.path in PUBLIC_PATHS or request.path == "/":
            resp = await _call(request, handler)
        else:
            denied = _authorized(request, state)  # a Response is a mapping: never test its truth
            resp = denied if denied is not None else await _call(request, handler)
        status = -1 if context.dropped or _undeliverable(request, resp) else resp.status
        if status == 200 and not context.cut and context.ok_items:
            state.counters.record_ok(context.ok_items, context.ok_texts)
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        status = 500
        raise
    finally:
        end(token)
        if posted:
            state.counters.depart()
        state.counters.record_answer(request.path, status)


async def health(request: web.Request) -> web.Response:
    """``GET /health`` (also ``GET /`` and ``/ping``): 200 with an empty body, as TEI."""
    return web.Response(status=200)


async def info(request: web.Request) -> web.Response:
    """``GET /info``: TGI's shape for a generator primary, TEI's otherwise."""
    state = state_of(request)
    spec = state.config.primary
    if spec.kind == "generate":
        return json_response(tgi_info(spec, state.config))
    return json_response(tei_info(spec, state.config))


async def root(request: web.Request) -> web.StreamResponse:
    """``POST /``: TEI's and TGI's default route, chosen by the primary model's kind."""
    state = state_of(request)
    spec = state.config.primary
    if spec.kind == "embed":
        return await feature_extraction(request, spec, flat_single=False)
    if spec.kind == "rerank":
        return await rerank_with(request, spec)
    if spec.kind == "sparse":  # TEI serves a SPLADE model's /embed_sparse at POST /
        return await embed_sparse_route(request)
    return await text_generation(request, spec, wrapped=True)


async def _close_models(app: web.Application) -> None:
    app[STATE_KEY].models.close()


#: The route sets of ``build_app(layout=...)``: one per kind of deployment ``hfrag serve``
#: stands for (see ``deployments``); ``all`` is every route on one listener (``serve_in_thread``).
LAYOUTS = ("all", "tei-embed", "tei-rerank", "tgi", "router", "tei-sparse")
_TEI = frozenset({"all", "tei-embed", "tei-rerank", "tei-sparse"})
_SPARSE = frozenset({"all", "tei-sparse"})
_EMBED = frozenset({"all", "tei-embed"})
_RERANK = frozenset({"all", "tei-rerank"})
_TGI = frozenset({"all", "tgi"})
_CHAT = frozenset({"all", "tgi", "router"})
_ROUTER = frozenset({"all", "router"})
_SERVER = frozenset(
    {"all", "tei-embed", "tei-rerank", "tgi", "tei-sparse"}
)  # a real server's own /info, POST /
_EVERY = frozenset(LAYOUTS)


def _routes() -> list[tuple[str, str, Handler, frozenset[str]]]:
    """``(method, path, handler, layouts)`` of every route."""
    routes: list[tuple[str, str, Handler, frozenset[str]]] = [
        ("GET", "/health", health, _EVERY),
        ("GET", "/ping", health, _EVERY),
        ("GET", "/", health, _EVERY),
        ("GET", "/info", info, _SERVER),
        ("POST", "/", root, _SERVER),
        ("POST", "/embed", embed_route, _EMBED),
        ("POST", "/rerank", rerank_route, _RERANK),
        ("POST", "/predict", predict_route, _RERANK),
        ("POST", "/generate", generate_route, _TGI),
        ("POST", "/generate_stream", generate_stream_route, _TGI),
        ("POST", "/v1/chat/completions", chat_completions, _CHAT),
        ("POST", "/hf-inference/models/{model_id:.+}/pipeline/{task}", pipeline_route, _ROUTER),
        ("POST", "/hf-inference/models/{model_id:.+}", model_route, _ROUTER),
        ("POST", "/v1/rerank", cohere_rerank_route, _RERANK),
        ("POST", "/v2/rerank", cohere_rerank_route, _RERANK),
        ("POST", "/v1/embeddings", openai_embeddings_route, _EMBED),
        ("POST", "/embeddings", openai_embeddings_route, _EMBED),
        ("POST", "/embed_sparse", embed_sparse_route, _SPARSE),
        ("POST", "/tokenize", tokenize_route, _TEI),
    ]
    for provider, path in PROVIDER_ROUTES.items():
        routes.append(("POST", path, provider_route(provider), _ROUTER))
    routes.append(("GET", "/v1/models", models_route, _CHAT))
    routes.append(("GET", "/api/models/{model_id:.+}", model_info, _ROUTER))
    return routes


def build_app(
    config: ServerConfig | None = None,
    state: ServerState | None = None,
    *,
    layout: str = "all",
) -> web.Application:
    """The server application for ``config`` (or an existing ``state``).

    ``layout`` picks the routes (see ``LAYOUTS``): ``all`` answers every route of every layout
    on one listener; ``tei-embed``, ``tei-rerank`` and ``tgi`` only what that server answers;
    ``router`` the HF router's routes.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if state is None:
        state = ServerState(config or ServerConfig())
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    app = web.Application(middlewares=[pipeline], client_max_size=state.config.payload_limit)
    app.middlewares.insert(0, access_log)  # outermost: logs the latency the client saw
    app[STATE_KEY] = state
    app.on_cleanup.append(_close_models)
    for method, path, handler, layouts in _routes():
        if layout in layouts:
            app.router.add_route(method, path, handler)
    return app
