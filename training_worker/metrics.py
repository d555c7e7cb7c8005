"""The evaluation metrics shown for every epoch and for the final model, per prediction type.

Everything is computed with scikit-learn from the true targets (class indices, or values) and the
model's output (probabilities, or values in the target's own units: a rescaled regression target
is undone first, by ``Preprocessing.output_to_predictions``). Undefined values (a single class in the sample,
RMSLE on values <= -1, a model that output NaN) are ``None``, never an exception: metrics are a
view on training and must not stop it.

The Metrics settings of an ML task (``training["metrics"]``, see :func:`parse_metrics_settings`) set
the cost matrix of "Cost Matrix Gain", the fraction of rows "Cumulative Lift" looks at, and whether
the Training tab's ``score(y_valid, y_pred)`` is reported as "Custom Score".

This module must stay importable without TensorFlow (the web process lists metric names and checks
the Metrics settings with it).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

REGRESSION = "regression"
BINARY = "binary"
MULTICLASS = "multiclass"
PREDICTION_TYPES = (REGRESSION, BINARY, MULTICLASS)

REGRESSION_METRICS = ("EVS", "MAPE", "MAE", "MSE", "RMSE", "RMSLE", "R2 Score")
BINARY_METRICS = (
    "Accuracy",
    "Precision",
    "Recall",
    "F1 Score",
    "Cost Matrix Gain",
    "Log Loss",
    "Cumulative Lift",
    "ROC AUC",
)
MULTICLASS_METRICS = ("Accuracy", "Precision", "Recall", "F1 Score", "Log Loss", "ROC AUC")
CUSTOM_SCORE = "Custom Score"
# The optimization metric of a new ML task, by prediction type.
DEFAULT_METRICS = {REGRESSION: "R2 Score", BINARY: "ROC AUC", MULTICLASS: "ROC AUC"}

BINARY_THRESHOLD = 0.5
# The defaults of the Metrics settings. Dataiku DSS' default cost matrix: gain per true positive,
# true negative, false positive, false negative (per row, averaged over the rows).
COST_MATRIX = {"tp": 1.0, "tn": 0.0, "fp": -0.3, "fn": 0.0}
COST_MATRIX_CELLS = ("tp", "tn", "fp", "fn")
_CELL_NAMES = {"tp": "true positive", "tn": "true negative", "fp": "false positive", "fn": "false negative"}
# Cumulative Lift: the positive rate among this fraction of rows (highest probabilities first).
LIFT_TOP_FRACTION = 0.4
MAX_COST = 1e12  # a gain beyond any real use; keeps the value a finite float when averaged

# (y_true, model output) -> a score; the output is what metrics receive (probabilities, or values).
CustomScore = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class MetricsSettings:
    """The Metrics settings of an ML task, as the runner applies them."""

    cost_matrix: Mapping[str, float] = field(default_factory=lambda: dict(COST_MATRIX))
    lift_fraction: float = LIFT_TOP_FRACTION
    custom_score: bool = False  # report the Training tab's score(y_valid, y_pred) as "Custom Score"

    def as_json(self) -> dict[str, Any]:
        return {
            "cost_matrix": dict(self.cost_matrix),
            "lift_fraction": self.lift_fraction,
            "custom_score": self.custom_score,
        }


def default_metrics_settings() -> dict[str, Any]:
    """``training["metrics"]`` of a new ML task."""
    return MetricsSettings().as_json()


def parse_metrics_settings(value: Any, current: Mapping[str, Any] | None = None) -> MetricsSettings:
    """``training["metrics"]`` checked: ``{"cost_matrix": {"tp", "tn", "fp", "fn"}, "lift_fraction",
    "custom_score"}``. What ``value`` leaves out comes from ``current`` (the saved settings), then
    from the defaults; a partial ``cost_matrix`` changes only the cells it names.

    Raises ValueError with a message that names the setting (``training.metrics.…``) and what is
    accepted; the web turns it into a 400, the runner into a failed session.
    """
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(
            'training.metrics must be an object such as {"cost_matrix": {"tp": 1, "tn": 0, "fp": -0.3, '
            '"fn": 0}, "lift_fraction": 0.4, "custom_score": false}.'
        )
    current = current if isinstance(current, Mapping) else {}
    known = ("cost_matrix", "lift_fraction", "custom_score")
    unknown = [key for key in value if key not in known]
    if unknown:
        raise ValueError(
            f"training.metrics has no setting {unknown[0]!r}; the settings are {', '.join(known)}."
        )
    matrix = value.get("cost_matrix", {})
    if not isinstance(matrix, Mapping):
        raise ValueError(
            'training.metrics.cost_matrix must be an object such as {"tp": 1, "tn": 0, "fp": -0.3, "fn": 0}: '
            "the gain of each true positive, true negative, false positive and false negative."
        )
    unknown = [key for key in matrix if key not in COST_MATRIX_CELLS]
    if unknown:
        raise ValueError(
            f"training.metrics.cost_matrix has no cell {unknown[0]!r}; the cells are tp, tn, fp, fn "
            "(true positive, true negative, false positive, false negative)."
        )
    saved = current.get("cost_matrix")
    saved = {k: v for k, v in saved.items() if k in COST_MATRIX_CELLS} if isinstance(saved, Mapping) else {}
    cells = {**COST_MATRIX, **saved, **matrix}
    for cell in COST_MATRIX_CELLS:
        gain = cells[cell]
        # The range check also refuses NaN and infinities (JSON from elsewhere may hold them).
        if isinstance(gain, bool) or not isinstance(gain, int | float) or not -MAX_COST <= gain <= MAX_COST:
            raise ValueError(
                f"training.metrics.cost_matrix.{cell} must be a number from -1e12 to 1e12 (the gain of "
                f"each {_CELL_NAMES[cell]}, negative for a cost); got {gain!r}."
            )

    fraction = value.get("lift_fraction", current.get("lift_fraction", LIFT_TOP_FRACTION))
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise ValueError(
            "training.metrics.lift_fraction must be a number above 0 and at most 1 (the fraction of "
            f"rows, highest probabilities first, that Cumulative Lift looks at, e.g. 0.4); got {fraction!r}."
        )
    custom = value.get("custom_score", current.get("custom_score", False))
    if not isinstance(custom, bool):
        raise ValueError(
            "training.metrics.custom_score must be true (report the Training tab's score(y_valid, y_pred) "
            f'as "Custom Score") or false; got {custom!r}.'
        )
    return MetricsSettings(
        cost_matrix={cell: float(cells[cell]) for cell in COST_MATRIX_CELLS},
        lift_fraction=float(fraction),
        custom_score=custom,
    )


def custom_score_enabled(training: Any) -> bool:
    """Whether ``training["metrics"]["custom_score"]`` is on; False for anything malformed."""
    metrics = training.get("metrics") if isinstance(training, Mapping) else None
    return isinstance(metrics, Mapping) and metrics.get("custom_score") is True


def metric_names(prediction_type: str, with_custom_score: bool = False) -> list[str]:
    """The metric names, without the "Train "/"Test " prefix, in display order."""
    names = {REGRESSION: REGRESSION_METRICS, BINARY: BINARY_METRICS, MULTICLASS: MULTICLASS_METRICS}
    if prediction_type not in names:
        raise ValueError(f"unknown prediction type {prediction_type!r}; expected one of {PREDICTION_TYPES}")
    return [*names[prediction_type], *([CUSTOM_SCORE] if with_custom_score else [])]


# Errors and losses: lower is better; every other metric (scores, gains, lifts): higher is better.
LOWER_IS_BETTER = frozenset({"MAPE", "MAE", "MSE", "RMSE", "RMSLE", "Log Loss"})


def greater_is_better(metric: str) -> bool:
    """Whether a higher value of ``metric`` (a name of metric_names, maybe "Test "-prefixed) is better."""
    name = metric.removeprefix("Test ").removeprefix("Train ").split(" (")[0]
    return name not in LOWER_IS_BETTER


def positive_probability(output: np.ndarray) -> np.ndarray:
    """P(classes[1]) from a binary model's output: (n,), (n, 1) sigmoid or (n, 2) softmax."""
    output = np.asarray(output, dtype=np.float64)
    if output.ndim == 2 and output.shape[1] == 2:
        return output[:, 1]
    return output.reshape(len(output))


