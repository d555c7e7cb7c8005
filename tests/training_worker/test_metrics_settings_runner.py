"""The Metrics settings and TensorBoard logs through the real runner: a custom cost matrix and lift
fraction, the Training tab's score(y_valid, y_pred) as "Custom Score" (also as the optimization
metric), its errors, and the event files every session writes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.training_worker.conftest import RUN_TIMEOUT_SECONDS, RunResult, run_runner, write_job
from training_worker.defaults import DEFAULT_TRAINING_CODE
from training_worker.metrics import metric_names

COST_MATRIX = {"tp": 2.0, "tn": 0.5, "fp": -1.0, "fn": -3.0}
LIFT_FRACTION = 0.2

# The mean probability given to the true class. The shapes are checked in score itself: whatever the
# output layer (a sigmoid here), y_pred is (n, n_classes) and y_valid (n,) class indices.
SCORE_CODE = (
    DEFAULT_TRAINING_CODE
    + '''

def score(y_valid, y_pred):
    """Custom Score: the mean probability of the true class."""
    assert y_pred.shape == (len(y_valid), 2) and y_valid.ndim == 1, (y_valid.shape, y_pred.shape)
    return float(np.mean(y_pred[np.arange(len(y_valid)), y_valid]))
'''
)

RAISING_SCORE_CODE = (
    DEFAULT_TRAINING_CODE
    + """

def score(y_valid, y_pred):
    hits = int(np.sum(np.argmax(y_pred, axis=1) == y_valid))
    return hits / (len(y_valid) - len(y_pred))
"""
)
RAISING_LINE = RAISING_SCORE_CODE.splitlines().index("    return hits / (len(y_valid) - len(y_pred))") + 1

# Advanced mode, where the epochs run inside the user's fit_model: a score that returns a list.
LIST_SCORE_CODE = (
    DEFAULT_TRAINING_CODE.replace("epochs = 10", "epochs = 2")
    + """

def score(y_valid, y_pred):
    return [0.5, 0.5]
