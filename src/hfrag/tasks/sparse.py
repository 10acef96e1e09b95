"""The sparse-embeddings task: texts in, one :class:`SparseVector` per text, in input order.

TEI serves sparse models (SPLADE) at ``/embed_sparse``: the body is ``{"inputs": [...],
"truncate"?, "truncation_direction"?, "prompt_name"?}`` and the answer holds, per input, the
non-zero entries ``[{"index": int, "value": float}, ...]`` (docs/PROTOCOL.md, section 8).

The client shares the dense client's machinery: batches sized and paced by
:func:`hfrag.tasks.engine.job_settings` (``max_client_batch_size`` and ``max_batch_tokens`` from
``/info``, the endpoint's adaptive budget) and run by :func:`hfrag.tasks.batching.run_batches`
(adaptive split, positions in errors); the transport's retries and credential rule; the
whole-call deadline of :class:`~hfrag.tasks.base.TaskClient`; progress; the input rule of
:mod:`hfrag.tasks.inputs`. Inputs longer than the endpoint's ``max_input_length`` are reported as
:mod:`hfrag.tasks.lengths` says (``long_inputs``).

The Hugging Face router serves no sparse-embedding task, so the target is an endpoint URL: a
TEI server with a SPLADE model, an Inference Endpoint running one, or ``hfrag serve``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from typing_extensions import Unpack

from hfrag._checks import check_bool, check_choice, check_int, check_str
from hfrag.errors import ConfigurationError, MalformedResponseError
from hfrag.tasks.base import Connection, TaskClient, connect
from hfrag.tasks.batching import run_batches
from hfrag.tasks.engine import DEFAULT_CEILING, Size, check_size, job_settings, pool_size
from hfrag.tasks.inputs import check_text, check_texts
from hfrag.tasks.lengths import LONG_INPUTS, LongInputs, check_lengths
from hfrag.tasks.progress import ProgressCallback, progress_bar
from hfrag.transport import Request
from hfrag.transport.urls import endpoint_route, redact_url

__all__ = ["SparseEmbeddingsClient", "SparseOptions", "SparseVector", "decode_sparse"]

Kind = Literal["query", "document"]
#: A generous body size per input (a SPLADE answer has a few hundred entries of ~40 bytes).
BYTES_PER_INPUT = 1024 * 1024


@dataclass(frozen=True, eq=False)
class SparseVector:
    """One text's sparse vector: ``indices`` ascending (int64), ``values`` float32 beside them."""

    indices: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32]

    def as_dict(self) -> dict[int, float]:
        """``{index: value}`` (LlamaIndex's sparse embedding form)."""
        return dict(zip(self.indices.tolist(), self.values.tolist(), strict=True))

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return bool(
            np.array_equal(self.indices, other.indices)
            and np.array_equal(self.values, other.values)
        )

    def __hash__(self) -> int:
        return hash((self.indices.tobytes(), self.values.tobytes()))


@dataclass(frozen=True)
class SparseOptions:
    """What to ask ``/embed_sparse`` for, and how to cut and pace the work (see the client;
    ``batch_size``, ``max_concurrency`` and ``concurrency_ceiling`` mean what they mean for
    dense embeddings: :mod:`hfrag.tasks.engine`)."""

    batch_size: Size = "auto"
    max_concurrency: Size = "auto"
    concurrency_ceiling: int = DEFAULT_CEILING
    truncate: bool | None = True
    truncation_direction: Literal["left", "right"] | None = None
    prompt_name: str | None = None
    query_prompt_name: str | None = None
    document_prompt_name: str | None = None
    long_inputs: LongInputs = "warn"
    show_progress: bool = False
    #: ``progress(done, total)`` after every batch, for a UI other than tqdm.
    progress: ProgressCallback | None = None

    def __post_init__(self) -> None:
        check_size("batch_size", self.batch_size)
        check_size("max_concurrency", self.max_concurrency)
        check_int("concurrency_ceiling", self.concurrency_ceiling, minimum=1)
        check_bool("truncate", self.truncate, optional=True)
        check_bool("show_progress", self.show_progress)
        if self.truncation_direction is not None:
            check_choice("truncation_direction", self.truncation_direction, ("left", "right"))
        for name in ("prompt_name", "query_prompt_name", "document_prompt_name"):
            check_str(name, getattr(self, name), optional=True)
        check_choice("long_inputs", self.long_inputs, LONG_INPUTS)

    def prompt(self, kind: Kind) -> str | None:
        chosen = self.query_prompt_name if kind == "query" else self.document_prompt_name
        return chosen or self.prompt_name

    def body(self, inputs: list[str], kind: Kind) -> dict[str, Any]:
        """The ``/embed_sparse`` body for ``inputs``; options left unset are not sent."""
        options = {
            "truncate": self.truncate,
            "truncation_direction": self.truncation_direction,
            "prompt_name": self.prompt(kind),
        }
        return {"inputs": inputs, **{k: v for k, v in options.items() if v is not None}}


