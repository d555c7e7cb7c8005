"""The runner end to end, spawned exactly as the supervising task spawns it (see conftest)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from training_worker.metrics import metric_names

Runs = Callable[[str], Any]  # conftest.RunResult by name of a shared run
RunJob = Callable[..., Any]
PHASES = ["preprocessing", "build_model", "compile_model", "fit", "evaluate", "predict", "save"]


def metric_columns(prediction_type: str) -> list[str]:
    return [f"{split} {name}" for split in ("Train", "Test") for name in metric_names(prediction_type)]


def test_binary_run_reports_every_metric_each_epoch(runs: Runs) -> None:
    run = runs("binary")
    assert run.returncode == 0
    assert run.phases == PHASES
    assert [event["type"] for event in run.events][:3] == ["status", "status", "model"]
    (model_event,) = run.of_type("model")
    assert model_event["input_shapes"] == {"main": [30]}
    assert model_event["n_classes"] == 2
    assert model_event["params"] > 0 and "Total params" in model_event["summary"]
    epochs = run.of_type("epoch")
    assert [event["epoch"] for event in epochs] == [1, 2, 3]
    for event in epochs:
        values = event["values"]
        assert set(metric_columns("binary")) | {"loss", "accuracy"} == set(values)
        assert all(
            0 <= values[f"{split} {name}"] <= 1
            for split in ("Train", "Test")
            for name in ("Accuracy", "ROC AUC")
        )
        assert 1 <= values["Test Cumulative Lift"] <= 1 / 0.4
        assert -0.3 <= values["Test Cost Matrix Gain"] <= 1
        assert event["seconds"] > 0 and "partial" not in event
    progress = run.of_type("progress")
    assert {
        "type": "progress",
        "epoch": 3,
        "batch": 15,
        "of": 15,
        "epochs": 3,
    } in progress  # 455 train rows / 32


def test_tensorflow_start_up_lines_are_silenced_but_user_output_is_not(runs: Runs) -> None:
    logs = runs("binary").logs
    assert "absl::InitializeLog" not in logs
    assert "oneDNN custom operations" not in logs
    assert "user print from build_model" in logs
    assert "user stderr from build_model" in logs
    assert "UserWarning: user warning from build_model" in logs


def test_default_binary_model_reaches_test_roc_auc_095_in_three_epochs(runs: Runs) -> None:
    done = runs("binary").done
    assert done["status"] == "succeeded" and done["error"] is None
    assert done["final_metrics"]["Test ROC AUC"] >= 0.95
    assert done["final_metrics"]["Test Accuracy"] >= 0.9


def test_final_metrics_are_the_kept_epochs_train_and_test_metrics(runs: Runs) -> None:
    run = runs("binary")
    epochs = run.of_type("epoch")
    (kept,) = run.of_type("kept")
    best = max(epochs, key=lambda event: event["values"]["Test ROC AUC"])  # the first of equals
    assert (kept["epoch"], kept["metric"], kept["keep"]) == (best["epoch"], "Test ROC AUC", "best")
    assert set(run.done["final_metrics"]) == set(metric_columns("binary"))
    for name, value in run.done["final_metrics"].items():
        assert value == pytest.approx(best["values"][name], rel=1e-6)


def test_saved_model_and_preprocessing_reproduce_the_reported_predictions(runs: Runs) -> None:
    import keras

    run = runs("binary")
    artifacts = {name: run.workdir / path for name, path in run.done["artifacts"].items()}
    assert {"model", "preprocessing", "predictions", "tensorboard"} <= set(artifacts)
    assert all(path.is_file() for name, path in artifacts.items() if name != "tensorboard")
    assert artifacts["tensorboard"].is_dir()  # event files, see test_metrics_settings_runner
    assert not (run.workdir / "output" / ".partial").exists()
    assert json.loads((run.workdir / "output" / "preprocessing.json").read_text())["input_shapes"] == {
        "main": [30]
    }

    predictions = pd.read_csv(artifacts["predictions"])
    assert list(predictions.columns) == ["row", "actual", "prediction", "proba_benign", "proba_malignant"]
    assert len(predictions) == 114  # 20% of 569
    dataset = pd.read_csv(run.workdir / "dataset.csv")
    assert list(predictions["actual"]) == list(dataset.loc[predictions["row"], "target"])

    preprocessing = joblib.load(artifacts["preprocessing"])
    model = keras.saving.load_model(artifacts["model"])
    probability = model.predict(preprocessing.transform(dataset.loc[predictions["row"]])["main"], verbose=0)
    np.testing.assert_allclose(probability[:, 0], predictions["proba_malignant"], atol=1e-5)
    reported_auc = skm.roc_auc_score(predictions["actual"] == "malignant", predictions["proba_malignant"])
    assert reported_auc == pytest.approx(run.done["final_metrics"]["Test ROC AUC"])


def test_interrupt_stops_at_end_of_batch_and_saves_evaluated_model(runs: Runs) -> None:
    import keras

    run = runs("interrupted")
    assert run.returncode == 0
    assert run.done["status"] == "interrupted" and run.done["error"] is None
    assert run.phases == PHASES  # evaluated, predicted and saved after the interrupt
    epochs = run.of_type("epoch")
    assert len(epochs) <= 2  # of 50: it stopped at once, not at the end of training
    last_progress = run.of_type("progress")[-1]
    assert last_progress["batch"] < last_progress["of"]  # mid-epoch, at the end of a batch
    assert epochs[-1]["partial"] is True and epochs[-1]["epoch"] == last_progress["epoch"]
    final = run.done["final_metrics"]
    assert set(final) == set(metric_columns("binary"))
    assert final["Test ROC AUC"] == pytest.approx(epochs[-1]["values"]["Test ROC AUC"], rel=1e-6)
    assert keras.saving.load_model(run.workdir / run.done["artifacts"]["model"]) is not None


def test_syntax_error_names_architecture_tab_and_line(run_job: RunJob) -> None:
    code = "def build_model(input_shapes, n_classes):\n    x = (1,\n    return x\n"
    run = run_job("iris", architecture_code=code)
    assert run.returncode == 0
    assert run.phases == ["preprocessing", "build_model"]
    error = run.done["error"]
    assert run.done["status"] == "failed" and run.done["artifacts"] == {}
    assert (error["phase"], error["tab"], error["line"]) == ("build_model", "architecture", 2)
    assert "SyntaxError in the Architecture tab at line 2" in error["message"]
    assert list((run.workdir / "output").iterdir()) == []  # nothing half-written


def test_exception_in_build_model_names_line(runs: Runs) -> None:
    run = runs("build_model_raises")
    error = run.done["error"]
    assert run.returncode == 0 and run.done["status"] == "failed"
    assert (error["phase"], error["tab"], error["line"]) == ("build_model", "architecture", 5)
    assert "NameError" in error["message"] and "'hiden' is not defined" in error["message"]
    assert '"<architecture>", line 5, in build_model' in error["traceback"]
    assert "runner.py" not in error["traceback"]
    assert "building with {'main': (30,)}" in run.logs  # user prints are logs, not events


def test_wrong_output_layer_is_refused_with_expected_shape(runs: Runs) -> None:
    run = runs("wrong_output_layer")
    error = run.done["error"]
    assert run.done["status"] == "failed" and not run.of_type("model")
    assert (error["phase"], error["tab"]) == ("build_model", "architecture")
    assert (
        "binary: last layer must be Dense(1, activation='sigmoid') or Dense(2, activation='softmax'); "
        "got Dense(3, activation='relu')" in error["message"]
    )


def test_regression_and_multiclass_metrics(runs: Runs) -> None:
    regression, multiclass = runs("regression"), runs("multiclass")
    assert regression.done["status"] == multiclass.done["status"] == "succeeded"

    values = regression.of_type("epoch")[-1]["values"]
    assert len(regression.of_type("epoch")) == 10
    assert set(metric_columns("regression")) <= set(values)
    assert values["Test RMSE"] == pytest.approx(math.sqrt(values["Test MSE"]))
    assert 0 < values["Test MAE"] <= values["Test RMSE"]
    assert values["Test RMSLE"] is not None and values["Test R2 Score"] <= 1
    assert regression.of_type("model")[0]["n_classes"] == 1
    table = pd.read_csv(regression.workdir / "output" / "predictions.csv")
    assert list(table.columns) == ["row", "actual", "prediction"]
    assert skm.mean_absolute_error(table["actual"], table["prediction"]) == pytest.approx(
        regression.done["final_metrics"]["Test MAE"]
    )

    values = multiclass.of_type("epoch")[-1]["values"]
    assert set(metric_columns("multiclass")) <= set(values)
    assert 0.5 <= values["Test ROC AUC"] <= 1 and 0 <= values["Test F1 Score"] <= 1
    assert values["Test Log Loss"] > 0
    assert multiclass.of_type("model")[0]["n_classes"] == 3
    table = pd.read_csv(multiclass.workdir / "output" / "predictions.csv")
    probabilities = table[["proba_setosa", "proba_versicolor", "proba_virginica"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert skm.accuracy_score(table["actual"], table["prediction"]) == pytest.approx(
        multiclass.done["final_metrics"]["Test Accuracy"]
    )


def test_runner_reads_a_parquet_dataset(runs: Runs) -> None:
    run = runs("parquet")
    assert run.done["status"] == "succeeded", run.done
    assert run.of_type("model")[0]["input_shapes"] == {"main": [4]}
    table = pd.read_csv(run.workdir / "output" / "predictions.csv")
    assert len(table) == 30 and set(table["actual"]) <= {"setosa", "versicolor", "virginica"}


def test_default_regression_learns_in_target_units_thanks_to_target_rescaling(runs: Runs) -> None:
    run = runs("regression")
    epochs = [event["values"] for event in run.of_type("epoch")]
    # Unscaled (diabetes' target is 25-346), the same run's Test R2 is negative for 8 epochs and
    # ends near 0.18; rescaled it is ~0.45 after one epoch and ~0.5 after ten, whatever the seed.
    assert all(values["Test R2 Score"] > 0 for values in epochs)
    assert run.done["final_metrics"]["Test R2 Score"] > 0.4
    # Metrics are in the target's units; Keras' loss is the MSE of the scaled target.
    assert epochs[-1]["Test MAE"] > 20 and epochs[-1]["loss"] < 2

    prep = json.loads((run.workdir / "output" / "preprocessing.json").read_text())["target_rescaling"]
    dataset = pd.read_csv(run.workdir / "dataset.csv")
    table = pd.read_csv(run.workdir / "output" / "predictions.csv")
    train_target = dataset.drop(index=table["row"])["target"]  # fitted on the train split only
    assert prep["method"] == "standard"
    assert prep["mean"] == pytest.approx(train_target.mean(), rel=1e-6)
    assert prep["scale"] == pytest.approx(train_target.std(ddof=0), rel=1e-6)

    raw = saved_model_output(run, dataset.loc[table["row"]])
    np.testing.assert_allclose(table["prediction"], raw * prep["scale"] + prep["mean"], rtol=1e-4)
    preprocessing = joblib.load(run.workdir / "output" / "preprocessing.joblib")
    np.testing.assert_allclose(preprocessing.output_to_predictions(raw), table["prediction"], rtol=1e-6)
    assert skm.r2_score(table["actual"], table["prediction"]) == pytest.approx(
        run.done["final_metrics"]["Test R2 Score"], rel=1e-6
    )


def test_target_rescaling_none_leaves_predictions_as_the_model_outputs_them(runs: Runs) -> None:
    run = runs("regression_unscaled")
    assert run.done["status"] == "succeeded"
    prep = json.loads((run.workdir / "output" / "preprocessing.json").read_text())["target_rescaling"]
    assert prep == {"method": "none", "mean": 0.0, "scale": 1.0}
    dataset = pd.read_csv(run.workdir / "dataset.csv")
    table = pd.read_csv(run.workdir / "output" / "predictions.csv")
    np.testing.assert_allclose(
        table["prediction"], saved_model_output(run, dataset.loc[table["row"]]), rtol=1e-5
    )
    # One epoch on the raw target: the model's outputs are still near 0, far below every target.
    assert table["prediction"].max() < table["actual"].min()
    assert skm.mean_absolute_error(table["actual"], table["prediction"]) == pytest.approx(
        run.done["final_metrics"]["Test MAE"], rel=1e-6
    )


def test_classification_has_no_target_rescaling(runs: Runs) -> None:
    for name in ("binary", "multiclass"):
        description = json.loads((runs(name).workdir / "output" / "preprocessing.json").read_text())
        assert description["target_rescaling"] is None


def saved_model_output(run: Any, rows: pd.DataFrame) -> np.ndarray:
    """The saved model's raw output (shape (n,)) on ``rows``, through the saved preprocessing."""
    import keras

    preprocessing = joblib.load(run.workdir / "output" / "preprocessing.joblib")
    model = keras.saving.load_model(run.workdir / "output" / "model.keras")
    return model.predict(preprocessing.transform(rows)["main"], verbose=0).reshape(len(rows))


