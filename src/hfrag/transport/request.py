"""What to send, separated from how it is sent.

A task client describes a call as a :class:`Request`; a driver (sync or async) sends it. The
request carries only what the task decides (URL, body, task-specific headers, streaming);
credentials, the User-Agent and the optional Hugging Face headers are added by the driver from its
:class:`~hfrag.transport.config.TransportConfig`, so that rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    """One HTTP call to an inference server.

    Example::

        Request("https://router.huggingface.co/v1/chat/completions", json={...}, stream=True)
    """

    url: str
    json: Any = None
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False
    #: Per-request timeout in seconds, overriding the transport's default.
    timeout: float | None = None
    #: The task's estimate of a generous body size for this request, in bytes; the transport's
    #: cap is at least this much unless the user set ``max_response_bytes`` explicitly.
    max_response_bytes: int | None = None
    #: Retries for this request, overriding the policy's ``max_retries`` (0: one attempt only).
    max_retries: int | None = None
    #: The caller paces this endpoint itself (an adaptive budget): a 429 or 503 is raised at
    #: once, for the caller to back off and resend, instead of being slept on and retried here.
    #: Every other error is retried as usual.
    paced: bool = False
