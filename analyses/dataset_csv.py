"""A dataset as CSV, streamed (``GET /api/datasets/{id}/download/``): one Parquet batch at a time,
so the web process holds one batch whatever the dataset's size."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from analyses.models import Dataset
from training_worker.dataset_files import dataset_format

BATCH_ROWS = 64 * 1024
CHUNK = 1024**2


def csv_chunks(dataset: Dataset) -> Iterator[bytes]:
    """The CSV's bytes, header first (a dataset stored before Parquet is its CSV file as stored)."""
    path = Path(dataset.file.path)
    if dataset_format(path) == "csv":
        with open(path, "rb") as source:
            while chunk := source.read(CHUNK):
                yield chunk
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
    pacsv.write_csv(table, buffer, write_options=pacsv.WriteOptions(include_header=header))
    return buffer.getvalue()


def csv_filename(dataset: Dataset) -> str:
    """A download name from the dataset's name: ASCII letters, digits, ``-_.`` and spaces only."""
    name = re.sub(r"[^A-Za-z0-9_\-. ]+", "_", dataset.name).strip() or f"dataset-{dataset.pk}"
    return f"{name[:150]}.csv"
