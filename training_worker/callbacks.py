"""The runner's base callbacks, passed to user code as ``base_callbacks``.

In this order, because each relies on the ones before it:

1. :class:`MetricsCallback` writes ``Train X`` / ``Test X`` into Keras' ``logs`` at each epoch end,
   so any callback placed after it (the user's ``EarlyStopping(monitor="Test ROC AUC")``, the
   History, our epoch event) sees them. They are in the target's own units; Keras' ``loss`` next
   to them is on what the model is fit on (a rescaled regression target, see preprocessing).
2. :class:`KeepBestCallback` keeps the best epoch's weights by the optimization metric (and the
   no-code ``EarlyStopping`` of the Training tab, when on), reading this epoch's metrics.
3. :class:`InterruptCallback` stops training at the end of the current batch once the supervisor
   asked for it (Keras' TF trainer checks ``stop_training`` after every batch).
4. :class:`ProgressCallback` emits throttled ``progress`` events (with the epochs planned, which
   advanced-mode code decides).
5. :class:`EpochEventCallback` emits the ``epoch`` event with every log value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from training_worker.events import clean_values
from training_worker.metrics import CustomScore, compute_metrics, for_output, outputs_by_name, prefixed
from training_worker.sequences import predict

Emit = Callable[[dict[str, Any]], None]
Inputs = np.ndarray | Mapping[str, np.ndarray]
ToPredictions = Callable[[np.ndarray], np.ndarray]  # Preprocessing.output_to_predictions

MAX_PROGRESS_PER_SECOND = 5


def take_rows(inputs: Inputs, rows: np.ndarray) -> Inputs:
    """Copies of the rows in RAM (also from memory-mapped arrays)."""
    if isinstance(inputs, Mapping):
        return {name: np.asarray(array[rows]) for name, array in inputs.items()}
    return np.asarray(inputs[rows])


def sample_rows(n_rows: int, max_rows: int, seed: int) -> np.ndarray:
    """A fixed sample of row positions (in order), so every epoch's Train metrics use the same rows."""
    if n_rows <= max_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=max_rows, replace=False))


PREDICT_BATCH_BYTES = 32 * 2**20
MAX_PREDICT_BATCH = 8192


