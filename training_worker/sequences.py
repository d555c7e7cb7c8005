"""Keras batches read from preprocessed arrays, for the arrays Keras must not copy whole.

``model.fit(x=array)`` turns the whole array into one tensor (Keras' array adapter starts from
``tf.data.Dataset.from_tensors``): for a memory-mapped array of a big dataset that is a second copy
of the data in RAM. :class:`ArraySequence` instead reads one batch at a time, shuffled anew each
epoch from the session's seed; :func:`fit_arguments` and :func:`predict` pick it for
memory-mapped inputs and keep Keras' own (faster) path for arrays in RAM.

Imports Keras: for the runner only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from training_worker.arrays import is_memory_mapped

Arrays = np.ndarray | Mapping[str, np.ndarray]


def _rows(arrays: Arrays, rows: slice | np.ndarray) -> Any:
    if isinstance(arrays, Mapping):
        return {name: np.asarray(array[rows]) for name, array in arrays.items()}
    return np.asarray(arrays[rows])


def _length(arrays: Arrays) -> int:
    return len(next(iter(arrays.values())) if isinstance(arrays, Mapping) else arrays)


class ArraySequence(keras.utils.PyDataset):
    """Batches ``(x, y)`` (or ``(x,)`` without ``y``) of ``batch_size`` rows of arrays or dicts of
    arrays. With ``shuffle`` the rows are drawn in a new order each epoch (``seed`` + epoch), each
    batch's rows read in file order so a memory-mapped file is read forwards."""

    def __init__(
        self,
        inputs: Arrays,
        y: Arrays | None = None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 1337,
        names: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # The model's input names (DataAugmentationSequence finds a one-input model's input by it).
        self.input_names = list(inputs) if isinstance(inputs, Mapping) else list(names or [])
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        self.inputs, self.y = inputs, y
        self.batch_size = batch_size
        self.rows = _length(inputs)
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.order = self._order()

    def _order(self) -> np.ndarray | None:
        if not self.shuffle:
            return None
        return np.random.default_rng((self.seed, self.epoch)).permutation(self.rows)

    def __len__(self) -> int:
        return math.ceil(self.rows / self.batch_size)

    def __getitem__(self, index: int) -> tuple:
        start = index * self.batch_size
        stop = min(start + self.batch_size, self.rows)
        if start >= stop:
            raise IndexError(f"batch {index} is past the last ({len(self)} batches)")
        rows: slice | np.ndarray = (
            slice(start, stop) if self.order is None else np.sort(self.order[start:stop])
        )
        x = _rows(self.inputs, rows)
        return (x,) if self.y is None else (x, _rows(self.y, rows))

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()


def fit_arguments(inputs: Arrays, y: Arrays, batch_size: int, seed: int) -> dict[str, Any]:
    """``model.fit`` keyword arguments for the training data: a shuffled :class:`ArraySequence`
    for memory-mapped inputs, else the arrays themselves."""
    if is_memory_mapped(inputs):
        return {"x": ArraySequence(inputs, y, batch_size, shuffle=True, seed=seed)}
    return {"x": inputs, "y": y, "batch_size": batch_size}


def predict(model: keras.Model, inputs: Arrays, batch_size: int) -> Any:
    """``model.predict`` that reads memory-mapped inputs a batch at a time."""
    if is_memory_mapped(inputs):
        return model.predict(ArraySequence(inputs, batch_size=batch_size), verbose=0)
    return model.predict(inputs, batch_size=batch_size, verbose=0)
