"""scikit-learn's digits (8×8 grayscale, values 0-16) as PNG files in a zip, written without Pillow."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from sklearn import datasets


def png(pixels: np.ndarray) -> bytes:
    """A grayscale 8-bit PNG of a 2-D uint8 array (the format's own chunks, no image library)."""
    height, width = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + row.tobytes() for row in pixels.astype(np.uint8))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def digits(limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    bunch = datasets.load_digits()
    images = np.round(bunch.images * 255 / 16).astype(np.uint8)
    return images[:limit], bunch.target[:limit]


def class_folders_zip(limit: int | None = None) -> bytes:
    """digits/<label>/<n>.png: one folder per class."""
    images, labels = digits(limit)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n, (image, label) in enumerate(zip(images, labels, strict=True)):
            archive.writestr(f"digits/{label}/{n}.png", png(image))
    return buffer.getvalue()


def indexed_zip(
    limit: int | None = None, extra: dict[str, bytes] | None = None, index_rows: str = ""
) -> bytes:
    """index.csv (file,digit) and img/<n>.png; ``extra`` entries and ``index_rows`` appended."""
    images, labels = digits(limit)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        rows = [f"img/{n}.png,d{label}" for n, label in enumerate(labels)]
        archive.writestr("index.csv", "file,digit\n" + "\n".join(rows) + "\n" + index_rows)
        for n, image in enumerate(images):
            archive.writestr(f"img/{n}.png", png(image))
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()
