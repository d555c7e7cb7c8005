"""Devices and seeds: the multi-device path (MirroredStrategy) on two logical CPU devices, and the
same seed, code and data giving the same metrics."""

from __future__ import annotations

import pytest

from tests.training_worker.conftest import RunResult, run_jobs

RUNS = {
    "two_devices": {
        "training": {"mode": "standard", "epochs": 2, "batch_size": 32, "runtime": {"cpu_devices": 2}}
    },
    "first": {"training": {"mode": "standard", "epochs": 2, "batch_size": 32}},
    "again": {"training": {"mode": "standard", "epochs": 2, "batch_size": 32}},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    return run_jobs(tmp_path_factory.mktemp("devices"), "breast_cancer", RUNS)


def test_two_devices_train_under_a_mirrored_strategy(runs: dict[str, RunResult]) -> None:
    run = runs["two_devices"]
    assert run.done["status"] == "succeeded", run.done["error"]
    assert (
        "Keras backend tensorflow: MirroredStrategy over 2 devices (/device:CPU:0, /device:CPU:1)" in run.logs
    )
    assert run.done["final_metrics"]["Test ROC AUC"] >= 0.95, run.done
    assert "Keras backend tensorflow: one device" in runs["first"].logs


def test_same_seed_code_and_data_give_the_same_metrics(runs: dict[str, RunResult]) -> None:
    first, again = ([event["values"] for event in runs[name].of_type("epoch")] for name in ("first", "again"))
    assert len(first) == 2
    for values, repeated in zip(first, again, strict=True):
        assert {k: v for k, v in values.items()} == repeated  # exactly, every metric and the loss
    assert runs["first"].done["final_metrics"] == runs["again"].done["final_metrics"]
