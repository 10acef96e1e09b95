"""How a transport behaves: timeouts, retries, credentials and the headers every request carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from hfrag._version import __version__
from hfrag.transport.credentials import Secret, token_for
from hfrag.transport.request import Request
from hfrag.transport.retry import RetryPolicy

USER_AGENT = f"hfrag/{__version__}"


@dataclass(frozen=True)
class TransportConfig:
    """Settings shared by the sync and async drivers.

    Attributes:
        token: an explicit credential, sent to whatever URL the client targets. When None, the
            ambient Hugging Face token is used, for Hugging Face hosts only.
        timeout: seconds for one HTTP attempt (connect, send, first byte and each read).
        retry: the retry policy (``max_retries``, waits, overall deadline).
        headers: extra headers for every request (they win over hfrag's own, except the
            credential, which goes in ``Authorization`` unless these headers set it).
        bill_to: organisation to bill on the router (``X-HF-Bill-To``).
        wait_for_model: send ``x-wait-for-model`` (hold the request while a model loads).
        use_cache: send ``x-use-cache`` (``False`` skips the server's response cache).
        max_connections: connection pool size.
        target_kind: ``"router"`` or ``"endpoint"``: what the client calls, for the advice
            errors give (None: guessed from the URL).
    """

    token: Secret | None = None
    timeout: float | None = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Header values may be credentials (Authorization, X-Api-Key): kept out of repr.
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    bill_to: str | None = None
    wait_for_model: bool | None = None
    use_cache: bool | None = None
    max_connections: int = 64
    target_kind: Literal["router", "endpoint"] | None = None

    def headers_for(self, request: Request) -> dict[str, str]:
        """Every header of ``request``, credential included (the one place it is added)."""
        out: dict[str, str] = {"user-agent": USER_AGENT, "accept": "application/json"}
        if request.stream:
            out["accept"] = "text/event-stream"
        if self.wait_for_model is not None:
            out["x-wait-for-model"] = "true" if self.wait_for_model else "false"
        if self.use_cache is not None:
            out["x-use-cache"] = "true" if self.use_cache else "false"
        if self.bill_to:
            out["x-hf-bill-to"] = self.bill_to
        for source in (request.headers, self.headers):
            out.update({k.lower(): v for k, v in source.items()})
        if "authorization" not in out:
            token = token_for(request.url, self.token)
            if token:
                out["authorization"] = f"Bearer {token}"
        return out
