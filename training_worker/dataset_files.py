"""Reading a dataset file as the studio stores it: Parquet, or CSV for datasets stored before Parquet.

Shared by the studio (class labels, target checks) and the runner, so both read values alike.
Importable without scikit-learn or TensorFlow: the web process uses it.
"""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def dataset_format(path: str | os.PathLike[str]) -> str:
    """ "parquet" for datasets converted at upload, "csv" for older ones (told apart by suffix)."""
    return "parquet" if str(path).lower().endswith(".parquet") else "csv"


def read_columns(
    path: str | os.PathLike[str],
    columns: list[str] | None = None,
    as_text: set[str] | frozenset[str] = frozenset(),
    format: str | None = None,
) -> pd.DataFrame:
    """Columns of a dataset file; those in ``as_text`` as Python strings (missing stays NaN).

    The text is what a CSV reader keeping the column as text would give: integers as ``"1"``, other
    values as Python writes them (``"1.5"``, ``"True"``). The studio computes an ML task's class
    labels with this very function, so the labels it stores and those the runner sees agree.
    ``format`` defaults to the one the suffix says.
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
    table = pq.read_table(path, columns=columns)
    frame = {}
    for name in table.column_names:
        column = table.column(name)
        if name in as_text:
            if pa.types.is_integer(column.type):
                column = pc.cast(column, pa.string())
            series = column.to_pandas().astype(object)
            frame[name] = series.where(series.isna(), series.map(str))
        else:
            frame[name] = column.to_pandas()
    return pd.DataFrame(frame)
