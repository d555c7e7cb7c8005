"""Image datasets: a zip of images with a CSV index, or a zip of one folder per class.

``extract`` validates the archive as a whole before anything is kept: entries that would land
outside the dataset's folder (zip slip: ``..`` or absolute paths), files that are not images
(by their first bytes, then decoded headers checked with Pillow), an index naming images the zip lacks, and
archives that would expand past ``max_bytes`` (zip bombs: both the sizes the zip declares and the
bytes actually written are counted). Images are extracted into ``images_dir``, keeping their paths
relative to the index CSV's folder (or to the zip's root for class folders); the index becomes the
dataset's canonical Parquet file, with its image column(s) holding those relative paths.

``unknown_images`` is the one check that a column names image files: at upload against the zip's
images, and when an editor overrides a column's type to ``image`` against the dataset's folder.
"""

from __future__ import annotations

import lzma
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyses import ingest, sources
from analyses.ingest import DatasetError

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
INDEX_SUFFIXES = (".csv", ".tsv")
IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)
CHUNK_BYTES = 1024 * 1024
# Operating systems' own files that archivers add; not the user's data.
IGNORED = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$|Thumbs\.db$|desktop\.ini$)")
# What reading a damaged, encrypted or exotic entry raises (a corrupt deflate stream is a zlib.error,
# an encrypted entry a RuntimeError, a local header's name flagged UTF-8 that is not a
# UnicodeDecodeError): each becomes a DatasetError naming the entry, never a 500.
ENTRY_ERRORS = (
    zipfile.BadZipFile,
    UnicodeDecodeError,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
)
# File names quoted in the message refusing a type override to image.
MISSING_EXAMPLES = 3


@dataclass
class Extracted:
    rows: int
    image_columns: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)  # Dataset.source, see analyses.sources


def is_zip(path: Path, filename: str) -> bool:
    with open(path, "rb") as handle:
        start = handle.read(4)
    return start in (ZIP_MAGIC, EMPTY_ZIP_MAGIC) or filename.lower().endswith(".zip")


def is_image(head: bytes) -> bool:
    return head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def extract(path: Path, filename: str, images_dir: Path, target: Path, max_bytes: int) -> Extracted:
    """Images into ``images_dir`` (created), the index as Parquet at ``target``; DatasetError if bad."""
    try:
        archive = zipfile.ZipFile(path)
    except (*ENTRY_ERRORS, ValueError) as exc:  # whatever a malformed directory makes zipfile raise
        raise DatasetError(f"{filename} is not a valid zip file ({exc}).") from None
    with archive:
        entries = [info for info in archive.infolist() if not IGNORED.search(info.filename)]
        for info in entries:
            _check_name(info.filename, filename)
        files = [info for info in entries if not info.is_dir()]
        if not files:
            raise DatasetError(
                f"{filename} is empty: put images in it, with a CSV index or in one folder per class."
            )
        declared = sum(info.file_size for info in files)
        if declared > max_bytes:
            raise DatasetError(_too_big(filename, declared, max_bytes))
        indexes = [info for info in files if info.filename.lower().endswith(INDEX_SUFFIXES)]
        if len(indexes) > 1:
            names = ", ".join(info.filename for info in indexes)
            raise DatasetError(f"{filename} holds several CSV files ({names}); keep only the index.")
        index = indexes[0] if indexes else None
        base = PurePosixPath(index.filename).parent if index else PurePosixPath(".")
        images: dict[str, zipfile.ZipInfo] = {}
        for info in files:
            if info is index:
                continue
            name = PurePosixPath(info.filename)
            if not info.filename.lower().endswith(IMAGE_SUFFIXES):
                raise DatasetError(
                    f"{filename}: {info.filename} is not an image (images end in "
                    f"{', '.join(IMAGE_SUFFIXES)}); remove it from the zip."
                )
            if base != PurePosixPath(".") and base not in name.parents:
                raise DatasetError(
                    f"{filename}: image {info.filename} is outside the folder of the index {index.filename}; "
                    "the index names images relative to its own folder."
                )
            images[name.relative_to(base).as_posix() if base != PurePosixPath(".") else name.as_posix()] = (
                info
            )
        if not images:
            raise DatasetError(f"{filename} holds no images (files ending in {', '.join(IMAGE_SUFFIXES)}).")
        images_dir.mkdir(parents=True)
        _extract_images(archive, images, images_dir, filename, max_bytes)
        if index is None:
            extracted = _class_folders(images, filename, target)
            extracted.source = {"format": "zip", "images": len(images), "layout": "class_folders"}
        else:
            extracted = _with_index(archive, index, images, filename, target)
            extracted.source = {"format": "zip", "images": len(images), "layout": "index"} | extracted.source
        return extracted


