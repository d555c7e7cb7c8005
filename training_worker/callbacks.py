"""The runner's base callbacks, passed to user code as ``base_callbacks``.

In this order, because each relies on the ones before it:

1. :class:`MetricsCallback` writes ``Train X`` / ``Test X`` into Keras' ``logs`` at each epoch end,
   so any callback placed after it (the user's ``EarlyStopping(monitor="Test ROC AUC")``, the
   History, our epoch event) sees them. They are in the target's own units; Keras' ``loss`` next
   to them is on what the model is fit on (a rescaled regression target, see preprocessing).
   The Metrics settings apply here: the cost matrix, the lift fraction, and the Training tab's
   ``score(y_valid, y_pred)`` as "Custom Score" (see :func:`checked_score`).
2. :class:`KeepBestCallback` keeps the best epoch's weights by the optimization metric (and the
   no-code ``EarlyStopping`` of the Training tab, when on), reading this epoch's metrics.
3. :class:`TensorBoardCallback` writes every epoch's log values (so the metrics above too) as
   TensorBoard scalars under ``output/tensorboard``.
4. :class:`InterruptCallback` stops training at the end of the current batch once the supervisor
   asked for it (Keras' TF trainer checks ``stop_training`` after every batch).
5. :class:`ProgressCallback` emits throttled ``progress`` events (with the epochs planned, which
   advanced-mode code decides).
6. :class:`EpochEventCallback` emits the ``epoch`` event with every log value.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from training_worker.events import clean_values
from training_worker.metrics import (
    CustomScore,
    compute_metrics,
    for_output,
    outputs_by_name,
    prefixed,
    score_arguments,
)
from training_worker.sequences import predict
from training_worker.usercode import UserCodeError, compile_tab, describe_exception, execute_tab

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


SCORE_EXPECTED = (
    "score(y_valid, y_pred) gets numpy arrays: y_valid the true targets, shape (n,) (class indices "
    "0 to n_classes - 1 for classification, values for regression), and y_pred the predictions "
    "(probabilities of shape (n, n_classes) for classification, values of shape (n,) in the "
    "target's units for regression); it returns one number, higher meaning better."
)


def checked_score(score: CustomScore, phase: str, prediction_type: str) -> CustomScore:
    """The Training tab's ``score(y_valid, y_pred)`` as :func:`compute_metrics` calls it, with the
    arrays of :func:`~training_worker.metrics.score_arguments` (the same shapes whatever the output
    layer: a sigmoid's probabilities come as two columns).

    A broken custom score fails the session rather than silently dropping the metric: an exception
    becomes a UserCodeError at the user's line of the Training tab (in ``phase``: "fit" at an epoch
    end), and so does a result that is not one number. NaN is accepted (undefined, like sklearn's).
    """

    def call(y_true: np.ndarray, output: np.ndarray) -> float:
        y_valid, y_pred = score_arguments(prediction_type, y_true, output)
        try:
            value = score(y_valid, y_pred)
        except (Exception, SystemExit) as exc:
            raise describe_exception(
                exc, phase, "The Training tab's score(y_valid, y_pred) (Custom Score) raised", SCORE_EXPECTED
            ) from exc
        number = _one_number(value)
        if number is None:
            code = getattr(score, "__code__", None)
            line = code.co_firstlineno if code is not None else None
            shown = f"{type(value).__name__}" + (
                f" of shape {tuple(np.shape(value))}" if isinstance(value, np.ndarray) else f" {value!r}"[:80]
            )
            raise UserCodeError(
                phase=phase,
                tab="training",
                line=line,
                message=(
                    f"score(y_valid, y_pred) (Custom Score) must return one number; it returned {shown}. "
                    f"{SCORE_EXPECTED}\nFix score at line {line} of the Training tab and train again."
                ),
            )
        return number

    return call


def training_tab_score(code: str, bindings: dict[str, Any]) -> CustomScore:
    """The Training tab's ``score(y_valid, y_pred)``, for the Metrics settings' "Custom Score".

    Runs the tab's code (the same text advanced mode runs; in standard mode only for this) and
    refuses a missing ``score`` with the fix. Errors are phase "fit", reported before any epoch.
    """
    namespace = execute_tab(compile_tab(code, "training", "fit"), "training", "fit", bindings)
    score = namespace.get("score")
    if not callable(score):
        found = "no such name" if score is None else f"a {type(score).__name__}"
        raise UserCodeError(
            phase="fit",
            tab="training",
            message=(
                'The Metrics settings turn on "Custom Score", so the Training tab must define a function '
                f"score(y_valid, y_pred); found {found}. {SCORE_EXPECTED} For example:\n"
                "def score(y_valid, y_pred):\n"
                "    return float(np.mean(np.argmax(y_pred, axis=1) == y_valid))  # accuracy\n"
                "    # regression, minus the mean absolute error: -float(np.mean(np.abs(y_valid - y_pred)))\n"
                "Add it to the Training tab, or turn Custom Score off in the Metrics settings."
            ),
        )
    return score


def _one_number(value: Any) -> float | None:
    """A Python or numpy number, or a one-element array or tensor, as a float; None for anything else."""
    if value is None or isinstance(value, bool | str | bytes):
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return float(array.reshape(())) if array.size == 1 else None


class MetricsCallback(keras.callbacks.Callback):
    """Computes every metric on Train (a fixed sample) and Test at each epoch end, into ``logs``.

    ``train`` and ``test`` hold targets in their own units; ``to_predictions`` turns the model's
    output into predictions in those units (undoing a regression target's rescaling).
    ``custom_score`` (the Training tab's ``score``) adds "Custom Score", called with the targets
    and the predictions compute_metrics receives; ``cost_matrix`` and ``lift_fraction`` are the
    Metrics settings of Cost Matrix Gain and Cumulative Lift (None: the defaults).
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
        cost_matrix: Mapping[str, float] | None = None,
        lift_fraction: float | None = None,
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
        self.cost_matrix = cost_matrix
        self.lift_fraction = lift_fraction

    def _settings(self, phase: str, prediction_type: str) -> dict[str, Any]:
        """compute_metrics' keyword arguments from the Metrics settings; a custom score's errors
        are reported in ``phase``."""
        score = (
            None if self.custom_score is None else checked_score(self.custom_score, phase, prediction_type)
        )
        return {"custom_score": score, "cost_matrix": self.cost_matrix, "lift_fraction": self.lift_fraction}

    def evaluate(self, model: keras.Model | None = None, phase: str = "evaluate") -> dict[str, float | None]:
        """``Train X`` and ``Test X`` for the model as it is now (also used for the final metrics)."""
        model = model or self.model
        settings = self._settings(phase, self.prediction_type)
        values: dict[str, float | None] = {}
        for prefix, (inputs, y_true) in (("Train", self.train), ("Test", self.test)):
            output = predict(model, inputs, self.batch_size)
            if self.to_predictions is not None:
                output = self.to_predictions(output)
            values |= prefixed(
                prefix, compute_metrics(self.prediction_type, y_true, output, self.n_classes, **settings)
            )
        return values

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        # In place: Keras hands the same dict to every later callback. NaN (not None) for undefined
        # values, because callbacks comparing numbers (EarlyStopping, ModelCheckpoint) expect floats.
        for name, value in self.evaluate(phase="fit").items():
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
    ``Test X (target)``, every metric of each target's type. Targets are dicts by output name.

    The cost matrix and lift fraction apply to every binary target; the custom score to the first
    target only (``Test Custom Score (<first target>)``), with that target's true values and output.
    """

    def __init__(
        self,
        heads: list[OutputHead],
        train: tuple[Inputs, Mapping[str, np.ndarray]],
        test: tuple[Inputs, Mapping[str, np.ndarray]],
        batch_size: int,
        train_metrics_sample: int = 10_000,
        seed: int = 1337,
        custom_score: CustomScore | None = None,
        cost_matrix: Mapping[str, float] | None = None,
        lift_fraction: float | None = None,
    ) -> None:
        keras.callbacks.Callback.__init__(self)
        self.heads = heads
        train_inputs, train_y = train
        rows = sample_rows(len(train_y[heads[0].output]), train_metrics_sample, seed)
        self.train = (take_rows(train_inputs, rows), {name: y[rows] for name, y in train_y.items()})
        self.test = test
        self.batch_size = predict_batch_size(test[0], batch_size)
        self.custom_score = custom_score
        self.cost_matrix = cost_matrix
        self.lift_fraction = lift_fraction

    def evaluate(self, model: keras.Model | None = None, phase: str = "evaluate") -> dict[str, float | None]:
        model = model or self.model
        settings = self._settings(phase, self.heads[0].prediction_type)
        values: dict[str, float | None] = {}
        for prefix, (inputs, y_true) in (("Train", self.train), ("Test", self.test)):
            outputs = outputs_by_name(list(model.output_names), predict(model, inputs, self.batch_size))
            for position, head in enumerate(self.heads):
                output = outputs[head.output]
                if head.to_predictions is not None:
                    output = head.to_predictions(output)
                metrics = compute_metrics(
                    head.prediction_type,
                    y_true[head.output],
                    output,
                    head.n_classes,
                    **(settings if position == 0 else settings | {"custom_score": None}),
                )
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
        self.last_weights: list[np.ndarray] | None = None  # set when the kept epoch is not the last
        self.last_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last_epoch = epoch + 1
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

    def resume_from(self, epoch: int, value: float | None, weights: list[np.ndarray]) -> None:
        """Continuing a session: its kept epoch stays the one to beat, with that epoch's weights."""
        self.best_epoch, self.best_value, self.best_weights = epoch, value, weights

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.keep == "best" and self.best_weights is not None:
            if self.best_epoch != self.last_epoch:  # what a continued session starts from
                self.last_weights = self.model.get_weights()
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


class TensorBoardCallback(keras.callbacks.Callback):
    """TensorBoard event files under ``log_dir``: every epoch's log values as scalars, step = the
    1-based epoch as the page shows it. ``Train X`` goes to the run ``train`` and ``Test X`` to the
    run ``test``, both as the tag ``X``, so TensorBoard draws them in one chart; Keras' own values
    (``loss``, compiled metrics) go to ``train`` and their ``val_`` versions to ``test``.

    Keras' ``TensorBoard`` callback writes through ``tf.summary.scalar``, which TensorFlow only
    implements when the separate ``tensorboard`` package is installed (TensorFlow no longer depends
    on it; without it Keras' callback raises at the first epoch). This writes the same scalar
    summaries with TensorFlow's own ``tf.summary.write``, so only viewing needs ``tensorboard``.
    Low overhead: epoch ends only (nothing per batch), no histograms, graph or profiling. Logs are
    a view on training: a failure to write them is said once on stderr and turns them off.
    """

    RUNS = {"Train ": "train", "Test ": "test", "val_": "test"}

    def __init__(self, log_dir: str | Path) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self.writers: dict[str, Any] | None = None
        self.disabled = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.writers is not None or self.disabled:
            return
        try:
            import tensorflow as tf
            from tensorflow.core.framework import summary_pb2

            self.tf = tf
            self.metadata = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
                data_class=summary_pb2.DATA_CLASS_SCALAR,
            )
            with tf.device("/cpu:0"):
                self.writers = {
                    run: tf.summary.create_file_writer(str(self.log_dir / run)) for run in ("train", "test")
                }
        except Exception as exc:
            self._disable(exc)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.writers is None:
            return
        try:
            by_run: dict[str, dict[str, float]] = {"train": {}, "test": {}}
            for name, value in (logs or {}).items():
                number = _one_number(value)
                if number is None:
                    continue
                prefix = next((p for p in self.RUNS if name.startswith(p)), None)
                run = self.RUNS[prefix] if prefix else "train"
                by_run[run][name.removeprefix(prefix) if prefix else name] = number
            with self.tf.device("/cpu:0"):
                for run, values in by_run.items():
                    writer = self.writers[run]
                    with writer.as_default():
                        for tag, number in values.items():
                            self.tf.summary.write(
                                tag,
                                self.tf.constant(number, self.tf.float32),
                                step=epoch + 1,
                                metadata=self.metadata,
                            )
                    writer.flush()  # an epoch's values are on disk as soon as the epoch ends
        except Exception as exc:
            self._disable(exc)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        writers, self.writers = self.writers, None
        for writer in (writers or {}).values():
            try:
                writer.close()
            except Exception as exc:
                self._disable(exc)

    def _disable(self, exc: BaseException) -> None:
        if not self.disabled:
            print(
                f"TensorBoard logs are off for this session: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
        self.disabled = True
        self.writers = None


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
    cost_matrix: Mapping[str, float] | None = None,
    lift_fraction: float | None = None,
    tensorboard_dir: str | Path | None = None,
    after_metrics: Sequence[keras.callbacks.Callback] = (),
) -> list[keras.callbacks.Callback]:
    """The runner's callbacks, in the order the module docstring explains; ``after_metrics`` (best
    epoch keeping, early stopping) right after the metrics, so they see this epoch's values.
    ``tensorboard_dir``: where TensorBoard event files go (None: none are written)."""
    metrics = MetricsCallback(
        prediction_type,
        n_classes,
        train,
        test,
        batch_size,
        train_metrics_sample=train_metrics_sample,
        seed=seed,
        custom_score=custom_score,
        to_predictions=to_predictions,
        cost_matrix=cost_matrix,
        lift_fraction=lift_fraction,
    )
    return _in_order(metrics, emit, interrupt, after_metrics, tensorboard_dir)


def _in_order(
    metrics: keras.callbacks.Callback,
    emit: Emit,
    interrupt: threading.Event,
    after_metrics: Sequence[keras.callbacks.Callback],
    tensorboard_dir: str | Path | None,
) -> list[keras.callbacks.Callback]:
    """The base callbacks around a metrics callback, in the module docstring's order."""
    tensorboard = [TensorBoardCallback(tensorboard_dir)] if tensorboard_dir is not None else []
    return [
        metrics,
        *after_metrics,
        *tensorboard,
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
    custom_score: CustomScore | None = None,
    cost_matrix: Mapping[str, float] | None = None,
    lift_fraction: float | None = None,
    tensorboard_dir: str | Path | None = None,
    after_metrics: Sequence[keras.callbacks.Callback] = (),
) -> list[keras.callbacks.Callback]:
    """:func:`base_callbacks` for a multi-output model: metrics per output (the custom score on the
    first target only)."""
    metrics = MultiOutputMetricsCallback(
        heads,
        train,
        test,
        batch_size,
        train_metrics_sample=train_metrics_sample,
        seed=seed,
        custom_score=custom_score,
        cost_matrix=cost_matrix,
        lift_fraction=lift_fraction,
    )
    return _in_order(metrics, emit, interrupt, after_metrics, tensorboard_dir)