"""
)
LIST_SCORE_LINE = LIST_SCORE_CODE.splitlines().index("def score(y_valid, y_pred):") + 1


def metrics_training(code: str, mode: str = "standard", epochs: int = 3) -> dict[str, Any]:
    return {
        "mode": mode,
        "epochs": epochs,
        "batch_size": 32,
        "code": code,
        "metrics": {"cost_matrix": COST_MATRIX, "lift_fraction": LIFT_FRACTION, "custom_score": True},
    }


RUNS: dict[str, dict[str, Any]] = {
    "custom_score": {"training": metrics_training(SCORE_CODE), "metric": "Custom Score"},
    "score_raises": {"training": metrics_training(RAISING_SCORE_CODE)},
    "score_returns_a_list": {"training": metrics_training(LIST_SCORE_CODE, mode="advanced")},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[RunResult]]]:
    base = tmp_path_factory.mktemp("metrics_settings")

    def run(name: str) -> RunResult:
        write_job(base / name, "breast_cancer", **RUNS[name])
        return run_runner(base / name)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="runner") as pool:
        yield {name: pool.submit(run, name) for name in RUNS}


def result(runs: dict[str, Future[RunResult]], name: str) -> RunResult:
    return runs[name].result(timeout=RUN_TIMEOUT_SECONDS * 2)


def test_custom_score_is_in_the_logs_each_epoch_and_is_the_optimization_metric(runs) -> None:
    run = result(runs, "custom_score")
    assert run.returncode == 0 and run.done["status"] == "succeeded", run.done["error"]
    expected = [f"{split} {name}" for split in ("Train", "Test") for name in metric_names("binary", True)]
    epochs = run.of_type("epoch")
    assert [event["epoch"] for event in epochs] == [1, 2, 3]
    for event in epochs:
        assert set(expected) <= set(event["values"])
        for split in ("Train", "Test"):
            assert 0.5 < event["values"][f"{split} Custom Score"] <= 1.0
    assert set(run.done["final_metrics"]) == set(expected)

    # The kept epoch is the best by the custom score, and the final metrics are that model's.
    (kept,) = run.of_type("kept")
    best = max(epochs, key=lambda event: event["values"]["Test Custom Score"])
    assert (kept["metric"], kept["epoch"]) == ("Test Custom Score", best["epoch"])
    final = run.done["final_metrics"]
    assert final["Test Custom Score"] == pytest.approx(best["values"]["Test Custom Score"], rel=1e-6)

    # Recomputed by hand from the kept model's test predictions: the score, the gain under the
    # custom cost matrix, the lift at the chosen fraction.
    predictions = pd.read_csv(run.workdir / run.done["artifacts"]["predictions"])
    positive = predictions["actual"] == "malignant"  # classes[1]
    probability = predictions["proba_malignant"].to_numpy()
    true_class_probability = np.where(positive, probability, 1 - probability)
    assert final["Test Custom Score"] == pytest.approx(true_class_probability.mean(), abs=1e-5)
    predicted = probability >= 0.5
    counts = {
        "tp": np.sum(positive & predicted),
        "tn": np.sum(~positive & ~predicted),
        "fp": np.sum(~positive & predicted),
        "fn": np.sum(positive & ~predicted),
    }
    gain = sum(COST_MATRIX[cell] * count for cell, count in counts.items()) / len(predictions)
    assert final["Test Cost Matrix Gain"] == pytest.approx(gain)
    top = np.argsort(-probability, kind="stable")[: math.ceil(LIFT_FRACTION * len(predictions))]
    lift = positive.to_numpy()[top].mean() / positive.mean()
    assert final["Test Cumulative Lift"] == pytest.approx(lift)


def test_an_error_in_score_fails_the_session_at_the_first_epoch_with_the_training_tab_line(runs) -> None:
    run = result(runs, "score_raises")
    assert run.returncode == 0
    assert run.done["status"] == "failed" and run.done["artifacts"] == {}
    assert run.phases[-1] == "fit" and run.of_type("epoch") == []
    error = run.done["error"]
    assert (error["phase"], error["tab"], error["line"]) == ("fit", "training", RAISING_LINE)
    assert "score(y_valid, y_pred) (Custom Score) raised ZeroDivisionError" in error["message"]
    assert f"at line {RAISING_LINE} of the Training tab" in error["message"]
    assert "<training>" in error["traceback"] and "hits / (len(y_valid)" in error["traceback"]


def test_a_score_that_returns_no_number_fails_in_advanced_mode_too(runs) -> None:
    run = result(runs, "score_returns_a_list")
    assert run.returncode == 0 and run.done["status"] == "failed"
    assert run.of_type("epoch") == []
    error = run.done["error"]
    # Not re-described as "fit_model() raised ...": the custom score's own message and line.
    assert (error["phase"], error["tab"], error["line"]) == ("fit", "training", LIST_SCORE_LINE)
    assert "must return one number; it returned list" in error["message"]
    assert "fit_model() raised" not in error["message"]


def read_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of every scalar in the event files under ``folder``."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return scalars


def test_tensorboard_event_files_hold_every_epoch_value(runs) -> None:
    run = result(runs, "custom_score")
    assert run.done["artifacts"]["tensorboard"] == "output/tensorboard"
    logs = run.workdir / "output" / "tensorboard"
    assert [path.name for path in sorted(logs.iterdir())] == ["test", "train"]
    for side in ("train", "test"):
        assert list((logs / side).glob("events.out.tfevents.*")), f"no event file in {side}/"

    train, test = read_scalars(logs / "train"), read_scalars(logs / "test")
    epochs = run.of_type("epoch")
    for name in metric_names("binary", with_custom_score=True):
        # "Train X" and "Test X" share the tag X, in the runs train and test: one chart in TensorBoard.
        for scalars, split in ((train, "Train"), (test, "Test")):
            assert scalars[name] == pytest.approx(
                {event["epoch"]: event["values"][f"{split} {name}"] for event in epochs}, rel=1e-6
            )
    assert train["loss"] == pytest.approx(
        {event["epoch"]: event["values"]["loss"] for event in epochs}, rel=1e-6
    )
