"""Big-data plumbing: arrays in RAM or memory-mapped, chunked transforms, batches read from files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training_worker.test_preprocessing import CSV, FEATURES
from training_worker.arrays import ArrayStore, chunk_rows, is_memory_mapped
from training_worker.preprocessing import (
    Preprocessing,
    drop_missing_target,
    read_dataset,
    split_positions,
    split_train_test,
)


def test_small_arrays_stay_in_ram_large_ones_become_read_only_files(tmp_path: Path) -> None:
    store = ArrayStore(tmp_path / "arrays", threshold=100)
    small = store.writer("train-main", (5, 2), np.float32)  # 40 bytes
    large = store.writer("train-main", (50, 2), np.float32)  # 400 bytes
    rows = np.arange(100, dtype=np.float32).reshape(50, 2)
    small.write(rows[:3])
    small.write(rows[3:5])
    for start in range(0, 50, 7):
        large.write(rows[start : start + 7])
    in_ram, on_disk = small.finish(), large.finish()

    assert not is_memory_mapped(in_ram) and is_memory_mapped({"main": on_disk})
    np.testing.assert_array_equal(in_ram, rows[:5])
    np.testing.assert_array_equal(on_disk, rows)
    assert [path.suffix for path in (tmp_path / "arrays").iterdir()] == [".npy"]
    with pytest.raises(ValueError, match="read-only"):
        on_disk[0, 0] = 1
    # A copy of some rows is an ordinary array again: Keras may take it whole.
    assert not is_memory_mapped(on_disk[[1, 3]])


def test_writer_refuses_rows_that_do_not_fit_or_are_missing(tmp_path: Path) -> None:
    writer = ArrayStore(tmp_path, threshold=0).writer("x", (4, 3), np.int32)
    with pytest.raises(ValueError, match=r"does not fit rows of shape \(3,\)"):
        writer.write(np.zeros((2, 2), dtype=np.int32))
    writer.write(np.zeros((3, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="5 rows written into an array of 4"):
        writer.write(np.zeros((2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="only 3 of 4 rows were written"):
        writer.finish()


def test_chunks_are_bounded_by_bytes() -> None:
    assert chunk_rows(19 * 4) == 65_536  # narrow tabular rows: the row cap
    assert chunk_rows(224 * 224 * 3 * 4) == 55  # images: ~32 MB of them
    assert chunk_rows(10**9) == 1


def test_chunked_memory_mapped_transform_equals_the_whole_frame_transform(tmp_path: Path) -> None:
    frame = drop_missing_target(read_dataset(io.StringIO(CSV), FEATURES, "target", "binary"), "target")
    rows = np.array([4, 0, 2, 3])
    preprocessing = Preprocessing.fit(frame, FEATURES, "target", "binary", ["no", "yes"], rows=rows)
    whole = preprocessing.transform(frame.iloc[rows])
    chunked = preprocessing.transform_rows(frame, rows, ArrayStore(tmp_path, threshold=0), chunk=3)
    assert set(chunked) == {"main", "words"} and all(is_memory_mapped(a) for a in chunked.values())
    for name, array in whole.items():
        assert chunked[name].dtype == array.dtype
        np.testing.assert_array_equal(chunked[name], array)
    # Fitting on positions is fitting on those rows.
    copied = Preprocessing.fit(frame.iloc[rows], FEATURES, "target", "binary", ["no", "yes"])
    np.testing.assert_array_equal(copied.transform(frame)["main"], preprocessing.transform(frame)["main"])


def test_split_positions_pick_the_rows_split_train_test_copies() -> None:
    frame = pd.DataFrame({"x": range(40), "target": ["a", "b"] * 20})
    split = {"train_ratio": 0.75, "seed": 5}
    train_rows, test_rows = split_positions(frame, "target", "binary", split)
    train, test = split_train_test(frame, "target", "binary", split)
    assert list(frame.iloc[train_rows]["x"]) == list(train["x"])
    assert list(frame.iloc[test_rows]["x"]) == list(test["x"])
    assert sorted([*train_rows, *test_rows]) == list(range(40))
    assert (frame.iloc[test_rows]["target"] == "a").sum() == 5  # stratified


def test_array_sequence_shuffles_every_epoch_and_keeps_x_and_y_aligned(tmp_path: Path) -> None:
    from training_worker.sequences import ArraySequence

    store = ArrayStore(tmp_path, threshold=0)
    writer = store.writer("main", (10, 2), np.float32)
    writer.write(np.arange(20, dtype=np.float32).reshape(10, 2))
    x = {"main": writer.finish(), "side": np.arange(10, dtype=np.int32).reshape(10, 1)}
    y = np.arange(10) * 10
    sequence = ArraySequence(x, y, batch_size=4, shuffle=True, seed=3)
    assert len(sequence) == 3

    def epoch() -> list[int]:
        seen = []
        for index in range(len(sequence)):
            batch_x, batch_y = sequence[index]
            assert not is_memory_mapped(batch_x)
            np.testing.assert_array_equal(batch_x["main"][:, 0] / 2, batch_y / 10)
            np.testing.assert_array_equal(batch_x["side"][:, 0], batch_y / 10)
            seen += list(batch_y // 10)
        sequence.on_epoch_end()
        return seen

    first, second = epoch(), epoch()
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second  # a new order each epoch
    assert first == [*sorted(first[:4]), *sorted(first[4:8]), *sorted(first[8:])]  # file order inside
    again = ArraySequence(x, y, batch_size=4, shuffle=True, seed=3)
    assert list(again[0][1] // 10) == first[:4]  # the same seed, the same order

    ordered = ArraySequence(x["main"], batch_size=4)
    (last,) = ordered[2]
    np.testing.assert_array_equal(last, x["main"][8:])
    with pytest.raises(IndexError):
        ordered[3]
