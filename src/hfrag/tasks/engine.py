"""How a task client cuts and paces one job: batch size, token cap, concurrency, the budget.

:func:`job_settings` turns a client's options and the endpoint's ``GET /info`` into what
:func:`~hfrag.tasks.batching.run_batches` needs, so every task with a list input (embeddings,
sparse embeddings, rerank) sizes and paces its batches by the same rules:

- **batch size** ``"auto"``: the endpoint's ``max_client_batch_size`` (TEI's ``/info``; at most
  :data:`AUTO_BATCH_MAX`), else :data:`DEFAULT_BATCH`; with adaptive concurrency, a job too
  small to give every admitted request a full batch is spread over them (``ceil(n / allowed)``
  texts each, never under a quarter of the batch size): one wave of smaller requests ends sooner
  than a few full ones. A number is used as given, cut to the endpoint's limit;
- **tokens**: with ``max_batch_tokens`` in ``/info``, a batch also holds at most that many
  estimated tokens. The estimate, :func:`token_bound`, is the text's UTF-8 length plus 2 (every
  WordPiece or byte-level BPE token covers at least one byte; 2 for ``[CLS]``/``[SEP]``), cut to
  ``max_input_length`` when the server truncates: an upper bound, so a batch of long texts is
  never refused for tokens that a shorter batch would have passed;
- **rate**: a ``rate_limiter`` (LangChain's ``BaseRateLimiter``, or anything with an async
  ``aacquire(blocking=True)``) is acquired before every request a job sends, resent ones
  included, so its rate is requests per second to the endpoint, as a chat model's is calls;
- **connections**: a client's pool holds :func:`pool_size` connections, twice the most requests
  it may have in flight (at least 16), so that requests never wait for a connection;
- **concurrency** ``"auto"``: the endpoint's shared :class:`~hfrag.tasks.budget.Budget` admits
  each request (adaptive, see :mod:`hfrag.tasks.adaptive`), within ``concurrency_ceiling`` and
  the endpoint's ``max_concurrent_requests``; a number keeps a fixed count of requests in
  flight for this call, as before, outside any budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hfrag._checks import check_int
from hfrag.errors import ConfigurationError
from hfrag.tasks.base import TaskClient
from hfrag.tasks.budget import Budget, budget_for, endpoint_key

__all__ = [
    "AUTO",
    "AUTO_BATCH_MAX",
    "DEFAULT_BATCH",
    "DEFAULT_CEILING",
    "JobSettings",
    "RateLimiter",
    "Size",
    "check_size",
    "job_settings",
    "pool_size",
    "token_bound",
]

AUTO = "auto"
#: ``batch_size`` or ``max_concurrency``: a whole number, or ``"auto"``.
Size = int | Literal["auto"]
#: Texts per request when nothing says otherwise (TEI's default ``max_client_batch_size``).
DEFAULT_BATCH = 32
#: The most texts per request ``"auto"`` takes from an endpoint's ``max_client_batch_size``.
AUTO_BATCH_MAX = 128
#: The default ``concurrency_ceiling``: requests one endpoint gets at once at most.
DEFAULT_CEILING = 64


class RateLimiter(Protocol):
    """What a job needs of a rate limiter: LangChain's ``BaseRateLimiter`` has it."""

    async def aacquire(self, *, blocking: bool = True) -> bool: ...


def check_rate_limiter(value: Any) -> Any:
    """None, or an object with an async ``aacquire`` (LangChain's ``BaseRateLimiter``)."""
    if value is not None and not callable(getattr(value, "aacquire", None)):
        raise ConfigurationError(
            f"rate_limiter must have an async aacquire() (a LangChain BaseRateLimiter such as "
            f"InMemoryRateLimiter), got {type(value).__name__}"
        )
    return value


def check_size(name: str, value: Any) -> Any:
    """``"auto"`` or a whole number >= 1."""
    if isinstance(value, str):
        if value == AUTO:
            return value
        raise ConfigurationError(f"{name} must be 'auto' or an integer >= 1, got {value!r}")
    return check_int(name, value, minimum=1)


def token_bound(text: str, max_input_length: int | None, truncate: bool | None) -> int:
    """An upper bound on the tokens the server counts for ``text`` (see the module docstring)."""
    bound = len(text.encode("utf-8")) + 2
    if truncate and max_input_length:
        bound = min(bound, max_input_length)
    return bound


def _positive(info: Mapping[str, Any], key: str) -> int | None:
    value = info.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass(frozen=True)
class JobSettings:
    """What one job hands :func:`~hfrag.tasks.batching.run_batches`.

    ``paced`` is True when a budget paces the endpoint: requests are then sent with
    ``Request(paced=True)``, so overloads reach the budget instead of the transport's retries.
    """

    batch_size: int
    workers: int
    budget: Budget | None
    weights: Sequence[int] | None
    max_weight: int | None

    @property
    def paced(self) -> bool:
        return self.budget is not None

    def run_args(self) -> dict[str, Any]:
        """The keyword arguments of ``run_batches`` after ``send``/``collect``."""
        return {"budget": self.budget, "weights": self.weights, "max_weight": self.max_weight}


async def job_settings(
    client: TaskClient,
    url: str,
    texts: Sequence[str],
    *,
    batch_size: Size,
    max_concurrency: Size,
    ceiling: int,
    truncate: bool | None,
    spread: bool = True,
) -> JobSettings:
    """The batch size, token cap and pacing of a job of ``texts`` sent to ``url``.

    ``spread=False`` keeps full batches for a small job (coalesced queries: their point is few
    requests).
    """
    info = await client._endpoint_info()
    server_batch = _positive(info, "max_client_batch_size")
    if batch_size == AUTO:
        size = min(server_batch, AUTO_BATCH_MAX) if server_batch else DEFAULT_BATCH
    else:
        size = min(int(batch_size), server_batch) if server_batch else int(batch_size)
    max_tokens = _positive(info, "max_batch_tokens")
    weights = None
    if max_tokens is not None:
        longest = _positive(info, "max_input_length")
        weights = [token_bound(text, longest, truncate) for text in texts]
    if max_concurrency != AUTO:
        return JobSettings(size, int(max_concurrency), None, weights, max_tokens)
    capacity = _positive(info, "max_concurrent_requests")
    top = min(ceiling, capacity) if capacity else ceiling
    budget = budget_for(endpoint_key(url, client.target.is_endpoint), top)
    if batch_size == AUTO and spread:
        share = -(-len(texts) // budget.allowed)
        size = max(min(size, share), max(1, size // 4))
    return JobSettings(size, top, budget, weights, max_tokens)


def pool_size(max_concurrency: Size, concurrency_ceiling: int) -> int:
    """The connection pool of a client whose job settings are these: twice the most requests it
    may have in flight (``max_concurrency`` when fixed, else the ceiling), at least 16."""
    most = max_concurrency if isinstance(max_concurrency, int) else concurrency_ceiling
    return max(16, most * 2)