def _bad(first: int, n: int, url: str, why: str) -> MalformedResponseError:
    where = f"inputs {first}-{first + n - 1}" if n > 1 else f"input {first}"
    return MalformedResponseError(
        f"sparse embedding response for {where} is malformed: {why}",
        status=200,
        url=redact_url(url),
    )


#: Indices are kept as int64, weights as float32 (what Qdrant and numpy take).
_INDEX_END = 2**63
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _entry(item: Any) -> tuple[int, float] | None:
    if not isinstance(item, dict):
        return None
    index, value = item.get("index"), item.get("value")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < _INDEX_END:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        weight = float(value)
    except OverflowError:  # a JSON integer beyond any float
        return None
    # Weights are kept as float32: one beyond its range would become inf there.
    if not math.isfinite(weight) or abs(weight) > _FLOAT32_MAX:
        return None
    return index, weight


def decode_sparse(payload: Any, n: int, first: int, url: str) -> list[SparseVector]:
    """Validate one ``/embed_sparse`` answer for inputs ``first .. first+n-1``.

    The answer must be ``n`` lists of ``{"index": int in [0, 2**63), "value": number}`` (a
    weight finite as a float32) with no index twice; anything else is a
    :class:`~hfrag.errors.MalformedResponseError` naming the inputs. Entries are sorted by index.
    """
    if not isinstance(payload, list):
        raise _bad(first, n, url, f"expected a list, got {type(payload).__name__}")
    if len(payload) != n:
        raise _bad(first, n, url, f"{len(payload)} vectors for {n} inputs")
    out = []
    for offset, row in enumerate(payload):
        if not isinstance(row, list):
            raise _bad(
                first + offset, 1, url, f"expected a list of entries, got {type(row).__name__}"
            )
        entries = [_entry(item) for item in row]
        if any(e is None for e in entries):
            raise _bad(
                first + offset,
                1,
                url,
                'entries must be {"index": int in [0, 2**63), "value": a number finite as a '
                "float32}",
            )
        pairs = sorted(e for e in entries if e is not None)
        indices = np.fromiter((i for i, _ in pairs), dtype=np.int64, count=len(pairs))
        if indices.size > 1 and not (np.diff(indices) > 0).all():
            raise _bad(first + offset, 1, url, "an index appears twice")
        values = np.fromiter((v for _, v in pairs), dtype=np.float32, count=len(pairs))
        out.append(SparseVector(indices, values))
    return out