def test_stderr_silencing_replays_what_a_failed_block_wrote(capfd: pytest.CaptureFixture[str]) -> None:
    from training_worker.runner import native_stderr_silenced

    with native_stderr_silenced():
        os.write(2, b"native start-up noise\n")
    os.write(2, b"after the block\n")
    with pytest.raises(ImportError), native_stderr_silenced():
        os.write(2, b"libfoo.so: cannot open shared object file\n")
        raise ImportError("no foo")
    err = capfd.readouterr().err
    assert "native start-up noise" not in err
    assert err == "after the block\nlibfoo.so: cannot open shared object file\n"


def test_unknown_target_rescaling_points_at_the_training_tab() -> None:
    from training_worker.runner import _target_rescaling
    from training_worker.usercode import UserCodeError

    assert _target_rescaling({}) is None
    assert _target_rescaling({"target_rescaling": "none"}) == "none"
    with pytest.raises(UserCodeError) as caught:
        _target_rescaling({"target_rescaling": "minmax"})
    assert (caught.value.phase, caught.value.tab) == ("preprocessing", "training")
    assert "'minmax' is unknown" in caught.value.message


def test_runner_exits_when_parent_closes_stdin(spawn_runner: Callable[[str], Any]) -> None:
    process, read_end = spawn_runner("iris")
    started = time.monotonic()
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=30) == 3
    assert time.monotonic() - started < 30
    with open(read_end, "rb") as pipe:
        assert b'"type":"done"' not in pipe.read()  # no final status: the parent is gone


