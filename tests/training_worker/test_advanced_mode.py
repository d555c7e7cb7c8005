"""Advanced mode and the user API, through the real runner: the seed documents' code, as written
(apart from the module they import from), on scikit-learn's breast cancer data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.training_worker.conftest import RunResult, run_jobs, run_runner, write_job
from training_worker.defaults import DEFAULT_TRAINING_CODE, default_architecture_code

# DSS "Advanced topics": early stopping on the optimization metric, after the base callbacks, with
# Keras 2's fit_generator and its worker arguments. min_delta=1 can never be met: it stops after
# 1 + patience epochs.
EARLY_STOPPING_CODE = """\
from keras.callbacks import EarlyStopping
from training_worker.user_api import get_variable


def build_sequence(build_train_sequence_with_batch_size, build_validation_sequence_with_batch_size):
    batch_size = 16
    train_sequence = build_train_sequence_with_batch_size(batch_size)
    validation_sequence = build_validation_sequence_with_batch_size(batch_size)
    return train_sequence, validation_sequence


def fit_model(model, train_sequence, validation_sequence, base_callbacks):
    metric = get_variable("DKU_MODEL_METRIC")
    greater_is_better = get_variable("DKU_MODEL_METRIC_GREATER_IS_BETTER")
    print("monitoring", metric, "greater is better:", greater_is_better, "team:", get_variable("team"))
    early_stopping = EarlyStopping(
        monitor=metric, mode="max" if greater_is_better else "min", patience=1, min_delta=1.0
    )
    model.fit_generator(
        train_sequence,
        epochs=20,
        callbacks=base_callbacks + [early_stopping],
        validation_data=validation_sequence,
        workers=2,
        use_multiprocessing=False,
    )
"""

# Augmentation: every row twice, noise added to one input by a home-made augmentator.
AUGMENTATION_CODE = """\
class Noise:
    def random_transform(self, x, seed=None):
        return x + np.random.default_rng(seed).normal(0, 0.05, x.shape).astype(x.dtype)


def build_sequence(build_train_sequence_with_batch_size, build_validation_sequence_with_batch_size):
    train_sequence = build_train_sequence_with_batch_size(16)
    augmented = DataAugmentationSequence(train_sequence, "main", Noise(), n_augmentation=2)
    first_x, first_y = augmented[0]
    print("augmented batch", first_x.shape, first_y.shape)
    return augmented, build_validation_sequence_with_batch_size(16)


def fit_model(model, train_sequence, validation_sequence, base_callbacks):
    model.fit(train_sequence, epochs=2, callbacks=base_callbacks)
"""

# Transfer: start from a previous session's model and its weights.
TRANSFER_CODE = """\
def build_model(input_shapes, n_classes):
    print("location", get_keras_model_location_from_trained_model(session_id=7).rsplit("/", 1)[-1])
    previous = get_keras_model_from_trained_model()  # the latest of this ML task
    model = keras.models.clone_model(previous)
    model.set_weights(previous.get_weights())
    return model


def compile_model(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="binary_crossentropy")
    return model
"""

NOT_A_PAIR_CODE = """\
def build_sequence(build_train_sequence_with_batch_size, build_validation_sequence_with_batch_size):
    return build_train_sequence_with_batch_size(32)


def fit_model(model, train_sequence, validation_sequence, base_callbacks):
    model.fit(train_sequence, callbacks=base_callbacks)
