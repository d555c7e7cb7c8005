"""A multi-output model: two targets of different types on scikit-learn's breast cancer data.

The diagnosis (binary) and ``mean radius`` (regression, so no longer a feature), one output each,
the default multi-output Architecture code; metrics per output, named ``Test X (target)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.training_worker.conftest import RunResult, run_runner, write_job
from training_worker.defaults import default_multi_output_code
from training_worker.metrics import metric_names

RADIUS = "mean radius"
TARGETS = [
    {"name": "target", "prediction_type": "binary", "classes": ["benign", "malignant"]},
    {"name": RADIUS, "prediction_type": "regression", "classes": None},
]
CODE = default_multi_output_code({t["name"]: t["prediction_type"] for t in TARGETS})


def multi_output_job(workdir: Path, code: str, epochs: int = 3) -> dict[str, Any]:
    job = write_job(
        workdir,
        "breast_cancer",
        targets=TARGETS,
        architecture_code=code,
        training={"mode": "standard", "epochs": epochs, "batch_size": 32},
    )
    job["features"] = [f for f in job["features"] if f["name"] != RADIUS]
    (workdir / "job.json").write_text(json.dumps(job))
    return job


@pytest.fixture(scope="module")
def multi_output_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    workdir = tmp_path_factory.mktemp("multi_output")
    multi_output_job(workdir, CODE)
    return run_runner(workdir), workdir


def test_every_epoch_has_each_outputs_metrics(multi_output_run: tuple[RunResult, Path]) -> None:
    result, _ = multi_output_run
    assert result.done["status"] == "succeeded", result.done["error"]
    epochs = result.of_type("epoch")
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    for event in epochs:
        values = event["values"]
        for prefix in ("Train", "Test"):
            for name in metric_names("binary"):
                assert f"{prefix} {name} (target)" in values
            for name in metric_names("regression"):
                assert f"{prefix} {name} ({RADIUS})" in values
        assert "loss" in values  # Keras' own logs are kept
    model = result.of_type("model")[0]
    assert model["n_classes"] == {"target": 2, "mean_radius": 1}  # by output name


def test_both_outputs_learn(multi_output_run: tuple[RunResult, Path]) -> None:
    result, _ = multi_output_run
    final = result.done["final_metrics"]
    assert final["Test ROC AUC (target)"] >= 0.9
    assert final[f"Test R2 Score ({RADIUS})"] > 0.8  # about 0.95 after 3 epochs
    assert not any(name in final for name in ("Test ROC AUC", "Test R2 Score"))


def test_predictions_have_a_column_set_per_target(multi_output_run: tuple[RunResult, Path]) -> None:
    _, workdir = multi_output_run
    table = pd.read_csv(workdir / "output" / "predictions.csv")
    assert {
        "actual (target)",
        "prediction (target)",
        "proba_benign (target)",
        "proba_malignant (target)",
        f"actual ({RADIUS})",
        f"prediction ({RADIUS})",
    } <= set(table.columns)
    assert set(table["prediction (target)"]) <= {"benign", "malignant"}
    # In the radius' own units (about 6 to 28), not the rescaled ones.
    assert 5 < table[f"prediction ({RADIUS})"].mean() < 30


def test_a_model_without_an_output_per_target_is_refused(tmp_path: Path) -> None:
    code = CODE.replace(
        "    for target, prediction_type in TARGETS.items():",
        '    for target, prediction_type in {"target": "binary"}.items():',
    )
    multi_output_job(tmp_path, code, epochs=1)
    result = run_runner(tmp_path)
    error = result.done["error"]
    assert result.done["status"] == "failed" and error["phase"] == "build_model"
    assert "2 targets" in error["message"] and "2 outputs" in error["message"]
    assert "'mean_radius' (regression)" in error["message"] and "1 output(s)" in error["message"]


def test_two_targets_with_one_output_name_are_refused_before_reading_data(tmp_path: Path) -> None:
    job = multi_output_job(tmp_path, CODE, epochs=1)
    job["targets"] = [*TARGETS, {"name": "mean_radius", "prediction_type": "regression", "classes": None}]
    (tmp_path / "job.json").write_text(json.dumps(job))
    result = run_runner(tmp_path)
    error = result.done["error"]
    assert result.done["status"] == "failed" and error["phase"] == "preprocessing"
    assert error["message"] == (
        "The targets 'mean radius' and 'mean_radius' would both be the model output 'mean_radius'; "
        "keep only one of them as a target."
    )
