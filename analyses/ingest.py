"""Turning an upload (CSV, gzipped CSV or Parquet) into the dataset's canonical Parquet file.

The upload is read once, as a stream: ``pyarrow.csv.open_csv`` parses blocks of ``BLOCK_BYTES``
on a thread of their own, a few ahead; they are gathered into row groups of ``ROW_GROUP_ROWS`` rows,
converted to their storage types, written with a ``ParquetWriter`` and fed to the column statistics
on the way (``Converted.columns``), so a 1 GB CSV never sits whole in the web process's memory and
the file is not read again to describe it. Everything downstream (preview, target reads, the
runner) reads the Parquet file.

Canonical storage types: numeric columns are int64, float64 or bool; everything else (categorical,
text and date columns) is stored as strings, exactly as written in the upload, so that overriding a
column's type never needs the file to be rewritten and the runner keeps reading labels as text.

Storage types are decided from the first ``SAMPLE_ROWS`` rows. A later value that does not fit
(``"1.5"`` in a column of integers, ``"n/a?"`` in a column of numbers) widens that column
(int64 → float64 → string) and the conversion starts again: rare, and still bounded in memory.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import itertools
import queue
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from analyses import statistics

SNIFF_BYTES = 64 * 1024
# Arrow's streaming CSV reader keeps a few dozen blocks in flight: small blocks bound the memory
# of a conversion; a row longer than a block restarts it with blocks 8 times larger, up to the max.
BLOCK_BYTES = 1024 * 1024
MAX_BLOCK_BYTES = 8 * 1024 * 1024
PREFETCH_BATCHES = 4
# Parquet dictionary encoding for a column whose sample has at most this share of distinct values.
DICTIONARY_MAX_SHARE = 0.5
SAMPLE_ROWS = 50_000
PREFIX_VALUES = 1000
ROW_GROUP_ROWS = 128 * 1024
DELIMITERS = (",", ";", "\t", "|")
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
# More control characters than this (share of the sample) is not text, whatever its encoding.
MAX_CONTROL_SHARE = 0.01
WIDER = {"int64": "float64", "float64": "string", "bool": "string"}
STORAGE_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(), "string": pa.string()}


class DatasetError(ValueError):
    """The upload cannot become a dataset; the message says why in the user's terms."""


@dataclass
class Source:
    """What sniffing found out about an upload."""

    filename: str
    format: str  # "csv" | "parquet"
    compression: str | None = None  # "gzip" | None
    encoding: str = "utf-8"
    delimiter: str = ","
    quotechar: str = '"'
    header: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        if self.format == "parquet":
            return {"format": "parquet"}
        return {
            "format": "csv",
            "compression": self.compression,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "quotechar": self.quotechar,
        }


@dataclass
class Converted:
    rows: int
    source: Source
    storage_types: dict[str, str]
    columns: list[dict]  # the ``Dataset.columns`` entries: inferred types and statistics


class _Widen(Exception):
    def __init__(self, column: str, to: str) -> None:
        self.column, self.to = column, to


class _LongRow(Exception):
    """A row longer than the block size: Arrow cannot parse it, a larger block can."""

    def __init__(self, error: Exception) -> None:
        self.error = error


# ---------------------------------------------------------------- sniffing


def sniff(path: Path, filename: str) -> Source:
    """Format, compression, encoding, delimiter, quoting and header of an upload, from its first bytes."""
    with open(path, "rb") as handle:
        raw = handle.read(SNIFF_BYTES)
    if raw.startswith(PARQUET_MAGIC):
        return Source(filename, "parquet")
    if filename.lower().endswith((".parquet", ".pq")):
        raise DatasetError(
            f"{filename} is not a Parquet file (it does not start with the Parquet marker PAR1)."
        )
    compression = None
    if raw.startswith(GZIP_MAGIC):
        compression = "gzip"
        try:
            with gzip.open(path, "rb") as handle:
                raw = handle.read(SNIFF_BYTES)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{filename} is a corrupt gzip file ({exc}). Compress it again.") from None
    elif filename.lower().endswith(".gz"):
        raise DatasetError(f"{filename} is not a gzip file (it does not start with the gzip marker).")
    if not raw.strip():
        raise DatasetError(f"{filename} is empty: upload a CSV file with a header row and at least one row.")
    encoding = _encoding(raw, filename)
    text = raw.decode(encoding, errors="ignore")  # a sample may end inside a character
    if text.startswith("\ufeff"):
        text = text[1:]
    text = _complete_lines(text, whole_file=len(raw) < SNIFF_BYTES)
    delimiter = _delimiter(text)
    quotechar = _quotechar(text, delimiter)
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar), [])
    except csv.Error as exc:  # e.g. a field past the csv module's size limit
        raise DatasetError(f"{filename}: the header row cannot be read as CSV ({exc}).") from None
    _check_header(header, filename)
    return Source(filename, "csv", compression, encoding, delimiter, quotechar, header)


