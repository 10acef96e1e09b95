"""One log line per request (``hfrag serve --log-level``): method, path, status, items, latency.

The middleware sits outside the request pipeline, so the latency it logs is what the client saw
(simulated latency, queueing and faults included). Lines go to the ``hfrag.server`` logger at
INFO; nothing is computed when that level is off. Request bodies are never logged (they may hold
user data), only the number of items they carry; headers are never logged (they may hold keys).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

__all__ = ["access_log", "count_items", "logger"]

logger = logging.getLogger("hfrag.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Where each layout keeps its items: TEI /rerank and Cohere-style rerank first (their "query" is
# not an item), then feature-extraction / generation inputs, OpenAI input, chat messages.
_ITEM_KEYS = ("texts", "documents", "inputs", "input", "messages")


def count_items(body: Any) -> int | None:
    """How many items (texts, pairs, messages) a decoded request body carries, if it says."""
    if not isinstance(body, dict):
        return None
    for key in _ITEM_KEYS:
        value = body.get(key)
        if isinstance(value, list):
            return len(value)
        if isinstance(value, str):
            return 1
    return None


async def _items(request: web.Request) -> str:
    if request.method != "POST" or (not request.can_read_body and not request.body_exists):
        return "-"
    try:
        raw = await request.read()  # already read by the pipeline: aiohttp returns its copy
        count = count_items(json.loads(raw)) if raw else None
    except (ValueError, RuntimeError, ConnectionError):
        count = None
    return "-" if count is None else str(count)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log ``METHOD PATH STATUS items=N LATENCYms`` for every request when INFO is on."""
    if not logger.isEnabledFor(logging.INFO):
        return await handler(request)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = (time.perf_counter() - start) * 1000
        items = await _items(request)
        logger.info(
            "%s %s %d items=%s %.1fms", request.method, request.path, status, items, elapsed
        )