def _check_name(name: str, filename: str) -> None:
    normal = name.replace("\\", "/")
    if normal.startswith("/") or re.match(r"^[A-Za-z]:", normal) or ".." in normal.split("/"):
        raise DatasetError(
            f"{filename}: entry {name!r} points outside the archive (an absolute path or '..': zip slip). "
            "The upload was refused; zip the files again from their folder."
        )


def _too_big(filename: str, size: int, max_bytes: int) -> str:
    return (
        f"{filename} expands to more than {max_bytes // 2**20} MB ({size // 2**20} MB or more); "
        "upload fewer or smaller images."
    )


def _extract_images(
    archive: zipfile.ZipFile,
    images: dict[str, zipfile.ZipInfo],
    images_dir: Path,
    filename: str,
    max_bytes: int,
) -> None:
    written = 0
    for relative, info in images.items():
        destination = images_dir / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            with archive.open(info) as source, open(destination, "wb") as out:
                head = source.read(16)
                if not is_image(head):
                    raise DatasetError(
                        f"{filename}: {info.filename} is not an image (its content is not PNG, JPEG, GIF, "
                        "BMP, TIFF or WebP); remove it from the zip."
                    )
                out.write(head)
                written += len(head)
                while chunk := source.read(CHUNK_BYTES):
                    written += len(chunk)
                    if written > max_bytes:  # the declared sizes lied
                        raise DatasetError(_too_big(filename, written, max_bytes))
                    out.write(chunk)
            _check_decodable(destination, info.filename, filename)
        except ENTRY_ERRORS as exc:
            raise DatasetError(f"{filename}: {info.filename} could not be extracted ({exc}).") from None


