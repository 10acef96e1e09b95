"""The embeddings task: texts in, a float32 ``(n, dim)`` array out, in input order.

One client serves both frameworks' adapters. It checks the input before anything is sent, builds
the feature-extraction payload (options at the root, None dropped), cuts the job into batches run
with bounded concurrency (:mod:`hfrag.tasks.batching`), respects an endpoint's
``max_client_batch_size`` from ``GET /info``, and validates every response
(:mod:`hfrag.tasks.vectors`). Sync methods run the same coroutine on hfrag's private loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hfrag.errors import ConfigurationError, InputError
from hfrag.tasks.base import Target, TaskClient, transport_config
from hfrag.tasks.batching import run_batches
from hfrag.tasks.progress import ProgressCallback, progress_bar
from hfrag.tasks.vectors import Matrix, Pooling, to_matrix
from hfrag.transport import Request, Secret

Kind = Literal["query", "document"]
TASK = "feature-extraction"


@dataclass(frozen=True)
class EmbeddingOptions:
    """What to ask the server for, and how to cut the work. See :class:`EmbeddingsClient`."""

    batch_size: int = 32
    max_concurrency: int = 4
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
    #: ``progress(done, total)`` after every batch, for a UI other than tqdm.
    progress: ProgressCallback | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.dimensions is not None and self.dimensions < 1:
            raise ConfigurationError(f"dimensions must be >= 1, got {self.dimensions}")
        if self.pooling not in ("mean", "cls"):
            raise ConfigurationError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        if self.truncation_direction not in (None, "left", "right"):
            raise ConfigurationError(
                f"truncation_direction must be 'left' or 'right', got {self.truncation_direction!r}"
            )

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


def check_texts(texts: Sequence[Any]) -> list[str]:
    """The texts as a list, or a clear error naming the first bad positions; nothing is sent."""
    if isinstance(texts, (str, bytes)):
        raise TypeError("expected a list of strings, got a single string; wrap it in a list")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"input {i} is {type(text).__name__}, not str: {text!r:.80}")
    empty = [i for i, text in enumerate(items) if not text.strip()]
    if empty:
        shown = ", ".join(map(str, empty[:20])) + (" ..." if len(empty) > 20 else "")
        raise InputError(
            f"{len(empty)} input(s) are empty or whitespace only, at positions {shown}; "
            "embedding servers reject them: drop or fill them before embedding",
            positions=empty,
        )
    return items


class EmbeddingsClient(TaskClient):
    """Framework-free embeddings over the router or any TEI-compatible endpoint.

    Example::

        client = EmbeddingsClient(endpoint_url="http://127.0.0.1:8080")
        vectors = client.embed(["first text", "second text"])   # float32, shape (2, dim)
        query = client.embed_query("what is in the text?")      # shape (dim,)
    """

    def __init__(
        self,
        model: str | None = None,
        endpoint_url: str | None = None,
        *,
        token: str | Secret | None = None,
        router_url: str | None = None,
        timeout: float | None = 120.0,
        max_retries: int = 4,
        max_retry_wait: float = 60.0,
        deadline: float | None = None,
        headers: Mapping[str, str] | None = None,
        bill_to: str | None = None,
        wait_for_model: bool | None = None,
        use_cache: bool | None = None,
        options: EmbeddingOptions | None = None,
    ) -> None:
        self.options = options or EmbeddingOptions()
        config = transport_config(
            token=token,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            deadline=deadline,
            headers=headers,
            bill_to=bill_to,
            wait_for_model=wait_for_model,
            use_cache=use_cache,
            max_connections=max(16, self.options.max_concurrency * 2),
        )
        super().__init__(Target.resolve(model, endpoint_url, router_url), config)

    def embed(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "document",
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> Matrix:
        """Embed ``texts``; float32 array of shape ``(len(texts), dim)`` in input order.

        ``batch_size`` and ``show_progress`` override the client's options for this call.
        """
        items = check_texts(texts)
        if not items:
            return np.zeros((0, 0), dtype=np.float32)
        return self.run(self._embed(items, kind, batch_size, show_progress))

    async def aembed(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "document",
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> Matrix:
        """Async :meth:`embed`; safe from any event loop."""
        items = check_texts(texts)
        if not items:
            return np.zeros((0, 0), dtype=np.float32)
        return await self.arun(self._embed(items, kind, batch_size, show_progress))

    def embed_query(self, text: str) -> Matrix:
        """One query vector, shape ``(dim,)``, with the query prompt or instruction."""
        vectors: Matrix = self.embed([text], kind="query")
        return np.asarray(vectors[0], dtype=np.float32)

    async def aembed_query(self, text: str) -> Matrix:
        """Async :meth:`embed_query`."""
        vectors: Matrix = await self.aembed([text], kind="query")
        return np.asarray(vectors[0], dtype=np.float32)

    async def _batch_limit(self, batch_size: int | None) -> int:
        limit = batch_size or self.options.batch_size
        if limit < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {limit}")
        server_max = (await self._endpoint_info()).get("max_client_batch_size")
        if isinstance(server_max, int) and server_max > 0:
            limit = min(limit, server_max)
        return limit

    async def _embed(
        self, texts: list[str], kind: Kind, batch_size: int | None, show_progress: bool | None
    ) -> Matrix:
        url = self.target.url(TASK)
        options = self.options.payload_options(kind)
        prefix = self.options.instruction(kind)
        pool_normalize = self.options.normalize is not False
        limit = await self._batch_limit(batch_size)
        out: list[Matrix] = []  # holds the (n, dim) result once the dimension is known

        async def send(start: int, stop: int) -> Matrix:
            inputs = [prefix + t for t in texts[start:stop]] if prefix else texts[start:stop]
            payload = await self.async_transport.request(
                Request(url, json={"inputs": inputs, **options})
            )
            dim = out[0].shape[1] if out else None
            return to_matrix(
                payload,
                stop - start,
                first=start,
                url=url,
                pooling=self.options.pooling,
                normalize_pooled=pool_normalize,
                dim=dim,
            )

        def collect(start: int, stop: int, rows: Matrix) -> None:
            if not out:
                out.append(np.empty((len(texts), rows.shape[1]), dtype=np.float32))
            out[0][start:stop] = rows

        bar = self.options.show_progress if show_progress is None else show_progress
        batches = -(-len(texts) // limit)
        with progress_bar(
            len(texts), bar, "embedding", batches=batches, callback=self.options.progress
        ) as advance:
            await run_batches(
                len(texts), limit, self.options.max_concurrency, send, collect, advance
            )
        return out[0]
