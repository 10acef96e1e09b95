"""What every task client shares: where it sends (a :class:`Target`) and how (its transports).

A target is a Hub model id served by the router, or an endpoint URL used as given; exactly one.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, TypeVar

from hfrag.errors import ConfigurationError, InferenceError
from hfrag.transport import (
    AsyncTransport,
    Request,
    RetryPolicy,
    Secret,
    SyncTransport,
    TransportConfig,
    run_async,
    run_sync,
)
from hfrag.transport.urls import (
    check_model_id,
    check_url,
    endpoint_route,
    model_url,
    redact_url,
    router_base,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """A model id on the router, or an endpoint URL (Inference Endpoint, TEI, TGI, compatible)."""

    model: str | None = None
    endpoint_url: str | None = None
    router_url: str | None = None

    @classmethod
    def resolve(
        cls, model: str | None, endpoint_url: str | None, router_url: str | None = None
    ) -> Target:
        """Validate the combination; exactly one of ``model`` and ``endpoint_url``."""
        model = model.strip() if isinstance(model, str) else model
        endpoint_url = endpoint_url.strip() if isinstance(endpoint_url, str) else endpoint_url
        if not model and not endpoint_url:
            raise ConfigurationError(
                "give either model=... (a Hub model id served by the Hugging Face router, e.g. "
                "'sentence-transformers/all-MiniLM-L6-v2') or endpoint_url=... (an Inference "
                "Endpoint or a TEI/TGI server URL); neither was given"
            )
        if model and endpoint_url:
            raise ConfigurationError(
                "give either model=... or endpoint_url=..., not both: an endpoint serves one "
                "model already"
            )
        if model:
            check_model_id(model)
            router_base(router_url)  # validates the router URL early
            return cls(model=model, router_url=router_url)
        assert endpoint_url is not None
        return cls(endpoint_url=check_url(endpoint_url))

    @property
    def is_endpoint(self) -> bool:
        return self.endpoint_url is not None

    def url(self, task: str) -> str:
        """The URL that serves ``task``: the router's for a model id, the endpoint as given."""
        if self.endpoint_url is not None:
            return self.endpoint_url
        assert self.model is not None
        return model_url(self.model, task, self.router_url)

    def route(self, route: str) -> str | None:
        """A TEI/TGI explicit route (``/info``...) of an endpoint; None for router targets."""
        return None if self.endpoint_url is None else endpoint_route(self.endpoint_url, route)

    def describe(self) -> str:
        """The model id, or the endpoint URL fit for messages and logs."""
        return self.model if self.model is not None else redact_url(self.endpoint_url or "")


def transport_config(
    *,
    token: str | Secret | None = None,
    timeout: float | None = 120.0,
    max_retries: int = 4,
    max_retry_wait: float = 60.0,
    deadline: float | None = None,
    headers: Mapping[str, str] | None = None,
    bill_to: str | None = None,
    wait_for_model: bool | None = None,
    use_cache: bool | None = None,
    max_connections: int = 64,
) -> TransportConfig:
    """A :class:`TransportConfig` from the flat keyword arguments every client accepts."""
    if timeout is not None and timeout <= 0:
        raise ConfigurationError(f"timeout must be > 0 seconds or None, got {timeout}")
    secret = token if isinstance(token, Secret) or token is None else Secret(token)
    return TransportConfig(
        token=secret,
        timeout=timeout,
        retry=RetryPolicy(max_retries=max_retries, max_wait=max_retry_wait, deadline=deadline),
        headers=MappingProxyType(dict(headers or {})),
        bill_to=bill_to,
        wait_for_model=wait_for_model,
        use_cache=use_cache,
        max_connections=max_connections,
    )


class TaskClient:
    """Base of the task clients: a target, and sync/async transports created on first use."""

    def __init__(self, target: Target, config: TransportConfig) -> None:
        self.target = target
        if config.target_kind is None:  # errors advise by target kind (transport/advice.py)
            config = replace(config, target_kind="endpoint" if target.is_endpoint else "router")
        self.config = config
        self._sync: SyncTransport | None = None
        self._async: AsyncTransport | None = None
        self._info: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target.describe()!r})"

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        """Run one public call to completion from blocking code (any thread, even inside a
        running event loop): every sync method of a task client goes through here."""
        return run_sync(call)

    async def arun(self, call: Coroutine[Any, Any, T]) -> T:
        """Await one public call from any event loop: every async method goes through here."""
        return await run_async(call)

    @property
    def sync_transport(self) -> SyncTransport:
        if self._sync is None:
            self._sync = SyncTransport(self.config)
        return self._sync

    @property
    def async_transport(self) -> AsyncTransport:
        if self._async is None:
            self._async = AsyncTransport(self.config)
        return self._async

    async def _endpoint_info(self) -> dict[str, Any]:
        """An endpoint's ``GET /info`` (TEI, TGI), read once; empty when it has none."""
        if self._info is None:
            url = self.target.route("/info")
            info: Any = {}
            if url is not None:
                try:
                    info = await self.async_transport.request(Request(url, method="GET"))
                except InferenceError as error:
                    # No answer, or a credential problem, will fail the real request too: say so
                    # now. Anything else means the server has no TEI/TGI info route to learn from.
                    if error.status is None or error.status in (401, 403):
                        raise
                    info = {}
            self._info = info if isinstance(info, dict) else {}
        return self._info

    def close(self) -> None:
        """Close pooled connections."""
        if self._sync is not None:
            self._sync.close()
        if self._async is not None:
            self._async.close()

    async def aclose(self) -> None:
        """Close pooled connections from async code."""
        if self._sync is not None:
            self._sync.close()
        if self._async is not None:
            await self._async.aclose()