def _encoding(raw: bytes, filename: str) -> str:
    """UTF-8 (with or without BOM) when the sample decodes as such, else Latin-1 if it looks like text."""
    not_text = DatasetError(
        f"{filename} is not a CSV file (it contains binary data). Upload a comma-separated text file."
    )
    if b"\x00" in raw:
        raise not_text
    controls = sum(raw.count(bytes([b])) for b in (*range(0, 9), 11, 12, *range(14, 32), 127))
    if controls > MAX_CONTROL_SHARE * len(raw):
        raise not_text
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    # Windows-1252 is what "Latin-1" files usually are (€, curly quotes); it leaves 5 bytes undefined.
    try:
        raw.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _complete_lines(text: str, whole_file: bool) -> str:
    if whole_file or "\n" not in text:
        return text
    return text[: text.rfind("\n") + 1]


def _delimiter(text: str) -> str:
    """The candidate that splits the header into most fields and every sample row into as many."""
    best, best_score = ",", (0.0, 1)
    for candidate in DELIMITERS:
        try:  # newline="": a lone \r ends a line, as it does for Arrow's parser
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=candidate)
            records = [r for r in itertools.islice(reader, 200) if r]
        except csv.Error:  # not this delimiter's CSV (a field past the csv module's size limit)
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        consistent = sum(len(r) == width for r in records) / len(records)
        score = (consistent, width)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _quotechar(text: str, delimiter: str) -> str:
    """``'`` only when the sample quotes more fields with it than with ``"``; else ``"``.

    An apostrophe inside a value (O'Brien) or opening one ('t Hooft) is not quoting: taking it for
    a quote character would run the value on into the next fields and lines.
    """
    if _quoted_fields(text, delimiter, "'") > _quoted_fields(text, delimiter, '"'):
        return "'"
    return '"'


def _quoted_fields(text: str, delimiter: str, quote: str) -> int:
    """Fields the quote opens (after a delimiter or at a line start) and closes (before a delimiter or
    at a line end), holding no delimiter, line break or lone quote (a doubled quote is a quote)."""
    d, q = re.escape(delimiter), re.escape(quote)
    field = rf"(?:^|(?<={d})){q}(?:[^{q}{d}\r\n]|{q}{q})*{q}(?={d}|\r?$)"
    return len(re.findall(field, text, flags=re.MULTILINE))


def _check_header(names: list[str], filename: str) -> None:
    stripped = [n.strip() for n in names]
    if any(not n for n in stripped):
        position = stripped.index("") + 1
        raise DatasetError(f"{filename}: column {position} of the header row has no name. Name every column.")
    duplicates = sorted({n for n in stripped if stripped.count(n) > 1})
    if duplicates:
        raise DatasetError(
            f"{filename}: the header repeats column name(s) {', '.join(duplicates)}. Names must be unique."
        )


# ---------------------------------------------------------------- conversion


def convert(path: Path, filename: str, target: Path) -> Converted:
    """Write the upload at ``path`` as Parquet at ``target``; raises DatasetError naming the problem."""
    source = sniff(path, filename)
    forced: dict[str, str] = {}
    block_bytes = BLOCK_BYTES
    while True:  # at most one restart per column and widening step, and per block size
        try:
            if source.format == "parquet":
                rows, types = _convert_parquet(path, filename, target)
                columns = statistics.describe_columns(target)
            else:
                rows, types, columns = _convert_csv(path, source, target, forced, block_bytes)
            break
        except _Widen as widen:
            forced[widen.column] = widen.to
        except _LongRow as long_row:
            if block_bytes >= MAX_BLOCK_BYTES:
                raise _explain(long_row.error, path, source) from None
            block_bytes = min(block_bytes * 8, MAX_BLOCK_BYTES)
    if rows == 0:
        raise DatasetError(f"{filename} has a header but no rows.")
    return Converted(rows, source, types, columns)


def _open_csv(path: Path, source: Source, block_bytes: int) -> pacsv.CSVStreamingReader:
    stream = pa.input_stream(str(path), compression=source.compression)
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(
            block_size=block_bytes,
            encoding=source.encoding,
            column_names=source.header,
            skip_rows=1,
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=source.delimiter, quote_char=source.quotechar, newlines_in_values=True
        ),
        # Everything as text first: the storage types come from a sample, not from Arrow's first block.
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(source.header, pa.string()),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