def _check_decodable(path: Path, entry: str, filename: str) -> None:
    """Right first bytes are not enough: a truncated or corrupt image would only fail in training."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    # Whatever decoding raises means the same: DecompressionBombError (a few bytes declaring billions
    # of pixels) is not an OSError, and a plugin may raise anything on a crafted file.
    except (UnidentifiedImageError, Image.DecompressionBombError, Exception) as exc:
        message = f"{filename}: {entry} is not a readable image ({exc}); replace or remove it."
        raise DatasetError(message) from None


def _class_folders(images: dict[str, zipfile.ZipInfo], filename: str, target: Path) -> Extracted:
    paths = sorted(images)
    loose = [p for p in paths if len(PurePosixPath(p).parts) < 2]
    if loose:
        raise DatasetError(
            f"{filename}: image {loose[0]} is not in a class folder. Put each image in a folder named "
            "after its class, or add a CSV index naming the images."
        )
    labels = [PurePosixPath(p).parent.name for p in paths]
    table = pa.table({"image": pa.array(paths, pa.string()), "label": pa.array(labels, pa.string())})
    pq.write_table(table, str(target))
    return Extracted(rows=len(paths), image_columns=["image"])


def _with_index(
    archive: zipfile.ZipFile,
    index: zipfile.ZipInfo,
    images: dict[str, zipfile.ZipInfo],
    filename: str,
    target: Path,
) -> Extracted:
    index_name = PurePosixPath(index.filename).name
    with tempfile.TemporaryDirectory() as scratch:
        csv_path = Path(scratch) / index_name
        try:
            with archive.open(index) as source, open(csv_path, "wb") as out:
                shutil.copyfileobj(source, out)
        except ENTRY_ERRORS as exc:
            message = f"{filename}: its index {index.filename} could not be extracted ({exc})."
            raise DatasetError(message) from None
        converted = ingest.convert(csv_path, index_name, target)
        index_source = sources.describe(converted.source, csv_path)
    known = set(images)
    parquet = pq.ParquetFile(str(target))
    text_columns = [name for name, kind in converted.storage_types.items() if kind == "string"]
    first = parquet.read_row_group(0, columns=text_columns) if text_columns else None
    columns = []
    for name in text_columns:
        values = pc.drop_null(first.column(name)).to_pylist()
        if values and sum(_normal(v) in known for v in values) >= 0.5 * len(values):
            columns.append(name)
    if not columns:
        example = (
            f" (column {text_columns[0]!r} holds {first.column(text_columns[0])[0]})" if text_columns else ""
        )
        raise DatasetError(
            f"{filename}: no column of the index {index.filename} names image files in the zip{example}. "
            "Write the images' paths relative to the index's folder, such as images/cat1.png."
        )
    for name in columns:
        for row, value in unknown_images(parquet, name, known):  # the first one is refused
            if value is None:
                raise DatasetError(
                    f"{filename}: row {row} of {index.filename} names no image in column "
                    f"{name!r}; give every row an image or remove it."
                )
            raise DatasetError(
                f"{filename}: row {row} of {index.filename} names the image {value!r} "
                f"(column {name!r}), which is not in the zip."
            )
    if _needs_rewrite(parquet, columns):  # "./a.png" and "a\\b.png" are stored as the folder's paths
        table = pq.read_table(str(target))
        for name in columns:
            position = table.schema.get_field_index(name)
            normal = pa.array([_normal(v) for v in table.column(name).to_pylist()], pa.string())
            table = table.set_column(position, name, normal)
        pq.write_table(table, str(target))
    source = {"index": index.filename, "index_source": index_source}
    return Extracted(rows=converted.rows, image_columns=columns, source=source)


def unknown_images(
    parquet: pq.ParquetFile, column: str, known: set[str], normal: Callable[[str], str] | None = None
) -> Iterator[tuple[int, str | None]]:
    """(row number from 1, value) of each row whose ``column`` names no file of ``known``.

    Missing values come as None: the caller decides whether they are allowed. ``normal`` maps a
    value to the relative path it stands for (the index's own spelling, by default).
    """
    normal = normal or _normal
    row = 0
    for batch in parquet.iter_batches(columns=[column]):
        for offset, value in enumerate(batch.column(0).to_pylist()):
            if value is None or normal(value) not in known:
                yield row + offset + 1, value
        row += len(batch)


def check_image_column(path: Path, column: str, folder: Path | None, dataset_name: str) -> None:
    """An override to ``image``: every non-missing value must name a file of the dataset's folder."""
    if folder is None:
        raise DatasetError(
            f"Column {column!r} cannot be an image: dataset {dataset_name!r} has no image folder. "
            "Upload the images as a zip (with a CSV index, or one folder per class) to get one."
        )
    if not folder.is_dir():
        raise DatasetError(f"The images of dataset {dataset_name!r} are missing from storage ({folder}).")
    parquet = pq.ParquetFile(str(path))
    no_values = DatasetError(f"Column {column!r} cannot be an image: every value is missing.")
    if not pa.types.is_string(parquet.schema_arrow.field(column).type):
        if parquet.read(columns=[column]).column(0).null_count == parquet.metadata.num_rows:
            raise no_values  # stored as numbers, as an empty column is
        raise DatasetError(
            f"Column {column!r} cannot be an image: it holds numbers or true/false values, not the "
            "images' file names (such as img/0.png)."
        )
    absent, empty = _absent_files(parquet, column, folder)
    if empty == parquet.metadata.num_rows:
        raise no_values
    if absent:
        examples = ", ".join(repr(value) for value in absent[:MISSING_EXAMPLES])
        raise DatasetError(
            f"Column {column!r} cannot be an image: {len(absent)} of its values "
            f"{'names' if len(absent) == 1 else 'name'} no file in the image folder of dataset "
            f"{dataset_name!r}, such as {examples}."
        )


def _absent_files(parquet: pq.ParquetFile, column: str, folder: Path) -> tuple[list[str], int]:
    """The distinct values naming no file of ``folder`` (in row order), and the count of missing values.

    Values are matched as the runner will open them, joined to the folder as they are (an override
    does not rewrite the file): "./a.png" finds a.png there, "a\\b.png" or " a.png" do not.
    """
    absent: dict[str, None] = {}
    empty = 0
    for _, value in unknown_images(parquet, column, folder_images(folder), _as_path):
        if value is None:
            empty += 1
        else:
            absent[value] = None
    return list(absent), empty


def folder_images(folder: Path) -> set[str]:
    """The files of an image folder, as paths relative to it (the way the index names them)."""
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def _needs_rewrite(parquet: pq.ParquetFile, columns: list[str]) -> bool:
    for batch in parquet.iter_batches(columns=columns):
        if any(_normal(v) != v for name in columns for v in batch.column(name).to_pylist()):
            return True
    return False


def _as_path(value: str) -> str:
    return PurePosixPath(value).as_posix()


def _normal(value: str) -> str:
    path = value.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path
