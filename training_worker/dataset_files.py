"""Reading a dataset file as the studio stores it: Parquet, or CSV for datasets stored before Parquet.

Shared by the studio (class labels, target checks) and the runner, so both read values alike.
Importable without scikit-learn or TensorFlow: the web process uses it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def dataset_format(path: str | os.PathLike[str]) -> str:
    """ "parquet" for datasets converted at upload, "csv" for older ones (told apart by suffix)."""
    return "parquet" if str(path).lower().endswith(".parquet") else "csv"


def sample_positions(total: int, rows: int, seed: int) -> np.ndarray | None:
    """The sorted positions of ``rows`` rows drawn without replacement among ``total``, or None
    (every row) when ``rows`` covers them all. The same for a CSV and a Parquet file of the data."""
    if rows >= total:
        return None
    return np.sort(np.random.default_rng(seed).choice(total, size=rows, replace=False))


def read_parquet_sample(
    path: str | os.PathLike[str],
    columns: list[str] | None,
    head: int | None = None,
    positions: np.ndarray | None = None,
) -> pa.Table:
    """The first ``head`` rows, or the rows at sorted ``positions``, reading one row group at a time:
    ``head`` reads only the row groups it needs; ``positions`` holds no more than one row group
    beyond the sample."""
    parquet = pq.ParquetFile(path)
    pieces = []
    start = 0
    for group in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(group).num_rows
        if head is not None:
            if start >= head:
                break
            pieces.append(parquet.read_row_group(group, columns=columns).slice(0, head - start))
        else:
            chosen = positions[(positions >= start) & (positions < start + size)] - start
            if len(chosen):
                pieces.append(parquet.read_row_group(group, columns=columns).take(pa.array(chosen)))
        start += size
    if not pieces:
        return parquet.schema_arrow.empty_table().select(columns or parquet.schema_arrow.names)
    return pa.concat_tables(pieces)


def read_columns(
    path: str | os.PathLike[str],
    columns: list[str] | None = None,
    as_text: set[str] | frozenset[str] = frozenset(),
    format: str | None = None,
    sampling: dict | None = None,
) -> pd.DataFrame:
    """Columns of a dataset file; those in ``as_text`` as Python strings (missing stays NaN).

    The text is what a CSV reader keeping the column as text would give: integers as ``"1"``, other
    values as Python writes them (``"1.5"``, ``"True"``). The studio computes an ML task's class
    labels with this very function, so the labels it stores and those the runner sees agree.
    ``format`` defaults to the one the suffix says. ``sampling`` (Parquet only):
    ``{"method": "head", "rows": N}`` or ``{"method": "random", "rows": N, "seed": S}``.
    """
    if (format or dataset_format(path)) == "csv":
        return pd.read_csv(
            path,
            usecols=columns,
            dtype=dict.fromkeys(as_text, object),
            encoding="utf-8-sig",
            encoding_errors="replace",
            low_memory=False,
        )
    method = (sampling or {}).get("method", "all")
    parquet = pq.ParquetFile(path)
    positions = None
    if method == "random":
        positions = sample_positions(
            parquet.metadata.num_rows,
            int(sampling["rows"]),  # type: ignore[index]
            int(sampling.get("seed", 1337)),  # type: ignore[union-attr]
        )
    frame = {}
    # A column at a time: Arrow's copy of the data and pandas' never coexist beyond one column.
    for name in columns or parquet.schema_arrow.names:
        if method == "head":
            table = read_parquet_sample(path, [name], head=int(sampling["rows"]))  # type: ignore[index]
        elif positions is not None:
            table = read_parquet_sample(path, [name], positions=positions)
        else:
            table = parquet.read(columns=[name])
        frame[name] = _to_pandas(table.column(name), name in as_text)
        del table
        release_freed_memory()
    return pd.DataFrame(frame, copy=False)  # the columns are fresh: no second copy of the data


def iter_frames(
    path: str | os.PathLike[str], columns: list[str], as_text: set[str] | frozenset[str], rows: int
) -> Iterator[pd.DataFrame]:
    """A Parquet dataset ``rows`` rows at a time, each column as :func:`read_columns` reads it
    (scoring reads what the model was trained on alike, and holds one chunk, whatever the file)."""
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=rows, columns=columns):
        yield pd.DataFrame(
            {
                name: _to_pandas(pa.chunked_array([batch.column(name)]), name in as_text)
                for name in batch.schema.names
            },
            copy=False,
        )


def release_freed_memory() -> None:
    """Hand memory Arrow's allocator kept back to the system. Columns read from Parquet live in
    Arrow's pool (pandas shares its buffers), which keeps freed pages for reuse: a dataset read
    and dropped would otherwise stay in the process's memory until it exits."""
    pa.default_memory_pool().release_unused()


def _to_pandas(column: pa.ChunkedArray, as_text: bool) -> pd.Series:
    if not as_text:
        return column.to_pandas()
    if pa.types.is_integer(column.type):
        column = pc.cast(column, pa.string())
    series = column.to_pandas().astype(object)
    return series.where(series.isna(), series.map(str))
