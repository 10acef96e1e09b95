"""What every task client shares: where it sends (a :class:`Target`) and how (its transports).

A target is a Hub model id served by the router, or an endpoint URL used as given; exactly one.

Per-call rules live in :meth:`TaskClient.run` / :meth:`TaskClient.arun`, which every public call
goes through: the whole-call deadline (every batch, retry, wait and body read of one call ends by
it, with ``InferenceTimeoutError``). Copies and pickles of a task client are fresh clients (no
pool, lock or loop-bound task is copied); a pickle carries the token only when it was given as a
:class:`~hfrag.transport.Secret`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypedDict, TypeVar, cast

from typing_extensions import Self

from hfrag.errors import ConfigurationError, HfragError, InferenceError
from hfrag.tasks.served import Task, name_the_cause
from hfrag.tasks.wire_choice import WireChoice, expiry_after, fresh
from hfrag.transport import (
    AsyncTransport,
    Request,
    RetryPolicy,
    Secret,
    SyncTransport,
    TransportConfig,
    redaction,
    run_async,
    run_sync,
)
from hfrag.transport.credentials import LocalSecret
from hfrag.transport.deadline import deadline_error, deadline_scope, remaining
from hfrag.transport.urls import (
    check_model_id,
    check_url,
    endpoint_route,
    model_url,
    redact_url,
    router_base,
)

T = TypeVar("T")
logger = logging.getLogger("hfrag.tasks")

#: The longest an endpoint's ``GET /info`` may take.
INFO_TIMEOUT = 5.0
# The drivers end a call's requests at its deadline themselves (naming the batches it cost); the
# call-level guard fires just after, for anything else that could wait.
_GRACE = 0.05


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
    max_response_bytes: int | None = None,
) -> TransportConfig:
    """A :class:`TransportConfig` from the flat keyword arguments every client accepts.

    Every value is checked (types, ranges, finiteness) and refused with ``ConfigurationError``.
    A token given as a string is kept for this process only (left out of pickles); give a
    :class:`~hfrag.transport.Secret` to let pickles carry it.
    """
    if token is not None and not isinstance(token, (str, Secret)):
        raise ConfigurationError(
            f"token must be a string or hfrag.transport.Secret, got {type(token).__name__}"
        )
    secret = LocalSecret(token) if isinstance(token, str) else token
    return TransportConfig(
        token=secret,
        timeout=timeout,
        retry=RetryPolicy(max_retries=max_retries, max_wait=max_retry_wait, deadline=deadline),
        headers=headers or {},
        bill_to=bill_to,
        wait_for_model=wait_for_model,
        use_cache=use_cache,
        max_connections=max_connections,
        max_response_bytes=max_response_bytes,
    )


class Connection(TypedDict, total=False):
    """The connection keyword arguments every task client takes, besides ``model`` and
    ``endpoint_url``: ``router_url`` places a model id, the rest go to :func:`transport_config`."""

    token: str | Secret | None
    router_url: str | None
    timeout: float | None
    max_retries: int
    max_retry_wait: float
    deadline: float | None
    headers: Mapping[str, str] | None
    bill_to: str | None
    wait_for_model: bool | None
    use_cache: bool | None
    max_response_bytes: int | None
    max_connections: int | None


#: The names of :class:`Connection`, for code that sorts flat settings (the Ray embedder).
CONNECTION_ARGS = frozenset(Connection.__annotations__)


def connect(
    model: str | None,
    endpoint_url: str | None,
    connection: Connection,
    *,
    max_connections: int = 64,
) -> tuple[Target, TransportConfig]:
    """The target and transport configuration of a task client's constructor arguments.

    ``max_connections`` is the pool size the client's own concurrency needs; a
    ``max_connections`` the caller gives (e.g. for many streams held open at once) wins.
    """
    unknown = sorted(set(connection) - CONNECTION_ARGS)
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
    args = dict(connection)
    router_url = args.pop("router_url", None)
    given = args.pop("max_connections", None)
    target = Target.resolve(model, endpoint_url, router_url)  # type: ignore[arg-type]
    size = max_connections if given is None else given
    return target, transport_config(max_connections=size, **args)  # type: ignore[arg-type]


class TaskClient:
    """Base of the task clients: a target, and sync/async transports created on first use."""

    #: Attributes holding live resources (pools, loop-bound tasks): never copied or pickled,
    #: rebuilt on first use. A subclass with more of them extends this tuple.
    _transient: ClassVar[tuple[str, ...]] = ("_sync", "_async", "_info_probe")
    #: The task this client does: an error from a server of another task names what it serves.
    task_kind: ClassVar[Task | None] = None

    def __init__(self, target: Target, config: TransportConfig) -> None:
        self.target = target
        if config.target_kind is None:  # errors advise by target kind (transport/advice.py)
            config = replace(config, target_kind="endpoint" if target.is_endpoint else "router")
        self.config = config
        self._sync: SyncTransport | None = None
        self._async: AsyncTransport | None = None
        self._info: dict[str, Any] | None = None
        self._info_expires: float | None = None
        self._info_probe: tuple[int, asyncio.Future[dict[str, Any]]] | None = None
        self._wire: WireChoice[Any] = WireChoice()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target.describe()!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(dict.fromkeys(self._transient))
        return state  # config pickles its token only when it was given as a Secret

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __deepcopy__(self, memo: dict[int, Any]) -> TaskClient:
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            clone.__dict__[name] = None if name in self._transient else copy.deepcopy(value, memo)
        return clone

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        """Run one public call to completion from blocking code (any thread, even inside a
        running event loop): every sync method of a task client goes through here."""
        try:
            return run_sync(self._bounded(call))
        except HfragError as error:
            raise self.scrubbed(error) from None

    async def arun(self, call: Coroutine[Any, Any, T]) -> T:
        """Await one public call from any event loop: every async method goes through here."""
        try:
            return await run_async(self._bounded(call))
        except HfragError as error:
            raise self.scrubbed(error) from None

    def iterate(self, items: Iterator[T]) -> Iterator[T]:
        """A public stream: ``items``, its errors scrubbed as :meth:`run`'s; closing it closes
        ``items``. Every sync stream of a task client goes through here."""
        try:
            yield from items
        except InferenceError as error:
            raise self.scrubbed(run_sync(name_the_cause(self, error))) from None
        except HfragError as error:
            raise self.scrubbed(error) from None

    async def aiterate(self, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """Async :meth:`iterate`: every async stream of a task client goes through here."""
        try:
            async for item in items:
                yield item
        except InferenceError as error:
            raise self.scrubbed(await run_async(name_the_cause(self, error))) from None
        except HfragError as error:
            raise self.scrubbed(error) from None
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()

    def scrubbed(self, error: HfragError) -> HfragError:
        """``error`` without any credential this client holds or sent: the one place an error
        leaving hfrag is cleaned, so no decoder that quotes a server's answer can leak a token
        the server echoed (the transport cleans its own errors too)."""
        secrets = [*self.config.secrets(), *redaction.held()]
        for url in (self.target.endpoint_url, self.target.router_url):
            if url:
                secrets += redaction.url_secrets(url)
        return redaction.scrub_exception(error, secrets)

    async def _bounded(self, call: Coroutine[Any, Any, T]) -> T:
        """``call`` within the whole-call deadline (on hfrag's loop, where the drivers read it)."""
        try:
            return await self._within_deadline(call)
        except InferenceError as error:
            named = await name_the_cause(self, error)
            if named is error:
                raise
            raise named from error

    async def _within_deadline(self, call: Coroutine[Any, Any, T]) -> T:
        deadline = self.config.retry.deadline
        with deadline_scope(deadline) as end:
            left = remaining(end)
            if left is None:
                return await call
            try:
                return await asyncio.wait_for(call, max(left, 0.0) + _GRACE)
            except asyncio.TimeoutError:
                detail = "" if deadline is None else f"deadline={deadline:g} s"
                raise deadline_error(self.target.describe(), detail) from None

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

    async def choose_wire(
        self, decide: Callable[[], Awaitable[T]], routes: Mapping[str, T] | None = None
    ) -> T:
        """The wire form this client speaks (see :mod:`hfrag.tasks.wire_choice`): what the
        endpoint URL's route names in ``routes``, else ``decide()``, made once and remembered
        (for :data:`~hfrag.tasks.wire_choice.PROBE_MEMORY` seconds when a probe had failed)."""
        choice = await self._wire.get(
            self.target.endpoint_url, routes or {}, decide, self._info_failed
        )
        return cast(T, choice)

    def _info_failed(self) -> bool:
        return self._info_expires is not None

    async def _endpoint_info(self) -> dict[str, Any]:
        """An endpoint's ``GET /info`` (TEI, TGI); empty when it has none or it failed.

        Tried briefly (one attempt, at most :data:`INFO_TIMEOUT` seconds); concurrent first
        calls share the one probe. An answer, or a 404 (no ``/info`` there), is remembered for
        the client's life; any other failure (a waking endpoint's 503, a timeout) only for
        :data:`~hfrag.tasks.wire_choice.PROBE_MEMORY` seconds, then a call asks again. A failure
        here is not the call's failure: the real request reports its own.
        """
        if self._info is not None and fresh(self._info_expires):
            return self._info
        url = self.target.route("/info")
        if url is None:
            self._info = {}
            return self._info
        probe = self._info_probe
        # None yet, one of the parent's loop, or one whose failure has been forgotten.
        if probe is None or probe[0] != os.getpid() or probe[1].done():
            probe = (os.getpid(), asyncio.ensure_future(self._probe_info(url)))
            self._info_probe = probe
        return await asyncio.shield(probe[1])

    async def _probe_info(self, url: str) -> dict[str, Any]:
        timeout = min(INFO_TIMEOUT, self.config.timeout or INFO_TIMEOUT)
        request = Request(url, method="GET", timeout=timeout, max_retries=0)
        failed = False
        try:
            info = await self.async_transport.request(request)
        except InferenceError as error:
            failed = error.status not in (404, 405, 410)  # those say: no /info here
            logger.debug("no usable GET /info at %s (%s)", redact_url(url), error)
            info = {}
        self._info = info if isinstance(info, dict) else {}
        self._info_expires = expiry_after(failed)
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
