from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np

from training_worker.callbacks import (
    EpochEventCallback,
    InterruptCallback,
    ProgressCallback,
    sample_rows,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def attached(callback: Any, steps: int | None) -> Any:
    callback.set_model(SimpleNamespace(stop_training=False))
    callback.set_params({"epochs": 2, "steps": steps, "verbose": 0})
    return callback


def test_progress_is_throttled_to_five_per_second_plus_each_epochs_last_batch() -> None:
    sent: list[dict[str, Any]] = []
    clock = FakeClock()
    progress = attached(ProgressCallback(sent.append, clock=clock), steps=100)
    progress.on_epoch_begin(0)
    for batch in range(100):  # 100 batches in one second
        clock.now = batch / 100
        progress.on_train_batch_end(batch)
    batches = [event["batch"] for event in sent]
    sent_at = [(batch - 1) / 100 for batch in batches[:-1]]
    assert batches[0] == 1 and len(batches) == 6
    assert all(later - earlier >= 0.2 - 1e-9 for earlier, later in zip(sent_at, sent_at[1:], strict=False))
    assert sent[-1] == {"type": "progress", "epoch": 1, "batch": 100, "of": 100, "epochs": 2}


def test_interrupt_sets_stop_training_and_marks_the_cut_epoch_partial() -> None:
    interrupt = threading.Event()
    sent: list[dict[str, Any]] = []
    stop = attached(InterruptCallback(interrupt), steps=10)
    epochs = attached(EpochEventCallback(sent.append, interrupt), steps=10)
    epochs.set_model(stop.model)
    for epoch, last_batch in ((0, 10), (1, 4)):
        epochs.on_epoch_begin(epoch)
        for batch in range(last_batch):
            if (epoch, batch) == (1, 3):
                interrupt.set()
            stop.on_train_batch_end(batch)
            epochs.on_train_batch_end(batch)
        epochs.on_epoch_end(epoch, {"loss": np.float32(0.5), "Test ROC AUC": float("nan")})
    assert stop.model.stop_training
    assert [(event["epoch"], event.get("partial", False)) for event in sent] == [(1, False), (2, True)]
    assert sent[0]["values"] == {"loss": 0.5, "Test ROC AUC": None}


def test_train_sample_is_fixed_and_at_most_the_requested_size() -> None:
    first, second = sample_rows(1000, 100, seed=7), sample_rows(1000, 100, seed=7)
    assert len(first) == 100 and np.array_equal(first, second) and np.all(np.diff(first) > 0)
    assert np.array_equal(sample_rows(50, 100, seed=7), np.arange(50))


def test_metrics_are_computed_on_predictions_in_the_targets_units() -> None:
    from training_worker.callbacks import MetricsCallback

    y = np.array([100.0, 200.0, 300.0])
    scaled_output = ((y - 200) / 100).reshape(-1, 1)  # a perfect model of the rescaled target
    model = SimpleNamespace(predict=lambda inputs, **_: scaled_output)
    callback = MetricsCallback(
        "regression",
        1,
        train=(np.zeros((3, 1)), y),
        test=(np.zeros((3, 1)), y),
        batch_size=2,
        to_predictions=lambda output: output.reshape(-1) * 100 + 200,
    )
    values = callback.evaluate(model)
    assert values["Test MAE"] == 0 and values["Train R2 Score"] == 1
