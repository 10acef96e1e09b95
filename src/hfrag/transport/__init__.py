"""hfrag's inference transport: HTTP only, nothing about embeddings or chat.

A :class:`Request` goes in; decoded JSON, or a stream of event payloads, comes out, or an error
from :mod:`hfrag.errors`. URL rules live in :mod:`~hfrag.transport.urls`, the credential rule in
:mod:`~hfrag.transport.credentials`, scrubbing credentials from errors and logs in
:mod:`~hfrag.transport.redaction`, retry decisions in :mod:`~hfrag.transport.retry`, the
whole-call deadline in :mod:`~hfrag.transport.deadline`, SSE framing in
:mod:`~hfrag.transport.sse`; the two drivers share all of them.
"""

from hfrag.transport._loop import run_async, run_sync
from hfrag.transport.aio import AsyncTransport
from hfrag.transport.config import USER_AGENT, TransportConfig
from hfrag.transport.credentials import LocalSecret, Secret, is_hf_host, token_for
from hfrag.transport.deadline import call_end, deadline_scope
from hfrag.transport.request import Request
from hfrag.transport.retry import RetryPolicy, backoff, retry_after, should_retry
from hfrag.transport.sse import DONE, SSEDecoder, SSEEvent, decode_event
from hfrag.transport.sync import SyncTransport

__all__ = [
    "DONE",
    "USER_AGENT",
    "AsyncTransport",
    "LocalSecret",
    "Request",
    "RetryPolicy",
    "SSEDecoder",
    "SSEEvent",
    "Secret",
    "SyncTransport",
    "TransportConfig",
    "backoff",
    "call_end",
    "deadline_scope",
    "decode_event",
    "is_hf_host",
    "retry_after",
    "run_async",
    "run_sync",
    "should_retry",
    "token_for",
]
