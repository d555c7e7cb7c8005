"""A dataset's file: storing an upload, reading its target and rows, overriding column types.

New datasets are stored as Parquet (converted once at upload, see analyses.ingest); datasets
uploaded before that are CSV files, recognised by their suffix, and keep being read as CSV.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings

from analyses import images, ingest, sources, statistics
from analyses.ingest import DatasetError
from analyses.models import Dataset, PredictionType
from training_worker.dataset_files import dataset_format, read_columns

# An image zip may expand to this many times the upload limit (a zip bomb is refused before that).
IMAGE_EXPANSION = 20
# What an editor may set a column to; "image" only where the values name files of the image folder.
OVERRIDE_TYPES = (*statistics.COLUMN_TYPES, "image")

__all__ = ["DatasetError", "guess_prediction_type", "read_rows", "read_target", "store_dataset"]


def read_target(dataset: Dataset, name: str) -> pd.Series:
    """The column as the runner reads it when numeric (numbers stay numbers)."""
    return read_columns(dataset.file.path, [name])[name]


def target_labels(dataset: Dataset, name: str, values: pd.Series | None = None) -> list[str]:
    """Sorted labels, as the runner reads a class target (as text); numbers sort by value (2 before 10).

    ``values``: the column as ``read_target`` gives it, when the caller has it already.
    """
    values = read_target(dataset, name) if values is None else values
    by_value = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    labels = read_columns(dataset.file.path, [name], as_text={name})[name].dropna().unique()
    return sorted((str(v) for v in labels), key=float if by_value else None)


def guess_prediction_type(series: pd.Series) -> PredictionType:
    distinct = series.nunique(dropna=True)
    if distinct <= 2:
        return PredictionType.BINARY
    is_integer_like = pd.api.types.is_integer_dtype(series) or pd.api.types.is_bool_dtype(series)
    if not pd.api.types.is_numeric_dtype(series) or (is_integer_like and distinct <= 20):
        return PredictionType.MULTICLASS
    return PredictionType.REGRESSION


def read_rows(dataset: Dataset, offset: int, limit: int) -> tuple[list[str], list[list[str]]]:
    """A page of rows as text (missing as ""), reading only the row groups that hold it."""
    if dataset_format(dataset.file.path) == "csv":
        frame = pd.read_csv(
            dataset.file.path,
            skiprows=range(1, offset + 1),
            nrows=limit,
            encoding="utf-8-sig",
            encoding_errors="replace",
            dtype=str,
            keep_default_na=False,
        )
        return list(frame.columns), frame.to_numpy().tolist()
    parquet = pq.ParquetFile(dataset.file.path)
    names = parquet.schema_arrow.names
    groups, first_row, start = [], None, 0
    for index in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(index).num_rows
        if start + size > offset and start < offset + limit:
            groups.append(index)
            first_row = start if first_row is None else first_row
        start += size
    if not groups:
        return names, []
    table = parquet.read_row_groups(groups).slice(offset - first_row, limit)
    columns = [pc.fill_null(pc.cast(table.column(n), pa.string()), "").to_pylist() for n in names]
    return names, [list(row) for row in zip(*columns, strict=True)]


def store_dataset(project, path: Path, filename: str, name: str, user, size_bytes: int) -> Dataset:
    """Validate, convert to Parquet, describe; nothing is left half-stored when any step fails."""
    from django.core.files import File

    scratch = Path(settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir())
    handle, converted_path = tempfile.mkstemp(suffix=".parquet", dir=scratch)
    os.close(handle)
    converted = Path(converted_path)
    dataset = None
    staging: Path | None = None  # an image dataset's folder until the dataset has its id
    try:
        image_columns: list[str] = []
        if images.is_zip(Path(path), filename):
            staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=_images_root()))
            staging.rmdir()  # extract creates it: a failure before leaves nothing to remove
            extracted = images.extract(
                Path(path), filename, staging, converted, IMAGE_EXPANSION * settings.MAX_UPLOAD_BYTES
            )
            rows, image_columns, source = extracted.rows, extracted.image_columns, extracted.source
            columns = statistics.describe_columns(converted)
        else:
            result = ingest.convert(Path(path), filename, converted)
            rows, source = result.rows, sources.describe(result.source, Path(path))
            columns = result.columns  # described while converting: the file is not read again
        for column in columns:
            if column["name"] in image_columns:  # file names found in the folder
                column["type"] = column["inferred_type"] = "image"
        dataset = Dataset(
            project=project,
            name=(name.strip() or _stem(filename))[:200],
            original_filename=filename,
            rows=rows,
            columns=columns,
            size_bytes=size_bytes,
            source=source,
            created_by=user,
        )
        with open(converted, "rb") as stored:
            dataset.file.save(f"{project.pk}-{_stem(filename)}.parquet", File(stored), save=False)
        dataset.save()
        if staging is not None:
            final = _images_root() / f"{dataset.pk}-images"
            staging.rename(final)
            staging = None
            dataset.images_dir = final.relative_to(settings.MEDIA_ROOT).as_posix()
            dataset.save(update_fields=["images_dir"])
        return dataset
    except Exception:
        if dataset is not None and dataset.file:
            dataset.file.delete(save=False)
        if dataset is not None and dataset.pk:
            dataset.delete()
        if dataset is not None and dataset.images_path is not None:
            shutil.rmtree(dataset.images_path, ignore_errors=True)
        raise
    finally:
        converted.unlink(missing_ok=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _images_root() -> Path:
    root = Path(settings.MEDIA_ROOT) / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _stem(filename: str) -> str:
    name = filename
    for suffix in (".zip", ".gz", ".csv", ".tsv", ".txt", ".parquet", ".pq"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "dataset"


def override_types(dataset: Dataset, changes: list[tuple[str, str]]) -> Dataset:
    """Set column types (any of OVERRIDE_TYPES), refusing those the values don't allow."""
    if dataset_format(dataset.file.path) != "parquet":
        raise DatasetError(
            f"Dataset {dataset.name!r} was uploaded before types could be changed; upload it again first."
        )
    schema = pq.read_schema(dataset.file.path)
    columns = {c["name"]: dict(c) for c in dataset.columns}
    changed: dict[str, str] = {}
    for name, kind in changes:
        if name not in columns:
            raise DatasetError(f"{name!r} is not a column of dataset {dataset.name!r}.")
        if kind not in OVERRIDE_TYPES:
            raise DatasetError(f"Column {name!r}: type {kind!r} is not one of {', '.join(OVERRIDE_TYPES)}.")
        if columns[name]["type"] != kind:  # an unchanged type needs no check (nor new statistics)
            _check_type_fits(dataset, name, kind, schema.field(name).type)
            changed[name] = kind
    if changed:
        stats = statistics.column_statistics(Path(dataset.file.path), changed)
        for name, kind in changed.items():
            keep = {"name": name, "type": kind, "inferred_type": columns[name].get("inferred_type", kind)}
            columns[name] = keep | stats[name]
        dataset.columns = [columns[c["name"]] for c in dataset.columns]
        dataset.save(update_fields=["columns"])
    return dataset


def _check_type_fits(dataset: Dataset, name: str, kind: str, stored: pa.DataType) -> None:
    path = dataset.file.path
    if kind == "image":
        images.check_image_column(Path(path), name, dataset.images_path, dataset.name)
    if kind == "numeric" and not statistics.is_numeric_storage(stored):
        example = statistics.first_failing(statistics.sample(Path(path), name).column(name), _is_number)
        raise DatasetError(
            f"Column {name!r} cannot be numeric: it holds values that are not numbers, such as {example!r}."
        )
    if kind == "date":
        if statistics.is_numeric_storage(stored):
            raise DatasetError(
                f"Column {name!r} cannot be a date: it holds numbers; dates must be written like 2024-01-31."
            )
        values = pc.drop_null(statistics.sample(Path(path), name).column(name))
        if statistics.date_share(values) < statistics.DATE_MIN_SHARE:
            example = statistics.first_failing(values, lambda v: statistics.date_share(pa.array([v])) == 1)
            raise DatasetError(
                f"Column {name!r} cannot be a date: fewer than {statistics.DATE_MIN_SHARE:.0%} of its values "
                f"are dates like 2024-01-31 or 2024-01-31T12:00:00 (for example {example!r} is not)."
            )


def _is_number(value: str) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