def _convert_csv(
    path: Path, source: Source, target: Path, forced: dict[str, str], block_bytes: int
) -> tuple[int, dict[str, str], list[dict]]:
    reader = _read_or_explain(lambda: _open_csv(path, source, block_bytes), path, source)
    with _Prefetched(lambda: _read_or_explain(reader.read_next_batch, path, source)) as batches:
        sample = _first_rows(batches, SAMPLE_ROWS)
        head = pa.Table.from_batches(sample, schema=reader.schema).slice(0, SAMPLE_ROWS)
        types = {name: forced.get(name) or storage_type(head.column(name)) for name in source.header}
        return _write(itertools.chain(sample, batches), head, types, target)


def _write(
    batches: Iterable[pa.RecordBatch], head: pa.Table, types: dict[str, str], target: Path
) -> tuple[int, dict[str, str], list[dict]]:
    """The text batches in row groups of their storage types, described on the way: column types and
    statistics come from the tables being written, not from reading the file again."""
    schema = pa.schema([(name, STORAGE_TYPES[kind]) for name, kind in types.items()])
    kinds = statistics.column_types(_stored(head, types, schema))
    streamed = statistics.StreamedStatistics(kinds)
    rows = 0
    with (
        pq.ParquetWriter(str(target), schema, use_dictionary=_dictionary_columns(head)) as writer,
        _Behind(writer.write_table) as write,
    ):
        for group in _row_groups(batches, ROW_GROUP_ROWS):
            stored = _stored(group, types, schema)
            write(stored, row_group_size=ROW_GROUP_ROWS)
            streamed.update(stored)
            rows += len(group)
    return rows, types, statistics.describe(kinds, streamed.result(target))


def _stored(table: pa.Table, types: dict[str, str], schema: pa.Schema) -> pa.Table:
    """The text columns of ``table`` in their storage types (raises _Widen for a value that does not fit)."""
    return pa.table(
        [_to_storage(table.column(name), name, types[name]) for name in schema.names], schema=schema
    )


def _first_rows(batches: Iterator[pa.RecordBatch], count: int) -> list[pa.RecordBatch]:
    taken: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        taken.append(batch)
        rows += len(batch)
        if rows >= count:
            break
    return taken


def _row_groups(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Tables of exactly ``size`` rows (the last one shorter), from batches of any length: blocks are
    small to bound memory, row groups are large so that reading the Parquet file back is fast."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += len(batch)
        while rows >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size)
            rest = table.slice(size)
            pending, rows = rest.to_batches(), len(rest)
    if rows:
        yield pa.Table.from_batches(pending)


def _dictionary_columns(head: pa.Table) -> list[str]:
    """Columns worth Parquet's dictionary encoding: those repeating values in the sample.

    Dictionary-encoding a column of mostly distinct values (measurements, identifiers) is wasted
    work: Parquet falls back to plain encoding after filling the dictionary page, and that attempt
    was the costliest part of writing the file.
    """
    chosen = []
    for name in head.column_names:
        values = pc.drop_null(head.column(name))
        if len(pc.unique(values)) <= DICTIONARY_MAX_SHARE * len(values):
            chosen.append(name)
    return chosen


class _Behind:
    """Runs ``call`` on a thread of its own, one call at a time and in order, while the caller goes on.

    Writing a row group (Arrow encodes and compresses without the GIL) then overlaps with the
    statistics of that row group; at most one call is outstanding, so memory stays bounded. An
    error in a call is raised by the next call, or on leaving.
    """

    def __init__(self, call: Callable[..., object]) -> None:
        self._call = call
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-write")
        self._pending: Future | None = None

    def __enter__(self) -> Callable[..., None]:
        return self._submit

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            if self._pending is not None and exc_type is None:
                self._pending.result()
        finally:
            self._pool.shutdown(wait=True)

    def _submit(self, *args, **kwargs) -> None:
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._call, *args, **kwargs)


class _Prefetched:
    """Batches parsed on a thread of their own, a few ahead of the one being converted and written.

    Arrow releases the GIL while parsing and while writing Parquet, so both cores are busy; the
    queue bounds how many parsed batches wait in memory.
    """

    _END = object()

    def __init__(self, read: Callable[[], pa.RecordBatch], depth: int = PREFETCH_BATCHES) -> None:
        self._read = read
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="csv-prefetch", daemon=True)

    def __enter__(self) -> Iterator[pa.RecordBatch]:
        self._thread.start()
        return self._consume()

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def _produce(self) -> None:
        item: object = None
        while item is not self._END and not isinstance(item, BaseException):
            try:
                item = self._read()
            except StopIteration:
                item = self._END
            except BaseException as exc:  # handed over: raised where the batches are consumed
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set():
                return

    def _consume(self) -> Iterator[pa.RecordBatch]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def _read_or_explain(read, path: Path, source: Source):
    """Arrow's parse errors carry no line number: find the offending line ourselves (error path only)."""
    try:
        return read()
    except StopIteration:
        raise
    except pa.ArrowInvalid as exc:
        if "straddl" in str(exc):  # a row longer than a block: try again with larger blocks
            raise _LongRow(exc) from None
        raise _explain(exc, path, source) from None
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as exc:
        raise _explain(exc, path, source) from None


