"""Column types and per-column statistics of a dataset's canonical Parquet file, read as a stream.

``StreamedStatistics`` takes the file a table at a time: from the tables being written while an
upload is converted (analyses.ingest), or from the file itself (``column_statistics``).
Types come from a sample (the first ``SAMPLE_ROWS`` rows); statistics are exact over every row,
except ``distinct`` past ``DISTINCT_CAP`` values (then a K-minimum-values estimate, flagged
``distinct_approx``) and the ``top`` counts of such a column (flagged ``top_approx``: past the cap,
only values already seen keep being counted; frequent values show up early).
"""

from __future__ import annotations

import math
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


def open_parquet(path: Path) -> pq.ParquetFile:
    """A Parquet file to stream: without ``pre_buffer=False`` Arrow keeps every column chunk that
    ``iter_batches`` has read until the iteration ends, so memory grows with the file (2.1 GB for
    the statistics of a 1 GB CSV)."""
    return pq.ParquetFile(str(path), pre_buffer=False)


def sample(path: Path, name: str | None = None) -> pa.Table:
    """The first SAMPLE_ROWS rows (of one column, when named): type decisions are made on these."""
    parquet = open_parquet(path)
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
    """Streaming statistics of one column; ``update`` per batch, then ``result``.

    Distinct values are kept with their counts as arrays while there are at most DISTINCT_CAP of
    them: merging a batch is one ``value_counts`` and one ``index_in``, no Python object per value,
    and a numeric column's histogram comes from them without reading the file again. Past the cap,
    a K-minimum-values sketch of their hashes takes over, seeded with every value seen so far.
    """

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        self.missing = 0
        self.wants_top = kind != "numeric"  # top values, for non-numeric columns only
        self.seen: pa.Array | None = None  # the distinct values so far (frozen past the cap)
        self.counts = np.empty(0, dtype=np.int64)  # occurrences of each seen value
        self.exact = True
        self.kmv = np.empty(0, dtype=np.uint64)
        self.top_approx = False
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.min: float | str | None = None
        self.max: float | str | None = None

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        present = pc.drop_null(array)
        if pa.types.is_floating(array.type):
            # -0.0 + 0.0 is 0.0: one zero among the distinct values, as pandas counts them.
            present = pc.add(present.filter(pc.invert(pc.is_nan(present))), 0.0)
        self.missing += len(array) - len(present)
        if len(present) == 0:
            return
        if self.exact or self.wants_top:
            counted = pc.value_counts(present)
            self._distinct(counted.field("values"), counted.field("counts").to_numpy())
        elif is_numeric_storage(present.type):
            # Past the cap, with no counts to keep: hashing every number (repeats hash alike) is
            # cheaper than finding the distinct ones first.
            self._sketch(present)
        else:
            self._sketch(pc.unique(present))
        if self.kind == "numeric" and is_numeric_storage(array.type):
            self._moments(_floats(present))
        elif self.kind == "date" and pa.types.is_string(array.type):
            # ISO-like text sorts as time does, so string min/max is the earliest/latest date.
            extremes = pc.min_max(present)
            low, high = extremes["min"].as_py(), extremes["max"].as_py()
            self.min = low if self.min is None else min(self.min, low)
            self.max = high if self.max is None else max(self.max, high)

    def _distinct(self, values: pa.Array, counts: np.ndarray) -> None:
        """Merge a batch's distinct ``values`` and how often each occurs into those seen."""
        if self.seen is None:
            self.seen = values.slice(0, 0)
        position = pc.index_in(values, value_set=self.seen)
        known = position.is_valid().to_numpy(zero_copy_only=False)
        if known.any():
            self.counts[pc.drop_null(position).to_numpy()] += counts[known]
        if known.all():
            return
        new = values.filter(pa.array(~known))
        if not self.exact:  # past the cap only values already seen are counted; they are in the sketch
            self.top_approx = self.wants_top
            self._sketch(new)
            return
        if len(self.seen) + len(new) > DISTINCT_CAP:
            self.exact = False
            self.top_approx = self.wants_top
            self._sketch(self.seen)
            self._sketch(new)
            return
        self.seen = pa.concat_arrays([self.seen, new])
        self.counts = np.concatenate([self.counts, counts[~known]])

    def _sketch(self, values: pa.Array | pa.ChunkedArray) -> None:
        """Add the hashes of ``values`` (text: distinct ones; numbers may repeat) to the sketch."""
        # categorize=False: the hashes are the same either way, and text arrives distinct already.
        hashes = pd.util.hash_array(values.to_numpy(zero_copy_only=False), categorize=False)
        if len(self.kmv) == KMV_SIZE:  # only hashes below the current K-th smallest can enter
            hashes = hashes[hashes < self.kmv[-1]]
        self.kmv = np.unique(np.concatenate([self.kmv, hashes]))[:KMV_SIZE]

    def _moments(self, values: np.ndarray) -> None:
        # Infinities ("inf", 1e400) are kept in the file but left out of min, max, mean and std.
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return
        # Chan et al.'s pairwise update: stable where a running sum of squares would not be.
        with np.errstate(over="ignore", invalid="ignore"):  # near 1e308: inf, reported as None
            n, mean = len(values), float(values.mean())
            m2 = float(np.square(values - mean).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total  # not delta**2: that raises past 1e154
        self.count = total
        low, high = float(values.min()), float(values.max())
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)

    def value_counts(self) -> tuple[pa.Array, np.ndarray] | None:
        """Every distinct value and its count, while all are known (at most DISTINCT_CAP of them)."""
        return (self.seen, self.counts) if self.exact and self.seen is not None else None

    def distinct(self) -> tuple[int, bool]:
        if self.exact:
            return (0 if self.seen is None else len(self.seen)), False
        # K-minimum-values: the K-th smallest of uniform 64-bit hashes estimates the count.
        return int((KMV_SIZE - 1) / (float(self.kmv[KMV_SIZE - 1]) / 2.0**64)), True

    def top(self) -> list[dict]:
        """The TOP_VALUES most frequent values, ties by their text; no Python object for the others."""
        if self.seen is None:
            return []
        chosen = np.arange(len(self.counts))
        if len(chosen) > TOP_VALUES:
            threshold = np.partition(self.counts, -TOP_VALUES)[-TOP_VALUES]
            chosen = np.flatnonzero(self.counts >= threshold)
        values = self.seen.take(pa.array(chosen)).to_pylist()
        ranked = sorted(
            zip(values, self.counts[chosen].tolist(), strict=True), key=lambda i: (-i[1], str(i[0]))
        )
        return [{"value": _json_value(v), "count": c} for v, c in ranked[:TOP_VALUES]]

    def result(self) -> dict:
        distinct, approx = self.distinct()
        stats: dict = {"missing": self.missing, "distinct": distinct, "distinct_approx": approx}
        if self.kind == "numeric":
            std = (self.m2 / (self.count - 1)) ** 0.5 if self.count > 1 else (0.0 if self.count else None)
            # None for what overflowed (numbers near 1e308): JSON (and the database) has no infinity.
            stats |= {
                "min": _finite(self.min),
                "max": _finite(self.max),
                "mean": _finite(self.mean) if self.count else None,
                "std": _finite(std),
            }
        else:
            if self.kind == "date":
                stats |= {"min": self.min, "max": self.max}
            stats["top"] = self.top()
            stats["top_approx"] = self.top_approx
        return stats


