"""Split options: an explicit test dataset (through the real runner) and sampling before the split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.training_worker.conftest import dataset_frame, write_job
from training_worker.preprocessing import PreprocessingError, read_dataset, split_train_test

RunJob = Callable[..., Any]


def explicit_job(workdir: Path, test: pd.DataFrame, **split: Any) -> dict[str, Any]:
    """An iris job whose test split is ``test``, linked as the supervisor links it."""
    job = write_job(
        workdir,
        "iris",
        data_format="parquet",
        split={"mode": "explicit", "test_dataset": 7, "seed": 1337, **split},
        test_dataset={"path": "test_dataset.parquet", "format": "parquet", "id": 7, "name": "iris-test"},
        training={"mode": "standard", "epochs": 2, "batch_size": 16},
    )
    test.to_parquet(workdir / "test_dataset.parquet", index=False)
    return job


def test_explicit_test_dataset_is_the_test_split_and_sampling_limits_the_train_rows(
    tmp_path: Path, run_job: RunJob
) -> None:
    iris, _, _ = dataset_frame("iris")
    test = iris.sample(n=37, random_state=3).reset_index(drop=True)
    test = test[list(reversed(test.columns))]  # the same columns in another order
    explicit_job(tmp_path, test, sampling={"method": "head", "rows": 120})
    run = run_job()
    assert run.done["status"] == "succeeded", run.done
    predictions = pd.read_csv(run.workdir / "output" / "predictions.csv")
    assert len(predictions) == 37  # every row of the test dataset, none of the training one
    assert list(predictions["actual"]) == list(test.loc[predictions["row"], "target"])
    assert {"Test ROC AUC", "Train ROC AUC"} <= set(run.done["final_metrics"])


def test_explicit_test_dataset_missing_an_input_is_named(tmp_path: Path, run_job: RunJob) -> None:
    iris, _, _ = dataset_frame("iris")
    explicit_job(tmp_path, iris.drop(columns=["petal width (cm)"]))
    run = run_job()
    assert run.done["status"] == "failed"
    message = run.done["error"]["message"]
    assert "'petal width (cm)'" in message and "iris-test" in message, message


def test_explicit_split_without_a_test_frame_is_refused() -> None:
    iris, _, _ = dataset_frame("iris")
    with pytest.raises(PreprocessingError, match="explicit test dataset"):
        split_train_test(iris, "target", "multiclass", {"mode": "explicit", "test_dataset": 3})


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """iris ×10 (1,500 rows, numbered), as CSV and as Parquet in row groups of 100 rows."""
    iris, _, _ = dataset_frame("iris")
    frame = pd.concat([iris] * 10, ignore_index=True)
    frame.insert(0, "row_id", range(len(frame)))
    frame.to_csv(tmp_path / "data.csv", index=False)
    frame.to_parquet(tmp_path / "data.parquet", index=False, row_group_size=100)
    return {"csv": tmp_path / "data.csv", "parquet": tmp_path / "data.parquet"}


def read(path: Path, sampling: dict[str, Any] | None) -> pd.DataFrame:
    features = [{"name": "row_id", "type": "numeric"}, {"name": "sepal length (cm)", "type": "numeric"}]
    data_format = "parquet" if path.suffix == ".parquet" else "csv"
    return read_dataset(path, features, "target", "multiclass", format=data_format, sampling=sampling)


@pytest.mark.parametrize("data_format", ["csv", "parquet"])
def test_head_sampling_gives_the_first_n_rows(files: dict[str, Path], data_format: str) -> None:
    frame = read(files[data_format], {"method": "head", "rows": 250})
    assert list(frame["row_id"]) == list(range(250))
    assert len(read(files[data_format], {"method": "head", "rows": 5000})) == 1500  # N ≥ rows: all


def test_head_sampling_of_parquet_reads_only_the_row_groups_it_needs(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    original = pq.ParquetFile.read_row_group

    def spy(self: pq.ParquetFile, i: int, *args: Any, **kwargs: Any) -> Any:
        groups.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    frame = read(files["parquet"], {"method": "head", "rows": 250})
    assert len(frame) == 250
    assert groups == [0, 1, 2] * len(frame.columns)  # a column at a time, never past the third group


def test_random_sampling_gives_exactly_n_rows_deterministic_with_the_seed(files: dict[str, Path]) -> None:
    by_format = {
        data_format: read(path, {"method": "random", "rows": 321, "seed": 5})
        for data_format, path in files.items()
    }
    rows = list(by_format["parquet"]["row_id"])
    assert len(rows) == 321 == len(set(rows)) and rows == sorted(rows)
    assert list(by_format["csv"]["row_id"]) == rows  # the same rows whatever the format
    assert list(read(files["parquet"], {"method": "random", "rows": 321, "seed": 5})["row_id"]) == rows
    other = list(read(files["parquet"], {"method": "random", "rows": 321, "seed": 6})["row_id"])
    assert other != rows and len(other) == 321
    assert by_format["parquet"]["target"].map(type).eq(str).all()  # class labels still read as text


def test_sampling_all_and_bad_sampling(files: dict[str, Path]) -> None:
    assert len(read(files["parquet"], {"method": "all"})) == len(read(files["csv"], None)) == 1500
    with pytest.raises(PreprocessingError, match="Sampling method 'first'"):
        read(files["csv"], {"method": "first", "rows": 3})
    with pytest.raises(PreprocessingError, match="whole number of rows"):
        read(files["csv"], {"method": "head"})
