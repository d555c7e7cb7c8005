"""The evaluation metrics shown for every epoch and for the final model, per prediction type.

Everything is computed with scikit-learn from the true targets (class indices, or values) and the
model's output (probabilities, or values in the target's own units: a rescaled regression target
is undone first, by ``Preprocessing.output_to_predictions``). Undefined values (a single class in the sample,
RMSLE on values <= -1, a model that output NaN) are ``None``, never an exception: metrics are a
view on training and must not stop it.

This module must stay importable without TensorFlow (the web process lists metric names).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
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
# Dataiku DSS' default cost matrix: gain per true positive, true negative, false positive, false negative.
COST_MATRIX = {"tp": 1.0, "tn": 0.0, "fp": -0.3, "fn": 0.0}
LIFT_TOP_FRACTION = 0.4

# (y_true, model output) -> a score; the output is what metrics receive (probabilities, or values).
CustomScore = Callable[[np.ndarray, np.ndarray], float]


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
) -> dict[str, float | None]:
    """All metrics for one set of rows; ``custom_score`` adds "Custom Score" when given."""
    y_true = np.asarray(y_true).reshape(len(y_true))
    output = np.asarray(output)
    names = metric_names(prediction_type, with_custom_score=custom_score is not None)
    if len(y_true) == 0 or not np.all(np.isfinite(output)):
        # A diverged model (NaN weights) or an empty sample: nothing is defined, nothing crashes.
        return dict.fromkeys(names)

    if prediction_type == REGRESSION:
        computers = _regression_metrics(y_true.astype(np.float64), output)
    elif prediction_type == BINARY:
        computers = _binary_metrics(y_true.astype(np.int64), output)
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


def _binary_metrics(y_true: np.ndarray, output: np.ndarray) -> dict[str, Callable[[], Any]]:
    probability = positive_probability(output)
    y_pred = (probability >= BINARY_THRESHOLD).astype(np.int64)
    both_classes = len(np.unique(y_true)) == 2
    return {
        "Accuracy": lambda: skm.accuracy_score(y_true, y_pred),
        "Precision": lambda: skm.precision_score(y_true, y_pred, labels=[0, 1], zero_division=0),
        "Recall": lambda: skm.recall_score(y_true, y_pred, labels=[0, 1], zero_division=0),
        "F1 Score": lambda: skm.f1_score(y_true, y_pred, labels=[0, 1], zero_division=0),
        "Cost Matrix Gain": lambda: cost_matrix_gain(y_true, y_pred),
        "Log Loss": lambda: skm.log_loss(y_true, np.clip(probability, 1e-7, 1 - 1e-7), labels=[0, 1]),
        "Cumulative Lift": lambda: cumulative_lift(y_true, probability),
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


def cost_matrix_gain(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Average gain per row under COST_MATRIX (classes as 0/1 indices, 1 positive)."""
    tp = np.sum((y_true == 1) & (y_pred == 1))
    tn = np.sum((y_true == 0) & (y_pred == 0))
    fp = np.sum((y_true == 0) & (y_pred == 1))
    fn = np.sum((y_true == 1) & (y_pred == 0))
    gain = COST_MATRIX["tp"] * tp + COST_MATRIX["tn"] * tn + COST_MATRIX["fp"] * fp + COST_MATRIX["fn"] * fn
    return float(gain / len(y_true))


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