"""


def advanced(code: str, **training: Any) -> dict[str, Any]:
    return {"mode": "advanced", "epochs": 3, "batch_size": 32, "code": code} | training


RUNS: dict[str, dict[str, Any]] = {
    "default_advanced": {"training": advanced(DEFAULT_TRAINING_CODE.replace("epochs = 10", "epochs = 2"))},
    "early_stopping": {"training": advanced(EARLY_STOPPING_CODE), "variables": {"team": "risk"}},
    "augmentation": {"training": advanced(AUGMENTATION_CODE)},
    "not_a_pair": {"training": advanced(NOT_A_PAIR_CODE)},
    "no_code_early_stopping": {
        "training": {
            "mode": "standard",
            "epochs": 30,
            "batch_size": 32,
            "early_stopping": {"enabled": True, "patience": 2, "min_delta": 1.0},
        }
    },
    "keep_last": {"training": {"mode": "standard", "epochs": 3, "batch_size": 32, "keep": "last"}},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    return run_jobs(tmp_path_factory.mktemp("advanced"), "breast_cancer", RUNS)


def test_default_advanced_code_trains_like_the_standard_mode(runs: dict[str, RunResult]) -> None:
    run = runs["default_advanced"]
    assert run.done["status"] == "succeeded", run.done["error"]
    assert run.phases == [
        "preprocessing",
        "build_model",
        "compile_model",
        "build_sequence",
        "fit",
        "evaluate",
        "predict",
        "save",
    ]
    assert [e["epoch"] for e in run.of_type("epoch")] == [1, 2]
    assert run.of_type("progress")[-1]["epochs"] == 2  # the code decides the epochs, the page shows them
    assert run.done["final_metrics"]["Test ROC AUC"] >= 0.95


def test_early_stopping_on_the_optimization_metric_after_base_callbacks(runs: dict[str, RunResult]) -> None:
    run = runs["early_stopping"]
    assert run.done["status"] == "succeeded", run.done["error"]
    assert "monitoring Test ROC AUC greater is better: True team: risk" in run.logs
    epochs = run.of_type("epoch")
    assert [e["epoch"] for e in epochs] == [1, 2]  # stopped: no improvement of 1.0 within 1 epoch
    assert "val_loss" in epochs[0]["values"] and "Test ROC AUC" in epochs[0]["values"]
    assert run.of_type("progress")[-1]["epochs"] == 20
    (kept,) = run.of_type("kept")
    best = max(epochs, key=lambda e: e["values"]["Test ROC AUC"])
    assert kept == {
        "type": "kept",
        "epoch": best["epoch"],
        "metric": "Test ROC AUC",
        "value": pytest.approx(best["values"]["Test ROC AUC"]),
        "keep": "best",
    }
    # The model saved is the kept epoch's: its final metrics are that epoch's.
    assert run.done["final_metrics"]["Test ROC AUC"] == pytest.approx(best["values"]["Test ROC AUC"])


def test_data_augmentation_sequence_multiplies_the_batches(runs: dict[str, RunResult]) -> None:
    run = runs["augmentation"]
    assert run.done["status"] == "succeeded", run.done["error"]
    assert "augmented batch (32, 30) (32,)" in run.logs
    assert run.of_type("progress")[-1]["of"] == 29  # 455 rows in batches of 16: the count stays
    assert run.done["final_metrics"]["Test ROC AUC"] >= 0.9


def test_build_sequence_must_return_a_pair(runs: dict[str, RunResult]) -> None:
    error = runs["not_a_pair"].done["error"]
    assert error["phase"] == "build_sequence" and error["tab"] == "training" and error["line"] == 1
    assert error["message"].startswith("build_sequence returned ArraySequence; it must return a pair")


def test_no_code_early_stopping_and_the_best_epoch(runs: dict[str, RunResult]) -> None:
    run = runs["no_code_early_stopping"]
    epochs = run.of_type("epoch")
    assert [e["epoch"] for e in epochs] == [1, 2, 3]  # patience 2, min delta 1: never improves
    (kept,) = run.of_type("kept")
    assert (
        kept["keep"] == "best"
        and kept["epoch"] == max(epochs, key=lambda e: e["values"]["Test ROC AUC"])["epoch"]
    )


def test_keep_last_keeps_the_last_epoch(runs: dict[str, RunResult]) -> None:
    run = runs["keep_last"]
    (kept,) = run.of_type("kept")
    last = run.of_type("epoch")[-1]
    assert kept["epoch"] == 3 and kept["keep"] == "last"
    assert run.done["final_metrics"]["Test ROC AUC"] == pytest.approx(last["values"]["Test ROC AUC"])


def test_transfer_from_a_previous_sessions_model(runs: dict[str, RunResult], tmp_path: Path) -> None:
    previous = runs["default_advanced"].workdir / "output" / "model.keras"
    job = write_job(
        tmp_path,
        "breast_cancer",
        architecture_code=TRANSFER_CODE,
        training={"mode": "standard", "epochs": 1, "batch_size": 32},
        mltask_id=3,
        trained_models=[
            {"session_id": 7, "analysis_id": 2, "mltask_id": 3, "path": "trained_models/7.keras"},
            {"session_id": 5, "analysis_id": 2, "mltask_id": 9, "path": "trained_models/5.keras"},
        ],
    )
    (tmp_path / "trained_models").mkdir()
    shutil.copyfile(previous, tmp_path / "trained_models" / "7.keras")
    (tmp_path / "job.json").write_text(json.dumps(job))
    run = run_runner(tmp_path)
    assert run.done["status"] == "succeeded", run.done["error"]
    assert "location 7.keras" in run.logs
    # A learning rate of 1e-5 for one epoch: the score is the previous model's, not a fresh one's.
    assert run.done["final_metrics"]["Test ROC AUC"] >= 0.95


def test_unknown_variable_and_missing_model_are_explained(tmp_path: Path) -> None:
    code = default_architecture_code("binary").replace(
        "def compile_model(model):", 'get_variable("threshold")\n\n\ndef compile_model(model):'
    )
    write_job(tmp_path, "breast_cancer", architecture_code=code, variables={"team": "risk"})
    error = run_runner(tmp_path).done["error"]
    assert error["tab"] == "architecture" and error["phase"] == "build_model"
    assert (
        "No variable 'threshold'. Known variables: DKU_MODEL_METRIC, DKU_MODEL_METRIC_GREATER_IS_BETTER, team"
        in (error["message"])
    )
