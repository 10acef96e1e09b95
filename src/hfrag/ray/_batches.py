"""Reading a text column from a batch and adding a vector column, in the batch's own format.

Ray Data hands a callable batches as a ``dict`` of numpy arrays (``batch_format="numpy"``), a
``pyarrow.Table`` or a ``pandas.DataFrame``; Spark's ``mapInPandas`` hands it DataFrames. The
vectors go back in the same format, one fixed-size float32 vector per row:

- numpy: a 2-D ``float32`` array of shape ``(rows, dim)`` (Ray stores it as a tensor column);
- pyarrow: a ``fixed_size_list<float>[dim]`` column (Parquet and Arrow keep it as is); an
  empty batch that comes before any dimension is known gets an empty ``list<float>`` column;
- pandas: an object column holding one ``float32`` array of shape ``(dim,)`` per row, views into
  one ``(rows, dim)`` array (Arrow, so Ray and Spark, turn it into a list column).

Nothing here imports Ray, pyarrow or pandas at module level: each is imported only for a batch of
its own format, so the same code serves Spark without Ray.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from hfrag.errors import ConfigurationError
from hfrag.tasks.vectors import Matrix

Format = Literal["numpy", "pyarrow", "pandas"]

__all__ = ["Format", "batch_format", "texts_of", "with_vectors"]


def batch_format(batch: Any) -> Format:
    """Which of the three batch formats ``batch`` is in; TypeError for anything else."""
    if isinstance(batch, Mapping):
        return "numpy"
    module = type(batch).__module__.split(".")[0]
    if module == "pyarrow" and hasattr(batch, "column_names"):
        return "pyarrow"
    if module == "pandas" and hasattr(batch, "columns"):
        return "pandas"
    raise TypeError(
        f"expected a batch as a dict of numpy arrays, a pyarrow.Table or a pandas.DataFrame, "
        f"got {type(batch).__name__}"
    )


def _columns(batch: Any, kind: Format) -> list[str]:
    if kind == "numpy":
        return [str(name) for name in batch]
    if kind == "pyarrow":
        return list(batch.column_names)
    return [str(name) for name in batch.columns]


def texts_of(batch: Any, column: str) -> list[Any]:
    """The values of ``column`` as a list (check them with ``check_texts``)."""
    kind = batch_format(batch)
    if column not in _columns(batch, kind):
        raise ConfigurationError(
            f"the batch has no column {column!r}; its columns are {_columns(batch, kind)}: "
            "pass the name of the text column as column=..."
        )
    if kind == "pyarrow":
        values: list[Any] = batch.column(column).to_pylist()
        return values
    if kind == "pandas":
        return list(batch[column].tolist())
    column_values: Any = batch[column]
    if isinstance(column_values, np.ndarray):
        return list(column_values.tolist())
    if isinstance(column_values, (str, bytes)) or not isinstance(column_values, Sequence):
        raise TypeError(
            f"column {column!r} must be an array or a list of strings, got "
            f"{type(column_values).__name__}"
        )
    return list(column_values)


def with_vectors(batch: Any, column: str, vectors: Matrix) -> Any:
    """A new batch of the same format: ``batch`` plus (or with a replaced) ``column``."""
    kind = batch_format(batch)
    dim = vectors.shape[1]
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if kind == "numpy":
        return {**batch, column: vectors}
    if kind == "pyarrow":
        import pyarrow as pa

        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        if dim:
            values = pa.FixedSizeListArray.from_arrays(flat, dim)
        else:  # an empty batch before any dimension is known: Arrow has no 0-wide list
            values = pa.array([], type=pa.list_(pa.float32()))
        if column in batch.column_names:
            return batch.set_column(batch.column_names.index(column), column, values)
        return batch.append_column(column, values)
    import pandas as pd

    out = batch.copy(deep=False)
    out[column] = pd.Series(list(vectors), index=batch.index, dtype=object)
    return out