def test_platform_failure_still_ends_with_a_done_event(tmp_path: Path, run_job: RunJob) -> None:
    (tmp_path / "job.json").write_text("{not json")
    run = run_job()
    assert run.returncode == 0
    assert run.done["status"] == "failed"
    assert run.done["error"]["phase"] == "runner" and run.done["error"]["tab"] is None
    assert "JSONDecodeError" in run.done["error"]["message"]


def test_one_input_is_fed_as_an_array_several_as_a_dict() -> None:
    from training_worker.runner import Split

    main, words = np.zeros((2, 3)), np.ones((2, 4))
    assert Split({"main": main}, np.zeros(2), pd.DataFrame()).model_inputs is main
    assert Split({"main": main, "words": words}, np.zeros(2), pd.DataFrame()).model_inputs == {
        "main": main,
        "words": words,
    }


def test_memory_mapped_inputs_train_as_well_and_leave_no_files(runs: Runs) -> None:
    run, in_ram = runs("memory_mapped"), runs("binary")
    assert run.done["status"] == "succeeded"
    assert "Train split: 455 rows, inputs of 0 MB memory-mapped" in run.logs
    assert "Test split: 114 rows" in run.logs
    assert run.done["final_metrics"]["Test ROC AUC"] >= 0.95
    # The same split and the same progress: only where the batches come from differs.
    assert {"type": "progress", "epoch": 3, "batch": 15, "of": 15, "epochs": 3} in run.of_type("progress")
    rows = [pd.read_csv(r.workdir / "output" / "predictions.csv")["row"].tolist() for r in (run, in_ram)]
    assert rows[0] == rows[1]
    assert not (run.workdir / ".arrays").exists()
    assert "memory-mapped" not in in_ram.logs
