"""Reading an uploaded CSV: validation with messages that name the problem, schema inference."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analyses.models import PredictionType

SNIFF_BYTES = 64 * 1024
# A text column has long values; a categorical one repeats a limited set of values.
TEXT_MEAN_LENGTH = 40
CATEGORICAL_MAX_SHARE = 0.5


class DatasetError(ValueError):
    """The upload cannot become a dataset; the message says why in the user's terms."""


@dataclass
class Schema:
    rows: int
    columns: list[dict]


def read_csv(path: Path | str, **options) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig", encoding_errors="replace", low_memory=False, **options)


def check_looks_like_csv(path: Path, filename: str) -> None:
    head = Path(path).read_bytes()[:SNIFF_BYTES] if Path(path).stat().st_size else b""
    if not head.strip():
        raise DatasetError(f"{filename} is empty: upload a CSV file with a header row and at least one row.")
    if b"\x00" in head:
        raise DatasetError(
            f"{filename} is not a CSV file (it contains binary data). Upload a comma-separated text file."
        )
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    header = next(csv.reader(io.StringIO(text)), [])
    names = [h.strip() for h in header]
    if any(not n for n in names):
        position = names.index("") + 1
        raise DatasetError(f"{filename}: column {position} of the header row has no name. Name every column.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetError(
            f"{filename}: the header repeats column name(s) {', '.join(duplicates)}. Names must be unique."
        )


def infer_schema(path: Path, filename: str) -> Schema:
    check_looks_like_csv(path, filename)
    try:
        frame = read_csv(path)
    except pd.errors.ParserError as exc:
        raise DatasetError(f"{filename} could not be read as CSV: {exc}") from None
    except pd.errors.EmptyDataError:
        raise DatasetError(
            f"{filename} is empty: upload a CSV file with a header row and at least one row."
        ) from None
    if len(frame) == 0:
        raise DatasetError(f"{filename} has a header but no rows.")
    return Schema(rows=len(frame), columns=[describe_column(frame[name]) for name in frame.columns])


def column_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    values = series.dropna().astype(str)
    if values.empty:
        return "categorical"
    if values.str.len().mean() >= TEXT_MEAN_LENGTH and values.nunique() > CATEGORICAL_MAX_SHARE * len(values):
        return "text"
    return "categorical"


def describe_column(series: pd.Series) -> dict:
    return {
        "name": str(series.name),
        "type": column_type(series),
        "missing": int(series.isna().sum()),
        "distinct": int(series.nunique(dropna=True)),
    }


def target_classes(series: pd.Series) -> list[str]:
    """Sorted labels as strings; numeric labels sort by value (2 before 10)."""
    values = series.dropna().unique()
    if pd.api.types.is_numeric_dtype(series):
        values = sorted(values)
        return [format_label(v) for v in values]
    return sorted(str(v) for v in values)


def format_label(value) -> str:
    """Labels as the runner sees them after reading the CSV as strings: 1.0 stays "1.0", 1 stays "1"."""
    return str(value)


def guess_prediction_type(series: pd.Series) -> PredictionType:
    distinct = series.nunique(dropna=True)
    if distinct <= 2:
        return PredictionType.BINARY
    is_integer_like = pd.api.types.is_integer_dtype(series) or pd.api.types.is_bool_dtype(series)
    if not pd.api.types.is_numeric_dtype(series) or (is_integer_like and distinct <= 20):
        return PredictionType.MULTICLASS
    return PredictionType.REGRESSION


def store_dataset(project, path: Path, filename: str, name: str, user, size_bytes: int):
    """Validate, infer the schema, and keep the file in storage; nothing is left half-stored."""
    from django.core.files import File

    from analyses.models import Dataset

    schema = infer_schema(path, filename)
    dataset = Dataset(
        project=project,
        name=(name.strip() or Path(filename).stem)[:200],
        original_filename=filename,
        rows=schema.rows,
        columns=schema.columns,
        size_bytes=size_bytes,
        created_by=user,
    )
    with open(path, "rb") as handle:
        dataset.file.save(f"{project.pk}-{filename}", File(handle), save=False)
    try:
        dataset.save()
    except Exception:
        dataset.file.delete(save=False)
        raise
    return dataset
