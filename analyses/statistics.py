"""Column types and per-column statistics of a dataset's canonical Parquet file, read as a stream.

Types come from a sample (the first ``SAMPLE_ROWS`` rows); statistics are exact over every row,
except ``distinct`` past ``DISTINCT_CAP`` values (then a K-minimum-values estimate, flagged
``distinct_approx``) and the ``top`` counts of such a column (flagged ``top_approx``: past the cap,
only values already seen keep being counted; frequent values show up early).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SAMPLE_ROWS = 50_000
BATCH_ROWS = 256 * 1024
DISTINCT_CAP = 100_000
KMV_SIZE = 4096
TOP_VALUES = 10
HISTOGRAM_BINS = 20
# A text column has long values; a categorical one repeats a limited set of values.
TEXT_MEAN_LENGTH = 40
CATEGORICAL_MAX_SHARE = 0.5
DATE_MIN_SHARE = 0.95
COLUMN_TYPES = ("numeric", "categorical", "text", "date")
ISO_DATE = re.compile(
    r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}"
    r"([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?$"
)


def sample(path: Path, name: str | None = None) -> pa.Table:
    """The first SAMPLE_ROWS rows (of one column, when named): type decisions are made on these."""
    parquet = pq.ParquetFile(str(path))
    batches = []
    count = 0
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=None if name is None else [name]):
        batches.append(batch)
        count += len(batch)
        if count >= SAMPLE_ROWS:
            break
    return pa.Table.from_batches(batches, schema=parquet.schema_arrow if name is None else None).slice(
        0, SAMPLE_ROWS
    )


def is_numeric_storage(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_boolean(data_type)


def infer_type(column: pa.ChunkedArray) -> str:
    """numeric | categorical | text | date, from a sample of the stored column."""
    if is_numeric_storage(column.type):
        return "numeric"
    values = pc.drop_null(column)
    if len(values) == 0:
        return "categorical"
    if date_share(values) >= DATE_MIN_SHARE:
        return "date"
    mean_length = pc.mean(pc.utf8_length(values)).as_py()
    if mean_length >= TEXT_MEAN_LENGTH and len(pc.unique(values)) > CATEGORICAL_MAX_SHARE * len(values):
        return "text"
    return "categorical"


def date_share(values: pa.ChunkedArray | pa.Array) -> float:
    """Share of the values that are ISO-like dates or datetimes which pandas parses as real dates."""
    if not pa.types.is_string(values.type) or len(values) == 0:
        return 0.0
    unique = pc.unique(values).to_pylist()
    matching = [v for v in unique if ISO_DATE.match(v.strip())]
    if not matching:
        return 0.0
    parsed = pd.to_datetime(
        pd.Series([v.strip().replace("/", "-") for v in matching]),
        format="ISO8601",
        errors="coerce",
        utc=True,
    )
    valid = {v for v, p in zip(matching, parsed, strict=True) if not pd.isna(p)}
    counts = pc.value_counts(values)
    hits = sum(
        c
        for v, c in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
        if v in valid
    )
    return hits / len(values)


def first_failing(column: pa.ChunkedArray, accepts) -> str | None:
    """An example value (as text) that ``accepts`` refuses, or None: for messages that name one."""
    for value in pc.unique(pc.drop_null(column)).to_pylist():
        if not accepts(value):
            return str(value)
    return None


class _Accumulator:
    """Streaming statistics of one column; ``update`` per batch, then ``result``."""

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        self.missing = 0
        self.exact: set[int] | None = set()
        self.kmv = np.empty(0, dtype=np.uint64)
        self.top: dict | None = {} if kind != "numeric" else None
        self.top_approx = False
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.min: float | str | None = None
        self.max: float | str | None = None

    def update(self, array: pa.Array) -> None:
        present = pc.drop_null(array)
        if pa.types.is_floating(array.type):
            present = present.filter(pc.invert(pc.is_nan(present)))
        self.missing += len(array) - len(present)
        if len(present) == 0:
            return
        self._distinct(pc.unique(present))
        if self.top is not None:
            self._top(present)
        if self.kind == "numeric" and is_numeric_storage(array.type):
            self._moments(_floats(present))
        elif self.kind == "date" and pa.types.is_string(array.type):
            # ISO-like text sorts as time does, so string min/max is the earliest/latest date.
            extremes = pc.min_max(present)
            low, high = extremes["min"].as_py(), extremes["max"].as_py()
            self.min = low if self.min is None else min(self.min, low)
            self.max = high if self.max is None else max(self.max, high)

    def _distinct(self, unique: pa.Array) -> None:
        hashes = pd.util.hash_array(unique.to_numpy(zero_copy_only=False))
        if self.exact is not None:
            self.exact.update(hashes.tolist())
            if len(self.exact) > DISTINCT_CAP:
                self.exact = None
        if len(self.kmv) == KMV_SIZE:  # only hashes below the current K-th smallest can enter
            hashes = hashes[hashes < self.kmv[-1]]
        self.kmv = np.unique(np.concatenate([self.kmv, hashes]))[:KMV_SIZE]

    def _top(self, present: pa.Array) -> None:
        counts = pc.value_counts(present)
        values, numbers = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
        assert self.top is not None
        for value, number in zip(values, numbers, strict=True):
            if value in self.top:
                self.top[value] += number
            elif self.exact is not None:
                self.top[value] = number
            else:
                self.top_approx = True

    def _moments(self, values: np.ndarray) -> None:
        # Chan et al.'s pairwise update: stable where a running sum of squares would not be.
        n, mean, m2 = len(values), float(values.mean()), float(((values - values.mean()) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta**2 * self.count * n / total
        self.count = total
        low, high = float(values.min()), float(values.max())
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)

    def distinct(self) -> tuple[int, bool]:
        if self.exact is not None:
            return len(self.exact), False
        # K-minimum-values: the K-th smallest of uniform 64-bit hashes estimates the count.
        return int((KMV_SIZE - 1) / (float(self.kmv[KMV_SIZE - 1]) / 2.0**64)), True

    def result(self) -> dict:
        distinct, approx = self.distinct()
        stats: dict = {"missing": self.missing, "distinct": distinct, "distinct_approx": approx}
        if self.kind == "numeric":
            std = (self.m2 / (self.count - 1)) ** 0.5 if self.count > 1 else (0.0 if self.count else None)
            stats |= {
                "min": self.min,
                "max": self.max,
                "mean": self.mean if self.count else None,
                "std": std,
            }
        else:
            if self.kind == "date":
                stats |= {"min": self.min, "max": self.max}
            ranked = sorted((self.top or {}).items(), key=lambda item: (-item[1], str(item[0])))
            stats["top"] = [{"value": _json_value(v), "count": c} for v, c in ranked[:TOP_VALUES]]
            stats["top_approx"] = self.top_approx
        return stats


def _floats(array: pa.Array) -> np.ndarray:
    """float64 values, missing as NaN (bool columns count as 0/1)."""
    return pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)


def _json_value(value):
    return value if isinstance(value, str | int | float | bool) else str(value)


def column_statistics(path: Path, types: dict[str, str]) -> dict[str, dict]:
    """Statistics of the named columns (name → type) in one pass, plus one pass for histograms."""
    parquet = pq.ParquetFile(str(path))
    names = list(types)
    accumulators = {name: _Accumulator(name, types[name]) for name in names}
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=names):
        for name in names:
            accumulators[name].update(batch.column(name))
    results = {name: acc.result() for name, acc in accumulators.items()}
    numeric = [
        n
        for n in names
        if types[n] == "numeric"
        and results[n]["min"] is not None
        and is_numeric_storage(parquet.schema_arrow.field(n).type)
    ]
    for name, histogram in _histograms(parquet, numeric, results).items():
        results[name]["histogram"] = histogram
    return results


def _histograms(parquet: pq.ParquetFile, names: list[str], results: dict[str, dict]) -> dict[str, dict]:
    if not names:
        return {}
    edges = {}
    for name in names:
        low, high = results[name]["min"], results[name]["max"]
        edges[name] = np.linspace(low, high, HISTOGRAM_BINS + 1) if high > low else np.array([low, low + 1.0])
    counts = {name: np.zeros(len(edges[name]) - 1, dtype=np.int64) for name in names}
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=names):
        for name in names:
            values = _floats(batch.column(name))
            values = values[~np.isnan(values)]
            counts[name] += np.histogram(values, bins=edges[name])[0]
    return {
        name: {"edges": [float(e) for e in edges[name]], "counts": [int(c) for c in counts[name]]}
        for name in names
    }


def describe_columns(path: Path) -> list[dict]:
    """The ``Dataset.columns`` entries of a freshly converted file: inferred types and statistics."""
    head = sample(path)
    types = {name: infer_type(head.column(name)) for name in head.column_names}
    stats = column_statistics(path, types)
    return [
        {"name": name, "type": kind, "inferred_type": kind, **stats[name]} for name, kind in types.items()
    ]