def _floats(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """float64 values, missing as NaN (bool columns count as 0/1); integers past 2**53 rounded
    (a safe cast refuses them: nanosecond times, long ids)."""
    return pc.cast(array, pa.float64(), safe=False).to_numpy(zero_copy_only=False)


def _json_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf": JSON has no infinity
    return value if isinstance(value, str | int | float | bool) else str(value)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class StreamedStatistics:
    """Statistics of columns (name → type) fed a table or batch at a time, as the file is written.

    Everything but the histograms comes from ``update``. A histogram's bins need the exact min and
    max first: a column whose distinct values are all known has its histogram from their counts,
    and ``result`` reads the other numeric columns of the written file once more.
    """

    def __init__(self, types: dict[str, str]) -> None:
        self.types = types
        self._accumulators = {name: _Accumulator(name, kind) for name, kind in types.items()}

    def update(self, table: pa.Table | pa.RecordBatch) -> None:
        for name, accumulator in self._accumulators.items():
            accumulator.update(table.column(name))

    def result(self, path: Path) -> dict[str, dict]:
        parquet = open_parquet(path)
        results = {name: accumulator.result() for name, accumulator in self._accumulators.items()}
        numeric = [
            name
            for name, kind in self.types.items()
            if kind == "numeric"
            and results[name]["min"] is not None
            and results[name]["max"] is not None
            and is_numeric_storage(parquet.schema_arrow.field(name).type)
        ]
        bins = {name: _bins(results[name]["min"], results[name]["max"]) for name in numeric}
        numeric = [name for name in numeric if bins[name] is not None]  # no histogram numpy could draw
        known = {name: self._accumulators[name].value_counts() for name in numeric}
        counted = {name: _counted_histogram(*known[name], bins[name]) for name in numeric if known[name]}
        read = _read_histograms(parquet, {name: bins[name] for name in numeric if name not in counted})
        for name, counts in (counted | read).items():
            results[name]["histogram"] = _histogram(bins[name], counts)
        return results


def column_statistics(path: Path, types: dict[str, str]) -> dict[str, dict]:
    """Statistics of the named columns (name → type) in one pass, plus one pass for histograms."""
    statistics = StreamedStatistics(types)
    for batch in open_parquet(path).iter_batches(batch_size=BATCH_ROWS, columns=list(types)):
        statistics.update(batch)
    return statistics.result(path)


Bins = tuple[int, tuple[float, float]]  # equal-width bins: how many, over which range


def _bins(low: float, high: float) -> Bins | None:
    """HISTOGRAM_BINS over [low, high] (one bin for a single value); fewer where the numbers are too
    close for that many distinct edges (1e17 and 1e17 + 16), None where the span overflows (±1e308):
    numpy refuses bins that would not have distinct, finite edges."""
    if high <= low:
        high = low + 1.0 if low + 1.0 > low else float(np.nextafter(low, math.inf))  # 1e17 + 1 is 1e17
        number = 1
    else:
        number = HISTOGRAM_BINS
    if not math.isfinite(high - low):
        return None
    while number >= 1:
        if np.all(np.diff(np.linspace(low, high, number + 1)) > 0):
            return number, (low, high)
        number -= 1
    return None


def _counted_histogram(values: pa.Array, counts: np.ndarray, bins: Bins) -> np.ndarray:
    """Bin counts from each distinct value's count: the same as binning every value."""
    number, value_range = bins
    weighted = np.histogram(_floats(values), bins=number, range=value_range, weights=counts)[0]
    return np.rint(weighted).astype(np.int64)  # float sums of whole counts: exact below 2**53


def _read_histograms(parquet: pq.ParquetFile, bins: dict[str, Bins]) -> dict[str, np.ndarray]:
    if not bins:
        return {}
    counts = {name: np.zeros(number, dtype=np.int64) for name, (number, _) in bins.items()}
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=list(bins)):
        for name, (number, value_range) in bins.items():
            values = _floats(batch.column(name))
            # Equal-width bins given as a count and range: numpy computes each bin without a search.
            counts[name] += np.histogram(values[~np.isnan(values)], bins=number, range=value_range)[0]
    return counts


def _histogram(bins: Bins, counts: np.ndarray) -> dict:
    number, (low, high) = bins
    edges = np.linspace(low, high, number + 1)  # as np.histogram places them
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def column_types(head: pa.Table) -> dict[str, str]:
    """Each column's inferred type, from the first SAMPLE_ROWS rows of the stored file."""
    return {name: infer_type(head.column(name)) for name in head.column_names}


def describe(types: dict[str, str], statistics: dict[str, dict]) -> list[dict]:
    """The ``Dataset.columns`` entries: inferred types (as the current types) and statistics."""
    return [
        {"name": name, "type": kind, "inferred_type": kind, **statistics[name]}
        for name, kind in types.items()
    ]


def describe_columns(path: Path) -> list[dict]:
    """The ``Dataset.columns`` entries of a freshly converted file: inferred types and statistics."""
    types = column_types(sample(path))
    return describe(types, column_statistics(path, types))