def predict_batch_size(inputs: Inputs, training_batch_size: int) -> int:
    """Rows per predict step for the metric passes: the training batch size at least, more when rows
    are small. Per-step overhead dominates predict on small tabular rows (a 1.5x epoch with the
    training batch size), while the input of one step stays within PREDICT_BATCH_BYTES."""
    arrays = inputs.values() if isinstance(inputs, Mapping) else [inputs]
    row_bytes = sum(int(np.prod(a.shape[1:], dtype=np.int64)) * a.dtype.itemsize for a in arrays) or 1
    return max(training_batch_size, min(MAX_PREDICT_BATCH, PREDICT_BATCH_BYTES // row_bytes))


class MetricsCallback(keras.callbacks.Callback):
    """Computes every metric on Train (a fixed sample) and Test at each epoch end, into ``logs``.

    ``train`` and ``test`` hold targets in their own units; ``to_predictions`` turns the model's
    output into predictions in those units (undoing a regression target's rescaling).
    """

    def __init__(
        self,
        prediction_type: str,
        n_classes: int,
        train: tuple[Inputs, np.ndarray],
        test: tuple[Inputs, np.ndarray],
        batch_size: int,
        train_metrics_sample: int = 10_000,
        seed: int = 1337,
        custom_score: CustomScore | None = None,
        to_predictions: ToPredictions | None = None,
    ) -> None:
        super().__init__()
        self.prediction_type = prediction_type
        self.n_classes = n_classes
        train_inputs, train_y = train
        rows = sample_rows(len(train_y), train_metrics_sample, seed)
        self.train = (take_rows(train_inputs, rows), train_y[rows])
        self.test = test
        self.batch_size = predict_batch_size(test[0], batch_size)
        self.custom_score = custom_score
        self.to_predictions = to_predictions

    def evaluate(self, model: keras.Model | None = None) -> dict[str, float | None]:
        """``Train X`` and ``Test X`` for the model as it is now (also used for the final metrics)."""
        model = model or self.model
        values: dict[str, float | None] = {}
        for prefix, (inputs, y_true) in (("Train", self.train), ("Test", self.test)):
            output = predict(model, inputs, self.batch_size)
            if self.to_predictions is not None:
                output = self.to_predictions(output)
            values |= prefixed(
                prefix,
                compute_metrics(self.prediction_type, y_true, output, self.n_classes, self.custom_score),
            )
        return values

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        # In place: Keras hands the same dict to every later callback. NaN (not None) for undefined
        # values, because callbacks comparing numbers (EarlyStopping, ModelCheckpoint) expect floats.
        for name, value in self.evaluate().items():
            logs[name] = float("nan") if value is None else value


@dataclass(frozen=True)
class OutputHead:
    """One output of a multi-output model: its target, output name, type and decoding."""

    name: str  # the target, as metric names show it: "Test R2 Score (mean radius)"
    output: str  # the model output's name, e.g. "mean_radius" (defaults.output_name)
    prediction_type: str
    n_classes: int
    to_predictions: ToPredictions | None = None


class MultiOutputMetricsCallback(MetricsCallback):
    """:class:`MetricsCallback` for a model with one output per target: ``Train X (target)`` and
    ``Test X (target)``, every metric of each target's type. Targets are dicts by output name."""

    def __init__(
        self,
        heads: list[OutputHead],
        train: tuple[Inputs, Mapping[str, np.ndarray]],
        test: tuple[Inputs, Mapping[str, np.ndarray]],
        batch_size: int,
        train_metrics_sample: int = 10_000,
        seed: int = 1337,
    ) -> None:
        keras.callbacks.Callback.__init__(self)
        self.heads = heads
        train_inputs, train_y = train
        rows = sample_rows(len(train_y[heads[0].output]), train_metrics_sample, seed)
        self.train = (take_rows(train_inputs, rows), {name: y[rows] for name, y in train_y.items()})
        self.test = test
        self.batch_size = predict_batch_size(test[0], batch_size)

    def evaluate(self, model: keras.Model | None = None) -> dict[str, float | None]:
        model = model or self.model
        values: dict[str, float | None] = {}
        for prefix, (inputs, y_true) in (("Train", self.train), ("Test", self.test)):
            outputs = outputs_by_name(list(model.output_names), predict(model, inputs, self.batch_size))
            for head in self.heads:
                output = outputs[head.output]
                if head.to_predictions is not None:
                    output = head.to_predictions(output)
                metrics = compute_metrics(head.prediction_type, y_true[head.output], output, head.n_classes)
                values |= for_output(head.name, prefixed(prefix, metrics))
        return values


class KeepBestCallback(keras.callbacks.Callback):
    """Keeps the weights of the best epoch by ``monitor`` (a log name such as "Test ROC AUC"), and
    restores them when training ends (also when interrupted or stopped early): the model saved is
    the one the optimization metric prefers. ``keep="last"`` keeps the last epoch's weights.

    ``best_epoch`` (1-based) is the epoch whose weights the model will have; a ``kept`` event tells
    the page. An epoch whose value is NaN (undefined) never counts as better.
    """

    def __init__(self, emit: Emit, monitor: str, greater_is_better: bool, keep: str = "best") -> None:
        super().__init__()
        if keep not in ("best", "last"):
            raise ValueError(f'keep must be "best" or "last"; got {keep!r}')
        self.emit, self.monitor, self.greater, self.keep = emit, monitor, greater_is_better, keep
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        value = None if value is None or value != value else float(value)  # NaN: undefined
        if self.keep == "last":
            self.best_epoch, self.best_value = epoch + 1, value
        elif value is not None and (
            self.best_value is None or (value > self.best_value if self.greater else value < self.best_value)
        ):
            self.best_epoch, self.best_value = epoch + 1, value
            self.best_weights = [np.array(w, copy=True) for w in self.model.get_weights()]
        elif self.best_value is None:  # nothing measurable yet: the latest weights are the kept ones
            self.best_epoch = epoch + 1

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.keep == "best" and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            self.best_weights = None
        if self.best_epoch is not None:
            self.emit(
                {
                    "type": "kept",
                    "epoch": self.best_epoch,
                    "metric": self.monitor,
                    "value": self.best_value,
                    "keep": self.keep,
                }
            )


class InterruptCallback(keras.callbacks.Callback):
    """Stops training at the end of the current batch once ``interrupt`` is set."""

    def __init__(self, interrupt: threading.Event) -> None:
        super().__init__()
        self.interrupt = interrupt

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.interrupt.is_set():
            self.model.stop_training = True


class ProgressCallback(keras.callbacks.Callback):
    """``progress`` events: at most MAX_PROGRESS_PER_SECOND, plus each epoch's last batch and the stop."""

    def __init__(self, emit: Emit, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.emit = emit
        self.clock = clock
        self.epoch = 0
        self.last_sent = float("-inf")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        steps = self.params.get("steps")
        done = batch + 1
        now = self.clock()
        # Always the last batch of an epoch, and the batch where training stops (interrupt runs first).
        stopping = bool(getattr(self.model, "stop_training", False))
        if done == steps or stopping or now - self.last_sent >= 1 / MAX_PROGRESS_PER_SECOND:
            self.last_sent = now
            self.emit(
                {
                    "type": "progress",
                    "epoch": self.epoch,
                    "batch": done,
                    "of": steps or done,
                    "epochs": self.params.get("epochs"),
                }
            )


class EpochEventCallback(keras.callbacks.Callback):
    """The ``epoch`` event: every log value (Keras' own and Train/Test metrics), 1-based epoch.

    An epoch cut short by an interrupt is marked ``"partial": true``: its values describe the model
    after fewer batches than a full epoch.
    """

    def __init__(self, emit: Emit, interrupt: threading.Event) -> None:
        super().__init__()
        self.emit = emit
        self.interrupt = interrupt
        self.started = 0.0
        self.batches_done = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.started = time.monotonic()
        self.batches_done = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.batches_done = batch + 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        event: dict[str, Any] = {
            "type": "epoch",
            "epoch": epoch + 1,
            "seconds": round(time.monotonic() - self.started, 3),
            "values": clean_values(dict(logs or {})),
        }
        steps = self.params.get("steps")
        if self.interrupt.is_set() and (steps is None or self.batches_done < steps):
            event["partial"] = True
        self.emit(event)


def base_callbacks(
    *,
    emit: Emit,
    interrupt: threading.Event,
    prediction_type: str,
    n_classes: int,
    train: tuple[Inputs, np.ndarray],
    test: tuple[Inputs, np.ndarray],
    batch_size: int,
    train_metrics_sample: int,
    seed: int,
    custom_score: CustomScore | None = None,
    to_predictions: ToPredictions | None = None,
    after_metrics: Sequence[keras.callbacks.Callback] = (),
) -> list[keras.callbacks.Callback]:
    """The runner's callbacks, in the order the module docstring explains; ``after_metrics`` (best
    epoch keeping, early stopping) right after the metrics, so they see this epoch's values."""
    return [
        MetricsCallback(
            prediction_type,
            n_classes,
            train,
            test,
            batch_size,
            train_metrics_sample=train_metrics_sample,
            seed=seed,
            custom_score=custom_score,
            to_predictions=to_predictions,
        ),
        *after_metrics,
        InterruptCallback(interrupt),
        ProgressCallback(emit),
        EpochEventCallback(emit, interrupt),
    ]


def multi_output_callbacks(
    *,
    emit: Emit,
    interrupt: threading.Event,
    heads: list[OutputHead],
    train: tuple[Inputs, Mapping[str, np.ndarray]],
    test: tuple[Inputs, Mapping[str, np.ndarray]],
    batch_size: int,
    train_metrics_sample: int,
    seed: int,
    after_metrics: Sequence[keras.callbacks.Callback] = (),
) -> list[keras.callbacks.Callback]:
    """:func:`base_callbacks` for a multi-output model: metrics per output."""
    return [
        MultiOutputMetricsCallback(
            heads, train, test, batch_size, train_metrics_sample=train_metrics_sample, seed=seed
        ),
        *after_metrics,
        InterruptCallback(interrupt),
        ProgressCallback(emit),
        EpochEventCallback(emit, interrupt),
    ]
