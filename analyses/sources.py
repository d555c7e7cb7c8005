"""What an upload was, as sniffing found it: kept as ``Dataset.source`` and shown as one line.

The stored shapes (JSON):

- CSV: ``{"format": "csv", "compression": "gzip" | None, "encoding", "bom", "delimiter", "quotechar"}``
- Parquet: ``{"format": "parquet"}``
- zip of images: ``{"format": "zip", "images": <count>, "layout": "class_folders"}``, or
  ``{"format": "zip", "images": <count>, "layout": "index", "index": <path in the zip>,
  "index_source": <the CSV shape above>}``
- ``{}`` for datasets uploaded before the source was kept.
"""

from __future__ import annotations

import codecs
import gzip
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analyses.ingest import Source

ENCODING_NAMES = {"utf-8": "UTF-8", "cp1252": "Latin-1 (Windows-1252)", "latin-1": "Latin-1"}
DELIMITER_NAMES = {"\t": "tab"}


def describe(source: Source, path: Path) -> dict[str, Any]:
    """The JSON kept on the dataset: ingest's own description, plus whether a UTF-8 BOM opened the text.

    ``path`` is the upload as ingest read it (still compressed when it was).
    """
    described = source.describe()
    if described["format"] == "csv":
        # Ingest reads past a BOM without recording it; users ask about it, so look at the first bytes.
        described["bom"] = source.encoding == "utf-8" and _starts_with_bom(path, source.compression)
    return described


def summary(source: dict[str, Any] | None) -> str:
    """One human line, e.g. "CSV · UTF-8 (BOM) · delimiter ';' · gzip"; "" when nothing was kept."""
    kind = (source or {}).get("format")
    if kind == "csv":
        return " · ".join(_csv_parts(source))
    if kind == "parquet":
        return "Parquet"
    if kind == "zip":
        return _zip_summary(source)
    return ""


def _starts_with_bom(path: Path, compression: str | None) -> bool:
    opener = gzip.open if compression == "gzip" else open
    try:
        with opener(path, "rb") as handle:
            return handle.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8
    except (OSError, EOFError, zlib.error):  # ingest refuses such files before we get here
        return False


def _csv_parts(source: dict[str, Any]) -> list[str]:
    encoding = ENCODING_NAMES.get(source.get("encoding", ""), source.get("encoding") or "unknown encoding")
    if source.get("bom"):
        encoding += " (BOM)"
    delimiter = source.get("delimiter", ",")
    parts = ["CSV", encoding, f"delimiter {DELIMITER_NAMES.get(delimiter, repr(delimiter))}"]
    if source.get("quotechar", '"') != '"':
        parts.append(f"quote {source['quotechar']!r}")
    if source.get("compression"):
        parts.append(source["compression"])
    return parts


def _zip_summary(source: dict[str, Any]) -> str:
    count = source.get("images")
    head = f"ZIP of {count} image{'' if count == 1 else 's'}" if count is not None else "ZIP of images"
    if source.get("layout") == "class_folders":
        return f"{head} · one folder per class"
    index = source.get("index_source") or {}
    details = f" ({' · '.join(_csv_parts(index))})" if index.get("format") == "csv" else ""
    return f"{head} · index {source.get('index', '')}{details}"
