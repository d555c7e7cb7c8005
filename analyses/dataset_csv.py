"""A dataset as CSV, streamed (``GET /api/datasets/{id}/download/``): one Parquet batch at a time,
so the web process holds one batch whatever the dataset's size.

Safe to open in a spreadsheet (OWASP "CSV injection"): a text cell or column name starting with
``= + - @``, a tab or a carriage return gets a leading apostrophe, so Excel or LibreOffice shows it
as text instead of running it as a formula (``=HYPERLINK(...)``, ``=cmd|...``). Numbers stay numbers:
numeric columns are never touched, and neither is a text cell that is a plain number (``-5``, ``+1.5e3``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from analyses.models import Dataset
from training_worker.dataset_files import dataset_format

BATCH_ROWS = 64 * 1024


# A cell starting with one of these is a formula to a spreadsheet; one matching NUMBER is a number.
FORMULA = r"^[=+\-@\t\r]"
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def csv_chunks(dataset: Dataset) -> Iterator[bytes]:
    """The CSV's bytes, header first, formulas defused (a dataset stored before Parquet: its CSV file
    read as text, a batch at a time)."""
    path = Path(dataset.file.path)
    if dataset_format(path) == "csv":
        header = True
        for frame in pd.read_csv(
            path,
            chunksize=BATCH_ROWS,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            encoding_errors="replace",
        ):
            yield _csv(pa.Table.from_pandas(frame, preserve_index=False), header)
            header = False
        return
    parquet = pq.ParquetFile(path)
    header = True
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        yield _csv(pa.Table.from_batches([batch]), header)
        header = False
    if header:  # no rows: the header alone
        yield _csv(parquet.schema_arrow.empty_table(), True)


def _csv(table: pa.Table, header: bool) -> bytes:
    buffer = io.BytesIO()
    pacsv.write_csv(defuse(table), buffer, write_options=pacsv.WriteOptions(include_header=header))
    return buffer.getvalue()


def defuse(table: pa.Table) -> pa.Table:
    """``table`` with every text cell and column name that a spreadsheet would run as a formula
    prefixed with an apostrophe; numeric, boolean and date columns as they are."""
    columns = [_defused_column(column) for column in table.columns]
    names = [defuse_text(name) for name in table.column_names]
    return pa.Table.from_arrays(columns, names=names)


def defuse_text(value: str) -> str:
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not re.match(NUMBER, value):
        return "'" + value
    return value


def _defused_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_string_view(column.type):
        column = column.cast(pa.string())
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    risky = pc.and_(
        pc.match_substring_regex(column, FORMULA), pc.invert(pc.match_substring_regex(column, NUMBER))
    )
    if not pc.any(risky).as_py():
        return column
    quote = pa.scalar("'", column.type)
    return pc.if_else(risky, pc.binary_join_element_wise(quote, column, pa.scalar("", column.type)), column)


def csv_filename(dataset: Dataset) -> str:
    """A download name from the dataset's name: ASCII letters, digits, ``-_.`` and spaces only."""
    name = re.sub(r"[^A-Za-z0-9_\-. ]+", "_", dataset.name).strip() or f"dataset-{dataset.pk}"
    return f"{name[:150]}.csv"