class SparseEmbeddingsClient(TaskClient):
    """Sparse embeddings (SPLADE and the like) from a TEI endpoint's ``/embed_sparse``.

    Example::

        client = SparseEmbeddingsClient(endpoint_url="http://127.0.0.1:8080")
        vectors = client.embed(["first text", "second text"])   # [SparseVector, SparseVector]
        vectors[0].indices, vectors[0].values                   # int64 and float32 arrays
        query = client.embed_query("what is in the text?")      # one SparseVector
    """

    def __init__(
        self,
        model: str | None = None,
        endpoint_url: str | None = None,
        *,
        options: SparseOptions | None = None,
        **connection: Unpack[Connection],
    ) -> None:
        if options is not None and not isinstance(options, SparseOptions):
            raise ConfigurationError(
                f"options must be a SparseOptions, got {type(options).__name__}"
            )
        self.options = options or SparseOptions()
        max_connections = pool_size(self.options.max_concurrency, self.options.concurrency_ceiling)
        super().__init__(*connect(model, endpoint_url, connection, max_connections=max_connections))
        if not self.target.is_endpoint:
            raise ConfigurationError(
                f"sparse embeddings need endpoint_url=...: the Hugging Face router serves no "
                f"sparse-embedding task for model ids ({self.target.describe()!r}); deploy the "
                "model on TEI (an Inference Endpoint or text-embeddings-inference) and give its URL"
            )
        assert self.target.endpoint_url is not None
        self.url = endpoint_route(self.target.endpoint_url, "/embed_sparse")

    def embed(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "document",
        batch_size: Size | None = None,
        show_progress: bool | None = None,
    ) -> list[SparseVector]:
        """Sparse vectors of ``texts``, in input order.

        Args:
            texts: the texts (checked before anything is sent: :mod:`hfrag.tasks.inputs`).
            kind: ``"document"`` or ``"query"``: which prompt name applies.
            batch_size: texts per request for this call (at most the endpoint's
                ``max_client_batch_size``).
            show_progress: a progress bar for this call.

        Returns:
            One :class:`SparseVector` per text.

        Raises:
            InputError: a bad text, or (``long_inputs="error"``) texts longer than the
                endpoint's ``max_input_length``, with their positions.
            InferenceError: a request failed for good; ``positions`` names the inputs it cost.
        """
        items = check_texts(texts)
        _check_call(batch_size, show_progress)
        if not items:
            return []
        return self.run(self._embed(items, kind, batch_size, show_progress))

    async def aembed(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "document",
        batch_size: Size | None = None,
        show_progress: bool | None = None,
    ) -> list[SparseVector]:
        """Async :meth:`embed`; safe from any event loop."""
        items = check_texts(texts)
        _check_call(batch_size, show_progress)
        if not items:
            return []
        return await self.arun(self._embed(items, kind, batch_size, show_progress))

    def embed_query(self, text: str) -> SparseVector:
        """One query's sparse vector (with the query prompt name)."""
        return self.embed([check_text(text, "the query")], kind="query")[0]

    async def aembed_query(self, text: str) -> SparseVector:
        """Async :meth:`embed_query`."""
        return (await self.aembed([check_text(text, "the query")], kind="query"))[0]

    async def _embed(
        self, texts: list[str], kind: Kind, batch_size: Size | None, show_progress: bool | None
    ) -> list[SparseVector]:
        options = self.options
        fixed = options.max_concurrency
        await check_lengths(
            self,
            texts,
            options.long_inputs,
            truncate=options.truncate,
            prompt_name=options.prompt(kind),
            max_concurrency=fixed if isinstance(fixed, int) else 4,
        )
        job = await job_settings(
            self,
            self.url,
            texts,
            batch_size=options.batch_size if batch_size is None else batch_size,
            max_concurrency=options.max_concurrency,
            ceiling=options.concurrency_ceiling,
            truncate=options.truncate,
        )
        out: list[SparseVector | None] = [None] * len(texts)

        async def send(start: int, stop: int) -> list[SparseVector]:
            body = options.body(texts[start:stop], kind)
            size = BYTES_PER_INPUT * (stop - start)
            payload = await self.async_transport.request(
                Request(self.url, json=body, max_response_bytes=size, paced=job.paced)
            )
            return decode_sparse(payload, stop - start, start, self.url)

        def collect(start: int, stop: int, rows: list[SparseVector]) -> None:
            out[start:stop] = rows

        bar = options.show_progress if show_progress is None else show_progress
        batches = -(-len(texts) // job.batch_size)
        with progress_bar(
            len(texts), bar, "sparse embedding", batches=batches, callback=options.progress
        ) as advance:
            await run_batches(
                len(texts),
                job.batch_size,
                job.workers,
                send,
                collect,
                advance,
                retry=self.config.retry,
                **job.run_args(),
            )
        done = [row for row in out if row is not None]
        assert len(done) == len(texts)  # run_batches raises for anything not collected
        return done


def _check_call(batch_size: Size | None, show_progress: bool | None) -> None:
    if batch_size is not None:
        check_size("batch_size", batch_size)
    check_bool("show_progress", show_progress, optional=True)
