"""The embeddings task: texts in, a float32 ``(n, dim)`` array out, in input order.

One client serves both frameworks' adapters. It checks the input before anything is sent, picks
its wire form once (TEI/HF pipeline or OpenAI, router provider or endpoint:
:mod:`hfrag.tasks.embedding_wire`), cuts the job into batches sized from the endpoint's
``GET /info`` and paced by the endpoint's shared adaptive budget (:mod:`hfrag.tasks.engine`,
:mod:`hfrag.tasks.batching`), joins concurrent ``embed_query`` calls into one request
(:mod:`hfrag.tasks.coalesce`), and validates every response (:mod:`hfrag.tasks.vectors`). Sync
methods run the same coroutine on hfrag's private loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from typing_extensions import Unpack

from hfrag._checks import check_bool, check_choice, check_int, check_number, check_str
from hfrag.errors import ConfigurationError, InferenceError, InputError
from hfrag.tasks.base import Connection, TaskClient, connect
from hfrag.tasks.batching import run_batches
from hfrag.tasks.coalesce import Coalescer, Outcome
from hfrag.tasks.embedding_wire import (
    ENCODINGS,
    PROTOCOLS,
    EncodingFormat,
    Protocol,
    Route,
    check_form,
    resolve_route,
    static_form,
)
from hfrag.tasks.engine import (
    DEFAULT_BATCH,
    DEFAULT_CEILING,
    RateLimiter,
    Size,
    check_size,
    job_settings,
    pool_size,
)
from hfrag.tasks.inputs import check_text, check_texts
from hfrag.tasks.lengths import LONG_INPUTS, LongInputs, check_lengths
from hfrag.tasks.progress import ProgressCallback, progress_bar
from hfrag.tasks.providers import check_provider
from hfrag.tasks.vectors import Matrix, Pooling
from hfrag.transport import Request
from hfrag.transport.urls import check_url

Kind = Literal["query", "document"]
TASK = "feature-extraction"
#: A generous body size per input (a long token-level answer of a model without pooling), so the
#: response cap grows with the batch.
BYTES_PER_INPUT = 4 * 1024 * 1024

__all__ = ["EmbeddingOptions", "EmbeddingsClient", "check_texts"]


_TEXT_OPTIONS = (
    "prompt_name",
    "query_prompt_name",
    "document_prompt_name",
    "query_instruction",
    "document_instruction",
)


@dataclass(frozen=True)
class EmbeddingOptions:
    """What to ask the server for, and how to cut the work. See :class:`EmbeddingsClient`."""

    batch_size: Size = "auto"
    max_concurrency: Size = "auto"
    concurrency_ceiling: int = DEFAULT_CEILING
    #: Seconds a query waits to be joined with concurrent ones while one is in flight; 0: never.
    coalesce_window: float = 0.002
    normalize: bool | None = None
    truncate: bool | None = True
    truncation_direction: Literal["left", "right"] | None = None
    dimensions: int | None = None
    prompt_name: str | None = None
    query_prompt_name: str | None = None
    document_prompt_name: str | None = None
    query_instruction: str | None = None
    document_instruction: str | None = None
    pooling: Pooling = "mean"
    show_progress: bool = False
    provider: str | None = None
    provider_model: str | None = None
    protocol: Protocol = "auto"
    encoding_format: EncodingFormat = "base64"
    hub_url: str | None = None
    #: What to do with inputs longer than the endpoint's max_input_length (tasks/lengths.py).
    long_inputs: LongInputs = "warn"
    #: ``progress(done, total)`` after every batch, for a UI other than tqdm.
    progress: ProgressCallback | None = None

    def __post_init__(self) -> None:
        check_size("batch_size", self.batch_size)
        check_size("max_concurrency", self.max_concurrency)
        check_int("concurrency_ceiling", self.concurrency_ceiling, minimum=1)
        check_number("coalesce_window", self.coalesce_window, minimum=0, unit="seconds")
        check_int("dimensions", self.dimensions, minimum=1, optional=True)
        for name in ("normalize", "truncate"):
            check_bool(name, getattr(self, name), optional=True)
        check_bool("show_progress", self.show_progress)
        check_choice("pooling", self.pooling, ("mean", "cls"))
        if self.truncation_direction is not None:
            check_choice("truncation_direction", self.truncation_direction, ("left", "right"))
        for name in _TEXT_OPTIONS:
            value = check_str(name, getattr(self, name), optional=True)
            if value is not None and name.endswith("instruction"):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise ConfigurationError(f"{name} cannot be encoded as UTF-8") from None
        check_choice("protocol", self.protocol, PROTOCOLS)
        check_choice("encoding_format", self.encoding_format, ENCODINGS)
        check_choice("long_inputs", self.long_inputs, LONG_INPUTS)
        check_provider(self.provider, self.provider_model)
        if self.hub_url is not None:
            check_url(self.hub_url, what="hub_url")

    def payload_options(self, kind: Kind) -> dict[str, Any]:
        """Root-level options of the feature-extraction body for ``kind``; None dropped."""
        prompt = self.query_prompt_name if kind == "query" else self.document_prompt_name
        options = {
            "normalize": self.normalize,
            "prompt_name": prompt or self.prompt_name,
            "truncate": self.truncate,
            "truncation_direction": self.truncation_direction,
            "dimensions": self.dimensions,
        }
        return {k: v for k, v in options.items() if v is not None}

    def instruction(self, kind: Kind) -> str:
        return (self.query_instruction if kind == "query" else self.document_instruction) or ""


class EmbeddingsClient(TaskClient):
    """Framework-free embeddings over the router (any provider) or any TEI/OpenAI endpoint.

    Example::

        client = EmbeddingsClient(endpoint_url="http://127.0.0.1:8080")
        vectors = client.embed(["first text", "second text"])   # float32, shape (2, dim)
        query = client.embed_query("what is in the text?")      # shape (dim,)
        openai = EmbeddingsClient(endpoint_url="http://127.0.0.1:8080/v1")  # /v1/embeddings
        hosted = EmbeddingsClient(model="BAAI/bge-small-en-v1.5",
                                  options=EmbeddingOptions(provider="auto"))
    """

    task_kind = "embeddings"
    _transient: ClassVar[tuple[str, ...]] = (*TaskClient._transient, "_coalescer", "rate_limiter")

    def __init__(
        self,
        model: str | None = None,
        endpoint_url: str | None = None,
        *,
        options: EmbeddingOptions | None = None,
        **connection: Unpack[Connection],
    ) -> None:
        if options is not None and not isinstance(options, EmbeddingOptions):
            raise ConfigurationError(
                f"options must be an EmbeddingOptions, got {type(options).__name__}"
            )
        self.options = options or EmbeddingOptions()
        max_connections = pool_size(self.options.max_concurrency, self.options.concurrency_ceiling)
        super().__init__(*connect(model, endpoint_url, connection, max_connections=max_connections))
        if self.target.is_endpoint and self.options.provider is not None:
            raise ConfigurationError(
                "provider=... applies to model ids on the router; an endpoint URL is used as "
                "given (use protocol='openai' for an OpenAI-compatible endpoint)"
            )
        if (
            not self.target.is_endpoint
            and self.options.provider_model
            and not self.options.provider
        ):
            raise ConfigurationError(
                "provider_model=... needs provider=... (the provider that knows the model by "
                "that id); for an endpoint URL in the OpenAI form it is the 'model' sent"
            )
        if not self.target.is_endpoint and self.options.protocol != "auto":
            raise ConfigurationError(
                "protocol=... applies to endpoint URLs; for a model id the provider decides "
                "the form (provider=...)"
            )
        form = static_form(self)
        if form is not None:
            check_form(self.options, form, self.target.describe())
        self._coalescer: Coalescer[Matrix] | None = None
        #: Acquired before every request (LangChain's ``BaseRateLimiter``); not copied.
        self.rate_limiter: RateLimiter | None = None

    async def route(self) -> Route:
        """Where and in which form batches go: decided on first use, then remembered (see
        :meth:`~hfrag.tasks.base.TaskClient.choose_wire`; the URL's own route is read by
        :func:`~hfrag.tasks.embedding_wire.static_form`)."""
        return await self.choose_wire(lambda: resolve_route(self))

    def embed(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "document",
        batch_size: Size | None = None,
        show_progress: bool | None = None,
    ) -> Matrix:
        """Embed ``texts``; float32 array of shape ``(len(texts), dim)`` in input order.

        ``batch_size`` and ``show_progress`` override the client's options for this call. The
        texts are checked before anything is sent (see :mod:`hfrag.tasks.inputs`); the whole
        call, every batch and retry, ends by the client's ``deadline``.
        """
        items = check_texts(texts)
        _check_call(batch_size, show_progress)
        if not items:
            return np.zeros((0, 0), dtype=np.float32)
        return self.run(self._embed(items, kind, batch_size, show_progress))

    async def aembed(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "document",
        batch_size: Size | None = None,
        show_progress: bool | None = None,
    ) -> Matrix:
        """Async :meth:`embed`; safe from any event loop."""
        items = check_texts(texts)
        _check_call(batch_size, show_progress)
        if not items:
            return np.zeros((0, 0), dtype=np.float32)
        return await self.arun(self._embed(items, kind, batch_size, show_progress))

    def embed_query(self, text: str) -> Matrix:
        """One query vector, shape ``(dim,)``, with the query prompt or instruction.

        Concurrent calls (threads, tasks) are joined into one request when one is in flight
        already (``coalesce_window``); each gets its own vector, and an error caused by one
        query reaches only its caller (see :mod:`hfrag.tasks.coalesce`).
        """
        return self.run(self._query(check_text(text, "the query")))

    async def aembed_query(self, text: str) -> Matrix:
        """Async :meth:`embed_query`."""
        return await self.arun(self._query(check_text(text, "the query")))

    async def _query(self, text: str) -> Matrix:
        if self.options.coalesce_window == 0:
            vectors = await self._embed([text], "query", None, False)
            return np.asarray(vectors[0], dtype=np.float32)
        if self._coalescer is None:
            size = self.options.batch_size
            limit = size if isinstance(size, int) else DEFAULT_BATCH
            self._coalescer = Coalescer(self._joined, self.options.coalesce_window, limit)
        return await self._coalescer.submit(text)

    async def _joined(self, texts: list[str]) -> Outcome[Matrix]:
        """One job of coalesced queries: a row per query, or the error its query caused.

        An input error found before sending (a query too long for ``truncate=False``) names its
        positions: those callers get it, and the job runs again without them.
        """
        outcome: Outcome[Matrix] = Outcome([None] * len(texts))
        left = list(range(len(texts)))  # the queries still to send, by their place in ``texts``
        while left:
            failed: dict[int, Exception] = {}  # by place in ``left``
            try:
                vectors = await self._bounded(
                    self._embed([texts[i] for i in left], "query", None, False, failed.__setitem__)
                )
            except InputError as error:
                bad = {left[p] for p in error.positions if p < len(left)}
                if not bad:
                    raise
                for i in bad:
                    outcome.errors[i] = InputError(error.args[0], positions=[0])
                left = [i for i in left if i not in bad]
                continue
            for row, i in enumerate(left):
                if row in failed:
                    outcome.errors[i] = failed[row]
                else:
                    outcome.rows[i] = np.array(vectors[row], dtype=np.float32)
            break
        return outcome

    async def _embed(
        self,
        texts: list[str],
        kind: Kind,
        batch_size: Size | None,
        show_progress: bool | None,
        isolate: Callable[[int, InferenceError], None] | None = None,
    ) -> Matrix:
        route = await self.route()
        url, form = route.url, route.form
        prefix = self.options.instruction(kind)
        await check_lengths(
            self,
            texts,
            self.options.long_inputs,
            truncate=self.options.truncate,
            prompt_name=self.options.payload_options(kind).get("prompt_name"),
            prefix=prefix,
            max_concurrency=_fixed_or(self.options.max_concurrency, 4),
        )
        sent = [prefix + t for t in texts] if prefix else texts
        job = await job_settings(
            self,
            url,
            sent,
            batch_size=self.options.batch_size if batch_size is None else batch_size,
            max_concurrency=self.options.max_concurrency,
            ceiling=self.options.concurrency_ceiling,
            truncate=self.options.truncate,
            spread=isolate is None,  # a coalesced job keeps its requests few
        )
        out: list[Matrix] = []  # holds the (n, dim) result once the dimension is known

        async def send(start: int, stop: int) -> Matrix:
            size = BYTES_PER_INPUT * (stop - start)
            body = form.build(sent[start:stop], self.options, kind, route.model)
            payload = await self.async_transport.request(
                Request(url, json=body, max_response_bytes=size, paced=job.paced)
            )
            dim = out[0].shape[1] if out else None
            return form.decode(payload, stop - start, start, url, dim, self.options)

        def collect(start: int, stop: int, rows: Matrix) -> None:
            if not out:
                out.append(np.zeros((len(texts), rows.shape[1]), dtype=np.float32))
            out[0][start:stop] = rows

        bar = self.options.show_progress if show_progress is None else show_progress
        batches = -(-len(texts) // job.batch_size)
        with progress_bar(
            len(texts), bar, "embedding", batches=batches, callback=self.options.progress
        ) as advance:
            await run_batches(
                len(texts),
                job.batch_size,
                job.workers,
                send,
                collect,
                advance,
                retry=self.config.retry,
                isolate=isolate,
                rate_limiter=self.rate_limiter,
                **job.run_args(),
            )
        if not out:  # every input was isolated with its own error
            out.append(np.zeros((len(texts), 0), dtype=np.float32))
        return out[0]


def _fixed_or(value: Size, default: int) -> int:
    """A fixed ``max_concurrency``, or ``default`` for side requests (``/tokenize``) if auto."""
    return value if isinstance(value, int) else default


def _check_call(batch_size: Size | None, show_progress: bool | None) -> None:
    """Per-call overrides are checked like the client's options (``batch_size=0`` is an error)."""
    if batch_size is not None:
        check_size("batch_size", batch_size)
    check_bool("show_progress", show_progress, optional=True)