def class_probabilities(prediction_type: str, output: np.ndarray) -> np.ndarray:
    """One probability column per class, (n, n_classes), for binary and multiclass outputs."""
    if prediction_type == BINARY:
        positive = positive_probability(output)
        return np.column_stack([1.0 - positive, positive])
    return np.asarray(output, dtype=np.float64).reshape(len(output), -1)


def score_arguments(
    prediction_type: str, y_true: np.ndarray, output: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """What the Training tab's ``score(y_valid, y_pred)`` receives, whatever the output layer:
    classification: class indices (n,) and probabilities (n, n_classes), column k for classes[k]
    (a sigmoid's P(classes[1]) becomes two columns); regression: values (n,) and predictions (n,)
    in the target's units."""
    y_true = np.asarray(y_true).reshape(len(y_true))
    if prediction_type == REGRESSION:
        return y_true.astype(np.float64), np.asarray(output, dtype=np.float64).reshape(len(y_true))
    return y_true.astype(np.int64), class_probabilities(prediction_type, output)


def predicted_classes(prediction_type: str, output: np.ndarray) -> np.ndarray:
    """Class indices: binary thresholded at 0.5 on P(classes[1]), multiclass by arg-max."""
    if prediction_type == BINARY:
        return (positive_probability(output) >= BINARY_THRESHOLD).astype(np.int64)
    return np.argmax(class_probabilities(prediction_type, output), axis=1)


def compute_metrics(
    prediction_type: str,
    y_true: np.ndarray,
    output: np.ndarray,
    n_classes: int,
    custom_score: CustomScore | None = None,
    cost_matrix: Mapping[str, float] | None = None,
    lift_fraction: float | None = None,
) -> dict[str, float | None]:
    """All metrics for one set of rows.

    ``custom_score(y_true, output)`` adds "Custom Score" when given: ``y_true`` as here, flattened
    to (n,), ``output`` as given. An exception it raises propagates (the caller decides what a
    broken custom score means). ``cost_matrix`` (gains by "tp", "tn", "fp", "fn") and
    ``lift_fraction`` set Cost Matrix Gain and Cumulative Lift (binary); None: the defaults.
    """
    y_true = np.asarray(y_true).reshape(len(y_true))
    output = np.asarray(output)
    names = metric_names(prediction_type, with_custom_score=custom_score is not None)
    if len(y_true) == 0 or not np.all(np.isfinite(output)):
        # A diverged model (NaN weights) or an empty sample: nothing is defined, nothing crashes.
        return dict.fromkeys(names)

    if prediction_type == REGRESSION:
        computers = _regression_metrics(y_true.astype(np.float64), output)
    elif prediction_type == BINARY:
        computers = _binary_metrics(
            y_true.astype(np.int64),
            output,
            COST_MATRIX if cost_matrix is None else cost_matrix,
            LIFT_TOP_FRACTION if lift_fraction is None else lift_fraction,
        )
    else:
        computers = _multiclass_metrics(y_true.astype(np.int64), output, n_classes)
    if custom_score is not None:
        computers[CUSTOM_SCORE] = lambda: custom_score(y_true, output)

    with warnings.catch_warnings():
        # sklearn warns on every undefined value (e.g. one class in a batch); we report None instead.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return {name: _finite(computers[name]()) for name in names}


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _regression_metrics(y_true: np.ndarray, output: np.ndarray) -> dict[str, Callable[[], Any]]:
    y_pred = np.asarray(output, dtype=np.float64).reshape(len(y_true))

    def rmsle() -> float | None:
        # log1p is only defined above -1: undefined rather than an exception for such targets.
        if min(y_true.min(), y_pred.min()) <= -1:
            return None
        return skm.root_mean_squared_log_error(y_true, y_pred)

    return {
        "EVS": lambda: skm.explained_variance_score(y_true, y_pred),
        "MAPE": lambda: skm.mean_absolute_percentage_error(y_true, y_pred),
        "MAE": lambda: skm.mean_absolute_error(y_true, y_pred),
        "MSE": lambda: skm.mean_squared_error(y_true, y_pred),
        "RMSE": lambda: skm.root_mean_squared_error(y_true, y_pred),
        "RMSLE": rmsle,
        "R2 Score": lambda: skm.r2_score(y_true, y_pred) if len(y_true) > 1 else None,
    }


def _binary_metrics(
    y_true: np.ndarray, output: np.ndarray, cost_matrix: Mapping[str, float], lift_fraction: float
) -> dict[str, Callable[[], Any]]:
    probability = positive_probability(output)
    y_pred = (probability >= BINARY_THRESHOLD).astype(np.int64)
    both_classes = len(np.unique(y_true)) == 2
    return {
        "Accuracy": lambda: skm.accuracy_score(y_true, y_pred),
        "Precision": lambda: skm.precision_score(y_true, y_pred, labels=[0, 1], zero_division=0),
        "Recall": lambda: skm.recall_score(y_true, y_pred, labels=[0, 1], zero_division=0),
        "F1 Score": lambda: skm.f1_score(y_true, y_pred, labels=[0, 1], zero_division=0),
        "Cost Matrix Gain": lambda: cost_matrix_gain(y_true, y_pred, cost_matrix),
        "Log Loss": lambda: skm.log_loss(y_true, np.clip(probability, 1e-7, 1 - 1e-7), labels=[0, 1]),
        "Cumulative Lift": lambda: cumulative_lift(y_true, probability, lift_fraction),
        "ROC AUC": lambda: skm.roc_auc_score(y_true, probability) if both_classes else None,
    }


def _multiclass_metrics(
    y_true: np.ndarray, output: np.ndarray, n_classes: int
) -> dict[str, Callable[[], Any]]:
    probabilities = np.clip(class_probabilities(MULTICLASS, output), 1e-7, 1.0)
    # Renormalised because float32 softmax rows can miss 1.0 by more than log_loss tolerates.
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    y_pred = np.argmax(probabilities, axis=1)
    labels = list(range(n_classes))
    return {
        "Accuracy": lambda: skm.accuracy_score(y_true, y_pred),
        "Precision": lambda: skm.precision_score(
            y_true, y_pred, labels=labels, average="macro", zero_division=0
        ),
        "Recall": lambda: skm.recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "F1 Score": lambda: skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "Log Loss": lambda: skm.log_loss(y_true, probabilities, labels=labels),
        "ROC AUC": lambda: multiclass_roc_auc(y_true, probabilities, n_classes),
    }


def cost_matrix_gain(
    y_true: np.ndarray, y_pred: np.ndarray, cost_matrix: Mapping[str, float] = COST_MATRIX
) -> float:
    """Average gain per row under ``cost_matrix`` (classes as 0/1 indices, 1 positive)."""
    counts = {
        "tp": np.sum((y_true == 1) & (y_pred == 1)),
        "tn": np.sum((y_true == 0) & (y_pred == 0)),
        "fp": np.sum((y_true == 0) & (y_pred == 1)),
        "fn": np.sum((y_true == 1) & (y_pred == 0)),
    }
    gain = sum(float(cost_matrix[cell]) * float(count) for cell, count in counts.items())
    return gain / len(y_true)


def cumulative_lift(
    y_true: np.ndarray, probability: np.ndarray, top: float = LIFT_TOP_FRACTION
) -> float | None:
    """Positive rate among the top ``top`` fraction of rows by probability, over the overall rate."""
    overall_rate = float(np.mean(y_true == 1))
    if overall_rate == 0:
        return None
    n_top = max(1, math.ceil(top * len(y_true)))
    # A stable sort keeps ties in row order, so the value is reproducible.
    order = np.argsort(-probability, kind="stable")[:n_top]
    return float(np.mean(y_true[order] == 1)) / overall_rate


def multiclass_roc_auc(y_true: np.ndarray, probabilities: np.ndarray, n_classes: int) -> float | None:
    """One-vs-rest macro ROC AUC; with classes missing from the sample, over the classes present.

    Two classes (a softmax of 2 units): the ROC AUC of the positive column, as for binary; the
    one-vs-rest AUCs of both columns are then the same number.
    """
    present = [k for k in range(n_classes) if 0 < np.sum(y_true == k) < len(y_true)]
    if n_classes == 2:
        # sklearn reads a 2-class y_true as binary and refuses a (n, 2) score array.
        return skm.roc_auc_score(y_true, probabilities[:, 1]) if present else None
    if len(present) == n_classes:
        return skm.roc_auc_score(
            y_true, probabilities, multi_class="ovr", average="macro", labels=list(range(n_classes))
        )
    if not present:
        return None
    return float(np.mean([skm.roc_auc_score(y_true == k, probabilities[:, k]) for k in present]))


def prefixed(prefix: str, values: dict[str, float | None]) -> dict[str, float | None]:
    """{"ROC AUC": 0.9} -> {"Test ROC AUC": 0.9}."""
    return {f"{prefix} {name}": value for name, value in values.items()}


def outputs_by_name(output_names: list[str], output: Any) -> dict[str, np.ndarray]:
    """A multi-output model's ``predict`` result (a dict, or a list in output order) by output name."""
    if isinstance(output, dict):
        return {name: np.asarray(value) for name, value in output.items()}
    if isinstance(output, list | tuple):
        return {name: np.asarray(value) for name, value in zip(output_names, output, strict=True)}
    return {output_names[0]: np.asarray(output)}


def for_output(target: str, values: dict[str, float | None]) -> dict[str, float | None]:
    """{"Test ROC AUC": 0.9} -> {"Test ROC AUC (churn)": 0.9}, for one output of a multi-output model."""
    return {f"{name} ({target})": value for name, value in values.items()}
