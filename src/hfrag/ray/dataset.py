"""Embedding a Ray Dataset in one call, within the endpoint's capacity.

:func:`embed_dataset` reads the endpoint's ``/info`` once on the driver, works out a plan
(:func:`plan_embedding`) and adds one ``map_batches`` stage of :class:`~hfrag.ray.Embedder` actors.

The arithmetic, with ``C`` the capacity (``max_in_flight``, else the endpoint's
``max_concurrent_requests``), ``W`` the workers asked for and ``B`` the texts per request::

    workers      = min(W, C)                 # a worker needs at least one request slot
    per_worker   = C // workers              # each worker's share of the capacity
                                             # (lowered to max_concurrency= when given)
    in flight   <= workers * per_worker <= C # each worker runs one batch at a time
    rows_per_call = B * per_worker * 4       # Ray batch: 4 requests per slot, so slots stay busy

The capacity is split, not shared: a Ray worker is a process of its own, so the budget of
:mod:`hfrag.tasks.budget` (one per endpoint and process) cannot span workers. By default each
worker's client is adaptive (``max_concurrency="auto"``) with its share as its
``concurrency_ceiling``: it reaches its share when the endpoint keeps up, and backs off below it
on overload or rising latency, so the job stays within ``C`` and reaches it. ``max_concurrency=``
given as a number makes each worker's share a fixed count, as before.

``B`` is ``batch_size`` (default 32) cut to the endpoint's ``max_client_batch_size``. Without a
known capacity (a router model id, or an endpoint without ``/info``), each worker's adaptive
client finds the endpoint's speed by itself up to the default ceiling (64), or keeps a fixed
``max_concurrency`` when one is given.

Ray is imported when :func:`embed_dataset` is called, not when this module is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hfrag.errors import ConfigurationError
from hfrag.ray.embedder import Embedder, build_client
from hfrag.tasks.engine import DEFAULT_BATCH, DEFAULT_CEILING
from hfrag.transport import Secret

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["WAVES", "EmbeddingPlan", "embed_dataset", "plan_embedding"]

#: Requests per worker slot in one Ray batch: enough that a batch's tail (slots idle while the
#: last requests finish) is a small part of it, few enough that a retried batch costs little.
WAVES = 4


@dataclass(frozen=True)
class EmbeddingPlan:
    """How an embedding stage is cut: see the module docstring for the arithmetic.

    Attributes:
        workers: Ray actors (a fixed pool: ``ActorPoolStrategy(size=workers)``).
        per_worker: requests in flight on one worker at most (its adaptive client's
            ``concurrency_ceiling``, or its fixed ``max_concurrency``).
        request_batch: texts per request (the client's ``batch_size``).
        rows_per_call: rows per Ray batch (``map_batches(batch_size=...)``).
        max_in_flight: the capacity the plan respects; None when none is known.
    """

    workers: int
    per_worker: int
    request_batch: int
    rows_per_call: int
    max_in_flight: int | None

    @property
    def in_flight(self) -> int:
        """The most requests in flight across all workers."""
        return self.workers * self.per_worker


def _positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"{name} must be a whole number >= 1, got {value!r}")


def plan_embedding(
    *,
    workers: int,
    max_in_flight: int | None,
    batch_size: int | None = None,
    max_concurrency: int | None = None,
    server_batch_limit: int | None = None,
    rows_per_call: int | None = None,
) -> EmbeddingPlan:
    """The plan for ``workers`` under a capacity of ``max_in_flight`` requests (None: unknown)."""
    for name, value in (
        ("workers", workers),
        ("max_in_flight", max_in_flight),
        ("batch_size", batch_size),
        ("max_concurrency", max_concurrency),
        ("rows_per_call", rows_per_call),
    ):
        _positive(name, value)
    request_batch = batch_size or DEFAULT_BATCH
    if isinstance(server_batch_limit, int) and server_batch_limit > 0:
        request_batch = min(request_batch, server_batch_limit)
    if max_in_flight is None:
        used, per_worker = workers, max_concurrency or DEFAULT_CEILING
    else:
        used = min(workers, max_in_flight)
        per_worker = max_in_flight // used
        if max_concurrency is not None:
            per_worker = min(per_worker, max_concurrency)
    rows = rows_per_call or request_batch * per_worker * WAVES
    return EmbeddingPlan(used, per_worker, request_batch, rows, max_in_flight)


def _capacity(info: Mapping[str, Any], key: str) -> int | None:
    value = info.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def embed_dataset(
    ds: Dataset,
    column: str = "text",
    *,
    output_column: str = "embedding",
    model: str | None = None,
    endpoint_url: str | None = None,
    workers: int = 4,
    max_in_flight: int | None = None,
    batch_size: int | None = None,
    max_concurrency: int | None = None,
    rows_per_call: int | None = None,
    batch_format: Literal["pyarrow", "pandas", "numpy"] = "pyarrow",
    num_cpus: float = 0.5,
    map_batches_args: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Dataset:
    """``ds`` with a fixed-size float32 vector per row in ``output_column``; lazy, like Ray.

    Total requests in flight across all workers never exceed ``max_in_flight`` (default: the
    endpoint's ``/info`` ``max_concurrent_requests``, read once here, on the driver). See the
    module docstring for how workers, per-worker concurrency and batch sizes are chosen.

    Args:
        ds: the dataset; ``column`` holds the texts.
        model, endpoint_url: the target, as in every hfrag client (exactly one).
        workers: Ray actors to use (fewer when the capacity is smaller).
        max_in_flight: the endpoint's capacity in requests at once.
        batch_size: texts per request (default 32, cut to the endpoint's limit).
        max_concurrency: an upper bound on requests in flight per worker.
        rows_per_call: rows per Ray batch (default: 4 requests' worth per request slot).
        batch_format: the format batches are handed to the embedder in (and come back in).
        num_cpus: CPUs Ray reserves per worker; the work is waiting on the network, so a
            fraction is enough and leaves CPUs for reading and writing.
        map_batches_args: more keyword arguments for ``Dataset.map_batches``
            (``runtime_env``, ``memory``, ``max_task_retries``...).
        **fields: the other embedding settings (``token``, ``timeout``, ``max_retries``,
            ``normalize``, ``dimensions``...), as for :class:`~hfrag.ray.Embedder`. A ``token``
            given as a string is wrapped in :class:`~hfrag.transport.Secret` before it is
            handed to Ray.

    A batch that fails for good fails its Ray task with hfrag's typed error (its ``positions``
    are rows of that batch): this function sets ``raise_original_map_exception`` on the
    dataset's ``DataContext`` so that Ray Data does not wrap it. The rows of a failed batch are
    never written. Ray's own retries of failed tasks apply (see docs/RAY.md, Failures).
    """
    from ray.data import ActorPoolStrategy  # Ray's own message when the extra is missing

    if batch_format not in ("pyarrow", "pandas", "numpy"):
        raise ConfigurationError(
            f"batch_format must be 'pyarrow', 'pandas' or 'numpy', got {batch_format!r}"
        )
    settings: dict[str, Any] = {**fields, "model": model, "endpoint_url": endpoint_url}
    for key in ("token", "api_key"):  # a Secret shows no text form anywhere Ray prints
        if isinstance(settings.get(key), str):
            settings[key] = Secret(settings[key])
    for name, value in (("batch_size", batch_size), ("max_concurrency", max_concurrency)):
        if value is not None:
            settings[name] = value
    probe = build_client(settings)  # checks every setting here, before any worker starts
    try:
        info = probe.run(probe._endpoint_info())
    finally:
        probe.close()
    plan = plan_embedding(
        workers=workers,
        max_in_flight=(
            max_in_flight
            if max_in_flight is not None
            else _capacity(info, "max_concurrent_requests")
        ),
        batch_size=batch_size,
        max_concurrency=max_concurrency,
        server_batch_limit=_capacity(info, "max_client_batch_size"),
        rows_per_call=rows_per_call,
    )
    settings.update(batch_size=plan.request_batch)
    if max_concurrency is None:  # adaptive within the worker's share (see the module docstring)
        settings.update(max_concurrency="auto", concurrency_ceiling=plan.per_worker)
    else:
        settings.update(max_concurrency=plan.per_worker)
    ds.context.raise_original_map_exception = True
    return ds.map_batches(
        Embedder,
        fn_constructor_kwargs={"column": column, "output_column": output_column, **settings},
        batch_size=plan.rows_per_call,
        batch_format=batch_format,
        compute=ActorPoolStrategy(size=plan.workers),
        num_cpus=num_cpus,
        **dict(map_batches_args or {}),
    )
