"""The model report's numbers for one target, from its test-set predictions (numpy + scikit-learn).

No Django and no TensorFlow: :mod:`analyses.reports` reads ``predictions.csv`` and hands each
target's columns here. Everything is deterministic (stable sorts, a seeded sample), so the same
predictions always give the same report, and every value is a JSON-safe Python number (NaN and
infinities become None).

Conventions, said once: a binary row is predicted positive (``classes[1]``, the column the runner's
metrics call positive) when its probability is **>= the threshold**, as the runner's 0.5 does;
a regression error is **prediction − actual** (positive: the model over-predicts).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from training_worker.metrics import COST_MATRIX, LIFT_TOP_FRACTION

THRESHOLDS = [round(step / 100, 2) for step in range(101)]  # 0.00 … 1.00: the slider's positions
DEFAULT_THRESHOLD = 0.5  # what the runner's metrics and predictions.csv use
MAX_CURVE_POINTS = 300
LIFT_FRACTIONS = [round(step / 100, 2) for step in range(1, 101)]
DENSITY_BINS = 40
RESIDUAL_BINS = 40
MAX_SCATTER_POINTS = 2_000
SCATTER_SEED = 0
DECILES = 10
DIGITS = 6  # curve coordinates: enough for any chart, and a smaller answer
# Binary metrics that depend on the threshold; the others (ROC AUC, Log Loss, Cumulative Lift,
# Custom Score) rank rows by probability and say nothing about where to cut.
THRESHOLD_METRICS = ("Accuracy", "Precision", "Recall", "F1 Score", "Cost Matrix Gain")
FALLBACK_THRESHOLD_METRIC = "F1 Score"


def binary_report(
    y: np.ndarray,
    probability: np.ndarray,
    classes: list[str],
    metric: str | None = None,
    cost_matrix: Mapping[str, float] | None = None,
    lift_fraction: float | None = None,
) -> dict[str, Any]:
    """``y``: 1 for ``classes[1]``, 0 for ``classes[0]``; ``probability``: P(classes[1]).

    Confusion counts at every threshold of :data:`THRESHOLDS`, the threshold that maximises the
    optimization metric (or a stand-in when that metric ignores the threshold, see
    :func:`threshold_metric`), ROC and PR curves, the cumulative lift curve and the predicted
    probability densities per actual class.
    """
    y = np.asarray(y, dtype=np.int64)
    probability = np.asarray(probability, dtype=np.float64)
    gains = {**COST_MATRIX, **(cost_matrix or {})}
    counts = threshold_counts(y, probability)
    chosen, reason = threshold_metric(metric, cost_matrix)
    values = threshold_metric_values(counts, chosen, gains)
    best = _best_index(values)
    both_classes = 0 < int(y.sum()) < len(y)
    return {
        "classes": list(classes),
        "negative_class": classes[0],
        "positive_class": classes[1],
        "rows": len(y),
        "positives": int(y.sum()),
        "thresholds": THRESHOLDS,
        "default_threshold": DEFAULT_THRESHOLD,
        "counts": counts,
        "cost_matrix": {cell: float(gains[cell]) for cell in ("tp", "tn", "fp", "fn")},
        "best_threshold": {
            "threshold": THRESHOLDS[best] if best is not None else None,
            "index": best,
            "metric": chosen,
            "value": _number(values[best]) if best is not None else None,
            "reason": reason,
        },
        "roc": roc(y, probability) if both_classes else None,
        "pr": precision_recall(y, probability) if both_classes else None,
        "lift": lift_curve(y, probability, LIFT_TOP_FRACTION if lift_fraction is None else lift_fraction),
        "density": densities(y, probability, classes),
        "note": None
        if both_classes
        else "The test set holds one class only: ROC and PR curves are undefined.",
    }


def threshold_counts(y: np.ndarray, probability: np.ndarray) -> dict[str, list[int]]:
    """tp / fp / tn / fn at every threshold: a row is predicted positive when probability >= it."""
    positives = np.sort(probability[y == 1])
    negatives = np.sort(probability[y == 0])
    cuts = np.asarray(THRESHOLDS, dtype=np.float64)
    # Rows at or above a threshold: all of them minus those strictly below it.
    tp = len(positives) - np.searchsorted(positives, cuts, side="left")
    fp = len(negatives) - np.searchsorted(negatives, cuts, side="left")
    return {
        "tp": [int(v) for v in tp],
        "fp": [int(v) for v in fp],
        "tn": [int(len(negatives) - v) for v in fp],
        "fn": [int(len(positives) - v) for v in tp],
    }


def threshold_metric(metric: str | None, cost_matrix: Mapping[str, float] | None) -> tuple[str, str]:
    """The metric the best threshold maximises, and why that one.

    The optimization metric when it depends on the threshold; otherwise Cost Matrix Gain when the
    ML task set its own cost matrix (what a row is worth is then known), else F1 Score.
    """
    if metric in THRESHOLD_METRICS:
        return metric, f"the optimization metric ({metric})"
    custom_matrix = cost_matrix is not None and any(
        float(cost_matrix.get(cell, COST_MATRIX[cell])) != COST_MATRIX[cell] for cell in COST_MATRIX
    )
    about = f"the optimization metric ({metric}) does not depend on the threshold" if metric else "no metric"
    if custom_matrix:
        return "Cost Matrix Gain", f"{about}; the ML task's cost matrix says what each row is worth"
    return FALLBACK_THRESHOLD_METRIC, f"{about}; F1 Score balances precision and recall"


def threshold_metric_values(
    counts: Mapping[str, list[int]], metric: str, gains: Mapping[str, float]
) -> np.ndarray:
    """``metric`` at every threshold, from the counts (undefined ratios are 0, as scikit-learn's
    ``zero_division=0``)."""
    tp, fp, tn, fn = (np.asarray(counts[cell], dtype=np.float64) for cell in ("tp", "fp", "tn", "fn"))
    rows = tp + fp + tn + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "Accuracy":
            values = (tp + tn) / rows
        elif metric == "Precision":
            values = tp / (tp + fp)
        elif metric == "Recall":
            values = tp / (tp + fn)
        elif metric == "F1 Score":
            values = 2 * tp / (2 * tp + fp + fn)
        elif metric == "Cost Matrix Gain":
            values = (tp * gains["tp"] + tn * gains["tn"] + fp * gains["fp"] + fn * gains["fn"]) / rows
        else:
            raise ValueError(f"{metric!r} does not depend on the threshold")
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def _best_index(values: np.ndarray) -> int | None:
    """The highest value; among ties, the threshold nearest the default 0.5 (then the lower)."""
    if len(values) == 0:
        return None
    best = float(np.max(values))
    tied = [i for i, value in enumerate(values) if value >= best - 1e-12]
    return min(tied, key=lambda i: (abs(THRESHOLDS[i] - DEFAULT_THRESHOLD), THRESHOLDS[i]))


def roc(y: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """The ROC curve (at most :data:`MAX_CURVE_POINTS` points) and the AUC of all rows."""
    fpr, tpr, _ = skm.roc_curve(y, score)
    keep = downsample(len(fpr))
    return {"fpr": _floats(fpr[keep]), "tpr": _floats(tpr[keep]), "auc": _number(skm.roc_auc_score(y, score))}


def precision_recall(y: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """The precision-recall curve by increasing recall, the average precision, and the positive
    rate (the precision of a model that guesses)."""
    precision, recall, _ = skm.precision_recall_curve(y, score)
    precision, recall = precision[::-1], recall[::-1]
    keep = downsample(len(recall))
    return {
        "recall": _floats(recall[keep]),
        "precision": _floats(precision[keep]),
        "average_precision": _number(skm.average_precision_score(y, score)),
        "baseline": _number(np.mean(y)),
    }


def lift_curve(y: np.ndarray, probability: np.ndarray, fraction: float) -> dict[str, Any]:
    """Cumulative lift and gain by fraction of rows taken, highest probabilities first.

    Lift: the positive rate among the rows taken over the overall rate (1 = no better than
    chance); gain: the share of all positives they hold. ``at_fraction`` is the Cumulative Lift
    metric's own value (its fraction from the Metrics settings).
    """
    rate = float(np.mean(y == 1)) if len(y) else 0.0
    if rate == 0:
        return {"fractions": [], "lift": [], "gain": [], "fraction": fraction, "at_fraction": None}
    # Stable: ties keep row order, as training_worker.metrics.cumulative_lift does.
    hits = np.cumsum(y[np.argsort(-probability, kind="stable")] == 1)
    positives = hits[-1]

    def taken(share: float) -> int:
        return max(1, math.ceil(share * len(y)))

    lift = [float(hits[taken(f) - 1]) / taken(f) / rate for f in LIFT_FRACTIONS]
    gain = [float(hits[taken(f) - 1]) / positives for f in LIFT_FRACTIONS]
    at_fraction = float(hits[taken(fraction) - 1]) / taken(fraction) / rate
    return {
        "fractions": LIFT_FRACTIONS,
        "lift": _floats(lift),
        "gain": _floats(gain),
        "fraction": fraction,
        "at_fraction": _number(at_fraction),
    }


def densities(y: np.ndarray, probability: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Histograms of P(positive) per actual class over [0, 1] (:data:`DENSITY_BINS` bins), as
    counts and as densities (each class' area is 1, so a small class stays visible)."""
    edges = np.linspace(0.0, 1.0, DENSITY_BINS + 1)
    width = 1.0 / DENSITY_BINS
    series = []
    for index, label in enumerate(classes):
        values = probability[y == index]
        counts, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=edges)
        density = counts / (len(values) * width) if len(values) else np.zeros(DENSITY_BINS)
        series.append(
            {"class": label, "rows": len(values), "counts": _ints(counts), "density": _floats(density)}
        )
    return {"edges": _floats(edges), "centers": _floats((edges[:-1] + edges[1:]) / 2), "classes": series}