def _explain(exc: Exception, path: Path, source: Source) -> DatasetError:
    filename, message = source.filename, str(exc)
    if source.compression == "gzip" and not isinstance(exc, pa.ArrowInvalid | UnicodeDecodeError):
        return DatasetError(f"{filename} is a corrupt gzip file ({message}). Compress it again.")
    if "Expected" in message and "columns" in message:
        where = _first_ragged_line(path, source)
        if where is not None:
            line, found = where
            return DatasetError(
                f"{filename}: line {line} has {found} field(s) but the header has {len(source.header)} "
                f"(delimiter {source.delimiter!r}). Fix that line, or quote values holding the delimiter."
            )
    if "UTF8" in message or isinstance(exc, UnicodeDecodeError):
        return DatasetError(
            f"{filename} is not valid {source.encoding} text further into the file ({message}). "
            "Save it as UTF-8 and upload it again."
        )
    return DatasetError(f"{filename} could not be read as CSV: {message}")


def _first_ragged_line(path: Path, source: Source) -> tuple[int, int] | None:
    opener = gzip.open if source.compression == "gzip" else open
    with opener(path, "rt", encoding=source.encoding, errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=source.delimiter, quotechar=source.quotechar)
        try:
            width = len(next(reader, []))
            for record in reader:
                if record and len(record) != width:
                    return reader.line_num, len(record)
        except csv.Error:  # the caller falls back to Arrow's own message
            return None
    return None


def storage_type(column: pa.ChunkedArray) -> str:
    """int64, float64 or bool when every non-missing value parses as one, else string."""
    values = pc.drop_null(column)
    if len(values) == 0:
        return "float64"  # as pandas reads an empty column: numeric, all missing
    for kind in ("int64", "float64"):
        try:
            # A failing cast scans everything before raising: try a prefix first, it usually decides.
            pc.cast(values.slice(0, PREFIX_VALUES), STORAGE_TYPES[kind])
            pc.cast(values, STORAGE_TYPES[kind])
            return kind
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    if pc.all(pc.is_in(pc.utf8_lower(values), pa.array(["true", "false"]))).as_py():
        return "bool"
    return "string"


def _to_storage(array: pa.Array, name: str, kind: str) -> pa.Array:
    if kind == "string":
        return array
    try:
        if kind == "bool":
            lowered = pc.utf8_lower(array)
            if not pc.all(pc.is_in(pc.drop_null(lowered), pa.array(["true", "false"]))).as_py():
                raise pa.ArrowInvalid("not a boolean")
            return pc.equal(lowered, "true")
        return pc.cast(array, STORAGE_TYPES[kind])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _Widen(name, WIDER[kind]) from None


# ---------------------------------------------------------------- Parquet uploads


def _convert_parquet(path: Path, filename: str, target: Path) -> tuple[int, dict[str, str]]:
    try:
        parquet = statistics.open_parquet(path)  # streamed: memory does not grow with the file
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"{filename} is not a valid Parquet file ({exc}).") from None
    _check_header(parquet.schema_arrow.names, filename)
    types = {f.name: _parquet_storage_type(f, filename) for f in parquet.schema_arrow}
    schema = pa.schema([(name, STORAGE_TYPES[kind]) for name, kind in types.items()])
    rows = 0
    with pq.ParquetWriter(str(target), schema) as writer:
        try:
            for batch in parquet.iter_batches(batch_size=ROW_GROUP_ROWS):
                columns = [_parquet_column(batch.column(i), types[n]) for i, n in enumerate(schema.names)]
                writer.write_batch(pa.record_batch(columns, schema=schema), row_group_size=ROW_GROUP_ROWS)
                rows += len(batch)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetError(f"{filename} is a damaged Parquet file ({exc}).") from None
    return rows, types


def _parquet_storage_type(f: pa.Field, filename: str) -> str:
    t = f.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int64"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float64"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_temporal(t):
        return "string"  # dates and times keep their ISO text, as a CSV would hold them
    raise DatasetError(
        f"{filename}: column {f.name!r} has the Parquet type {f.type}, which a dataset column cannot hold. "
        "Use numbers, text or dates (flatten lists and structs, decode binary)."
    )


def _parquet_column(array: pa.Array, kind: str) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if kind == "string" and pa.types.is_temporal(array.type):
        return pc.cast(array, pa.string())
    return pc.cast(array, STORAGE_TYPES[kind])
