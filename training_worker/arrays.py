"""Where preprocessed arrays live: RAM when small, a memory-mapped ``.npy`` file when large.

A 5M-row dataset preprocessed to float32 is hundreds of megabytes per copy. The runner therefore
writes the model inputs chunk by chunk into their final array and never builds them whole in
memory: below ``threshold`` bytes the array is an ordinary one, above it a ``.npy`` file written
sequentially (ordinary writes, so the written pages are the page cache's, not the runner's) and
then mapped read-only. Training reads such arrays batch by batch (``training_worker.sequences``).

Importable without TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import numpy as np

# An array above this size goes to a file; the job spec may lower it (``memmap_bytes``).
DEFAULT_MEMMAP_BYTES = 256 * 2**20
# Rows transformed at a time: bounded by bytes, so a chunk of images is as small as one of numbers.
CHUNK_BYTES = 32 * 2**20
MAX_CHUNK_ROWS = 65_536


def chunk_rows(row_bytes: int) -> int:
    """Rows per transform chunk for rows of ``row_bytes`` bytes (at least one row)."""
    return max(1, min(MAX_CHUNK_ROWS, CHUNK_BYTES // max(1, row_bytes)))


def is_memory_mapped(arrays: np.ndarray | Mapping[str, np.ndarray]) -> bool:
    """Whether any of the arrays is file-backed (Keras would copy it whole into a tensor)."""
    values = arrays.values() if isinstance(arrays, Mapping) else [arrays]
    # A copy taken from a memmap (fancy indexing) is still an np.memmap, but with no file behind it.
    return any(getattr(array, "_mmap", None) is not None for array in values)


class ArrayStore:
    """Allocates the arrays of one process run; files go to ``folder`` (created on first need)."""

    def __init__(self, folder: str | os.PathLike[str], threshold: int = DEFAULT_MEMMAP_BYTES) -> None:
        self.folder = Path(folder)
        self.threshold = threshold

    def writer(self, name: str, shape: tuple[int, ...], dtype: np.dtype | type) -> ArrayWriter:
        """A writer for an array of ``shape``, filled in row order by :meth:`ArrayWriter.write`."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if nbytes <= self.threshold:
            return ArrayWriter(np.empty(shape, dtype=dtype))
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, path = tempfile.mkstemp(prefix=f"{_safe(name)}-", suffix=".npy", dir=self.folder)
        file = os.fdopen(handle, "wb")
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": shape,
        }
        np.lib.format.write_array_header_2_0(file, header)
        return ArrayWriter(None, file, path, shape, np.dtype(dtype))


class ArrayWriter:
    """Rows written in order; :meth:`finish` gives the array (memory-mapped read-only when a file)."""

    def __init__(
        self,
        array: np.ndarray | None,
        file: IO[bytes] | None = None,
        path: str | None = None,
        shape: tuple[int, ...] = (),
        dtype: np.dtype | None = None,
    ) -> None:
        self.array, self.file, self.path = array, file, path
        self.shape = array.shape if array is not None else shape
        self.dtype = array.dtype if array is not None else dtype
        self.rows = 0

    def write(self, chunk: np.ndarray) -> None:
        if chunk.shape[1:] != tuple(self.shape[1:]):
            raise ValueError(f"chunk of shape {chunk.shape} does not fit rows of shape {self.shape[1:]}")
        end = self.rows + len(chunk)
        if end > self.shape[0]:
            raise ValueError(f"{end} rows written into an array of {self.shape[0]}")
        if self.array is not None:
            self.array[self.rows : end] = chunk
        else:
            self.file.write(np.ascontiguousarray(chunk, dtype=self.dtype).tobytes())  # type: ignore[union-attr]
        self.rows = end

    def finish(self) -> np.ndarray:
        if self.rows != self.shape[0]:
            raise ValueError(f"only {self.rows} of {self.shape[0]} rows were written")
        if self.array is not None:
            return self.array
        self.file.close()  # type: ignore[union-attr]
        if self.shape[0] == 0:  # mmap cannot map an empty file body
            return np.empty(self.shape, dtype=self.dtype)
        return np.load(self.path, mmap_mode="r")  # type: ignore[arg-type]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "array"
