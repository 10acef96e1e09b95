"""The callable class a distributed engine runs on each worker: a batch of rows in, vectors out.

:class:`Embedder` is what ``Dataset.map_batches`` (Ray Data) or ``mapInPandas`` (Spark) calls.
It builds one :class:`~hfrag.tasks.EmbeddingsClient` in ``__init__``, so each worker keeps one
connection pool and one private I/O loop for its whole life, and takes the same settings as the
embedding adapters: the client's keyword arguments and the :class:`~hfrag.tasks.EmbeddingOptions`
fields, with their defaults and checks (nothing is declared again here).

A worker handles one batch at a time (a lock makes sure of it even when the engine calls it from
several threads), so the requests it has in flight never exceed its ``max_concurrency`` (or, when
adaptive, its ``concurrency_ceiling``): that is what lets :func:`hfrag.ray.embed_dataset` bound
the total across workers.

A batch either comes back whole, every row with its vector, or raises hfrag's typed error (batch
positions included); nothing is returned for a failed batch.

This module imports neither Ray nor Spark.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from hfrag.errors import ConfigurationError, MalformedResponseError
from hfrag.ray._batches import texts_of, with_vectors
from hfrag.tasks.base import CONNECTION_ARGS
from hfrag.tasks.embeddings import EmbeddingOptions, EmbeddingsClient, Kind, check_texts
from hfrag.transport import LocalSecret

__all__ = ["Embedder", "build_client"]

# The settings an Embedder takes are exactly these two sets, read from where they are declared.
_CLIENT_ARGS = CONNECTION_ARGS | {"model", "endpoint_url"}
_OPTION_ARGS = frozenset(f.name for f in dataclasses.fields(EmbeddingOptions))
_ALIASES = {"api_key": "token"}  # as in the adapters


def build_client(fields: Mapping[str, Any]) -> EmbeddingsClient:
    """An :class:`EmbeddingsClient` from the adapters' flat settings (unknown names fail)."""
    client_args: dict[str, Any] = {}
    option_args: dict[str, Any] = {}
    for given, value in fields.items():
        name = _ALIASES.get(given, given)
        if name in client_args:
            raise ConfigurationError(f"{given}= repeats a setting given already ({name})")
        if name in _CLIENT_ARGS:
            client_args[name] = value
        elif name in _OPTION_ARGS:
            option_args[name] = value
        else:
            known = sorted(_CLIENT_ARGS | _OPTION_ARGS | set(_ALIASES))
            close = difflib.get_close_matches(given, known, n=1)
            hint = f"; did you mean {close[0]}=?" if close else f"; known settings: {known}"
            raise ConfigurationError(f"unknown embedding setting {given}={hint}")
    return EmbeddingsClient(**client_args, options=EmbeddingOptions(**option_args))


class Embedder:
    """Embed the text column of each batch with hfrag; a callable class for a worker pool.

    Args:
        column: the column holding the texts.
        output_column: the column the vectors go to (added, or replaced if it exists).
        kind: ``"document"`` (default) or ``"query"``: which prompt or instruction applies.
        **fields: the embedding adapters' settings: ``model`` or ``endpoint_url``, ``token``
            (pass a :class:`hfrag.transport.Secret`, so no text form of the arguments shows it),
            ``timeout``, ``max_retries``, ``batch_size`` (texts per request),
            ``max_concurrency`` (requests in flight on this worker) and the other options of
            :class:`~hfrag.tasks.EmbeddingOptions`.

    Batches come in as a dict of numpy arrays, a ``pyarrow.Table`` or a ``pandas.DataFrame`` and
    go out in the same format with a fixed-size float32 vector per row (see
    :mod:`hfrag.ray._batches`).

    Example (Ray Data)::

        import ray
        from hfrag.ray import Embedder
        from hfrag.transport import Secret

        ds = ray.data.read_parquet("chunks/")
        ds.context.raise_original_map_exception = True  # hfrag's typed errors, unwrapped
        ds = ds.map_batches(
            Embedder,
            fn_constructor_kwargs={"endpoint_url": "http://127.0.0.1:8080", "token": Secret(tok),
                                   "max_concurrency": 4},
            batch_size=512, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=2),   # 2 workers x 4 = 8 requests at most
        )

    :func:`hfrag.ray.embed_dataset` does the sizing for you.
    """

    def __init__(
        self,
        column: str = "text",
        output_column: str = "embedding",
        *,
        kind: Kind = "document",
        **fields: Any,
    ) -> None:
        for name, value in (("column", column), ("output_column", output_column)):
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"{name} must be a non-empty column name, got {value!r}")
        if column == output_column:
            raise ConfigurationError(
                f"column and output_column are both {column!r}: the vectors would overwrite the "
                "texts; name another output column"
            )
        if kind not in ("document", "query"):
            raise ConfigurationError(f"kind must be 'document' or 'query', got {kind!r}")
        self.column = column
        self.output_column = output_column
        self.kind: Kind = kind
        # A token given as a plain string stays in this process (LocalSecret: left out of a
        # pickle), as for every client; a Secret travels (embed_dataset gives the actors one).
        self._fields = {
            k: LocalSecret(v) if k in ("token", "api_key") and isinstance(v, str) else v
            for k, v in fields.items()
        }
        self.client = build_client(self._fields)
        self._dim: int | None = self.client.options.dimensions
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        # Ray names the worker's log lines after this: a target and columns, never a credential.
        return (
            f"Embedder(target={self.client.target.describe()!r}, column={self.column!r}, "
            f"output_column={self.output_column!r})"
        )

    def __call__(self, batch: Any) -> Any:
        """``batch`` plus its vectors, in the batch's format; raises for a failed batch."""
        if self._pid != os.getpid():
            self._after_fork()
        texts = check_texts(texts_of(batch, self.column))
        if not texts:
            empty = np.zeros((0, self._dim or 0), dtype=np.float32)
            return with_vectors(batch, self.output_column, empty)
        with self._lock:  # one batch at a time per worker: its in-flight bound holds
            vectors = self.client.embed(texts, kind=self.kind)
            if self._dim is None:
                self._dim = int(vectors.shape[1])
        if vectors.shape[1] != self._dim:
            raise MalformedResponseError(
                f"the server answered vectors of {vectors.shape[1]} dimensions after "
                f"{self._dim} in earlier batches of this worker; one dataset needs one dimension",
                url=self.client.target.describe(),
                positions=range(len(texts)),
            )
        return with_vectors(batch, self.output_column, vectors)

    def _after_fork(self) -> None:
        # A forked process (multiprocessing, a forking Spark worker) inherits the parent's
        # connection pool, bound to the parent's I/O loop and sockets: build its own client.
        self.client = build_client(self._fields)
        self._lock = threading.Lock()  # the parent's may have been held at the fork
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        # The client's pool and the lock stay behind; the copy builds its own on unpickling.
        return {k: v for k, v in self.__dict__.items() if k not in ("client", "_lock", "_pid")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._after_fork()

    def close(self) -> None:
        """Close the client's connections (a worker's end closes them too)."""
        self.client.close()