def multiclass_report(
    y: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """Confusion matrix (rows: actual, columns: predicted, both in class order) and one-vs-rest
    ROC curves per class. ``y`` and ``predicted`` are class indices into ``classes``."""
    from training_worker.metrics import multiclass_roc_auc

    labels = list(range(len(classes)))
    matrix = skm.confusion_matrix(y, predicted, labels=labels)
    per_class = []
    for index, label in enumerate(classes):
        is_class = (y == index).astype(np.int64)
        support = int(is_class.sum())
        curve = roc(is_class, probabilities[:, index]) if 0 < support < len(y) else None
        per_class.append({"class": label, "support": support, "roc": curve})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        macro = multiclass_roc_auc(y, probabilities, len(classes))
    return {
        "classes": list(classes),
        "rows": len(y),
        "confusion": [[int(v) for v in row] for row in matrix],
        "accuracy": _number(np.mean(y == predicted)) if len(y) else None,
        "per_class": per_class,
        "macro_auc": _number(macro),
    }


def regression_report(actual: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Predicted vs actual (a seeded sample of at most :data:`MAX_SCATTER_POINTS` rows, by
    increasing actual), the histogram of errors, and the error by decile of the actual value."""
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    errors = predicted - actual
    rows = len(actual)
    sample = np.arange(rows)
    if rows > MAX_SCATTER_POINTS:
        sample = np.sort(np.random.default_rng(SCATTER_SEED).choice(rows, MAX_SCATTER_POINTS, replace=False))
    sample = sample[np.argsort(actual[sample], kind="stable")]
    counts, edges = np.histogram(errors, bins=RESIDUAL_BINS) if rows else (np.zeros(0), np.zeros(0))
    return {
        "rows": rows,
        "scatter": {
            "actual": _floats(actual[sample]),
            "predicted": _floats(predicted[sample]),
            "sampled": rows > len(sample),
            "seed": SCATTER_SEED,
        },
        "residuals": {"edges": _floats(edges), "counts": _ints(counts)},
        "deciles": error_by_decile(actual, predicted),
        "mae": _number(np.mean(np.abs(errors))) if rows else None,
        "mean_error": _number(np.mean(errors)) if rows else None,
    }


def error_by_decile(actual: np.ndarray, predicted: np.ndarray) -> list[dict[str, Any]]:
    """Rows ranked by actual value (stable) and cut into :data:`DECILES` groups of (nearly) equal
    size: per group its range of actual values, mean absolute error and mean error."""
    order = np.argsort(actual, kind="stable")
    groups = [group for group in np.array_split(order, DECILES) if len(group)]
    deciles = []
    for number, group in enumerate(groups, start=1):
        errors = predicted[group] - actual[group]
        deciles.append(
            {
                "decile": number,
                "rows": len(group),
                "actual_min": _number(actual[group].min()),
                "actual_max": _number(actual[group].max()),
                "mae": _number(np.mean(np.abs(errors))),
                "mean_error": _number(np.mean(errors)),
            }
        )
    return deciles


def downsample(length: int, limit: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` evenly spread points, the first and last always kept."""
    if length <= limit:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, limit)).astype(np.int64))


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _floats(values: Any) -> list[float | None]:
    return [
        round(float(v), DIGITS) if math.isfinite(float(v)) else None for v in np.asarray(values, dtype=float)
    ]


def _ints(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values)]
