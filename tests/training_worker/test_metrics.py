from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from training_worker.metrics import compute_metrics, metric_names

BINARY_TRUE = np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 0])
BINARY_PROBABILITY = np.array([0.1, 0.6, 0.8, 0.4, 0.2, 0.9, 0.3, 0.7, 0.55, 0.05])


def test_metric_names_follow_the_design_per_prediction_type() -> None:
    assert metric_names("regression") == ["EVS", "MAPE", "MAE", "MSE", "RMSE", "RMSLE", "R2 Score"]
    assert metric_names("binary") == [
        "Accuracy",
        "Precision",
        "Recall",
        "F1 Score",
        "Cost Matrix Gain",
        "Log Loss",
        "Cumulative Lift",
        "ROC AUC",
    ]
    assert metric_names("multiclass") == [
        "Accuracy",
        "Precision",
        "Recall",
        "F1 Score",
        "Log Loss",
        "ROC AUC",
    ]
    assert metric_names("binary", with_custom_score=True)[-1] == "Custom Score"
    with pytest.raises(ValueError, match="unknown prediction type"):
        metric_names("ranking")


def test_binary_metrics_match_sklearn_for_sigmoid_output() -> None:
    values = compute_metrics("binary", BINARY_TRUE, BINARY_PROBABILITY.reshape(-1, 1), n_classes=2)
    predicted = (BINARY_PROBABILITY >= 0.5).astype(int)
    assert values["Accuracy"] == pytest.approx(skm.accuracy_score(BINARY_TRUE, predicted))
    assert values["Precision"] == pytest.approx(skm.precision_score(BINARY_TRUE, predicted))
    assert values["Recall"] == pytest.approx(skm.recall_score(BINARY_TRUE, predicted))
    assert values["F1 Score"] == pytest.approx(skm.f1_score(BINARY_TRUE, predicted))
    assert values["Log Loss"] == pytest.approx(skm.log_loss(BINARY_TRUE, BINARY_PROBABILITY))
    assert values["ROC AUC"] == pytest.approx(skm.roc_auc_score(BINARY_TRUE, BINARY_PROBABILITY))
    assert list(values) == metric_names("binary")
    assert all(isinstance(value, float) for value in values.values())


def test_cost_matrix_gain_and_cumulative_lift_by_hand() -> None:
    values = compute_metrics("binary", BINARY_TRUE, BINARY_PROBABILITY, n_classes=2)
    # Threshold 0.5: TP = 3 (0.8, 0.9, 0.55), FP = 2 (0.6, 0.7), over 10 rows.
    assert values["Cost Matrix Gain"] == pytest.approx((3 * 1 + 2 * -0.3) / 10)
    # Top 40% = 4 rows by probability: 0.9 (1), 0.8 (1), 0.7 (0), 0.6 (0): rate 0.5 over overall 0.4.
    assert values["Cumulative Lift"] == pytest.approx(0.5 / 0.4)


def test_binary_softmax_output_reads_the_second_column_as_positive() -> None:
    softmax = np.column_stack([1 - BINARY_PROBABILITY, BINARY_PROBABILITY])
    assert compute_metrics("binary", BINARY_TRUE, softmax, 2) == compute_metrics(
        "binary", BINARY_TRUE, BINARY_PROBABILITY.reshape(-1, 1), 2
    )


def test_binary_roc_auc_is_none_when_the_sample_has_one_class() -> None:
    values = compute_metrics("binary", np.ones(4, dtype=int), np.array([0.2, 0.7, 0.9, 0.4]), 2)
    assert values["ROC AUC"] is None
    assert values["Accuracy"] == pytest.approx(0.5)


def test_multiclass_metrics_are_macro_averages_like_sklearn() -> None:
    rng = np.random.default_rng(0)
    y_true = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 2, 1, 1])
    probabilities = rng.dirichlet([1, 1, 1], size=len(y_true)).astype(np.float32)
    values = compute_metrics("multiclass", y_true, probabilities, n_classes=3)
    predicted = probabilities.argmax(axis=1)
    assert values["Accuracy"] == pytest.approx(skm.accuracy_score(y_true, predicted))
    assert values["Precision"] == pytest.approx(skm.precision_score(y_true, predicted, average="macro"))
    assert values["Recall"] == pytest.approx(skm.recall_score(y_true, predicted, average="macro"))
    assert values["F1 Score"] == pytest.approx(skm.f1_score(y_true, predicted, average="macro"))
    assert values["Log Loss"] == pytest.approx(skm.log_loss(y_true, probabilities), rel=1e-5)
    assert values["ROC AUC"] == pytest.approx(
        skm.roc_auc_score(y_true, probabilities, multi_class="ovr", average="macro"), rel=1e-6
    )


def test_multiclass_sample_missing_a_class_does_not_crash() -> None:
    y_true = np.array([0, 1, 0, 1])  # class 2 of 3 absent, as in a small batch
    probabilities = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.1, 0.3, 0.6]])
    values = compute_metrics("multiclass", y_true, probabilities, n_classes=3)
    assert values["Log Loss"] == pytest.approx(skm.log_loss(y_true, probabilities, labels=[0, 1, 2]))
    # Over the classes present: AUC of class 0 vs rest and class 1 vs rest.
    expected_auc = np.mean(
        [
            skm.roc_auc_score(y_true == 0, probabilities[:, 0]),
            skm.roc_auc_score(y_true == 1, probabilities[:, 1]),
        ]
    )
    assert values["ROC AUC"] == pytest.approx(expected_auc)


def test_regression_metrics_match_sklearn() -> None:
    y_true = np.array([3.0, 0.5, 2.0, 7.0, 4.2])
    y_pred = np.array([2.5, 0.7, 2.1, 7.8, 3.9]).reshape(-1, 1)  # a Dense(1) output
    values = compute_metrics("regression", y_true, y_pred, n_classes=1)
    flat = y_pred.ravel()
    assert values["EVS"] == pytest.approx(skm.explained_variance_score(y_true, flat))
    assert values["MAPE"] == pytest.approx(skm.mean_absolute_percentage_error(y_true, flat))
    assert values["MAE"] == pytest.approx(skm.mean_absolute_error(y_true, flat))
    assert values["MSE"] == pytest.approx(skm.mean_squared_error(y_true, flat))
    assert values["RMSE"] == pytest.approx(math.sqrt(skm.mean_squared_error(y_true, flat)))
    assert values["RMSLE"] == pytest.approx(math.sqrt(skm.mean_squared_log_error(y_true, flat)))
    assert values["R2 Score"] == pytest.approx(skm.r2_score(y_true, flat))


def test_rmsle_is_none_for_values_at_or_below_minus_one() -> None:
    values = compute_metrics("regression", np.array([-2.0, 1.0, 3.0]), np.array([-1.5, 1.2, 2.0]), 1)
    assert values["RMSLE"] is None
    assert values["MAE"] == pytest.approx(skm.mean_absolute_error([-2, 1, 3], [-1.5, 1.2, 2.0]))


def test_nan_output_gives_none_everywhere_instead_of_crashing() -> None:
    values = compute_metrics("binary", BINARY_TRUE, np.full(len(BINARY_TRUE), np.nan), 2)
    assert values == dict.fromkeys(metric_names("binary"))


def test_custom_score_hook_is_reported_only_when_given() -> None:
    assert "Custom Score" not in compute_metrics("binary", BINARY_TRUE, BINARY_PROBABILITY, 2)
    values = compute_metrics(
        "binary",
        BINARY_TRUE,
        BINARY_PROBABILITY,
        2,
        custom_score=lambda y_true, output: float(np.mean(output[y_true == 1])),
    )
    assert values["Custom Score"] == pytest.approx(np.mean(BINARY_PROBABILITY[BINARY_TRUE == 1]))


def test_multiclass_with_two_classes_reads_roc_auc_from_the_positive_column() -> None:
    # A softmax of 2 units for a two-class target, chosen as multiclass by the user.
    probabilities = np.column_stack([1 - BINARY_PROBABILITY, BINARY_PROBABILITY]).astype(np.float32)
    values = compute_metrics("multiclass", BINARY_TRUE, probabilities, n_classes=2)
    predicted = (BINARY_PROBABILITY >= 0.5).astype(int)
    assert list(values) == metric_names("multiclass")
    assert values["ROC AUC"] == pytest.approx(skm.roc_auc_score(BINARY_TRUE, BINARY_PROBABILITY))
    assert values["Accuracy"] == pytest.approx(skm.accuracy_score(BINARY_TRUE, predicted))
    assert values["Precision"] == pytest.approx(skm.precision_score(BINARY_TRUE, predicted, average="macro"))
    assert values["Recall"] == pytest.approx(skm.recall_score(BINARY_TRUE, predicted, average="macro"))
    assert values["F1 Score"] == pytest.approx(skm.f1_score(BINARY_TRUE, predicted, average="macro"))
    assert values["Log Loss"] == pytest.approx(skm.log_loss(BINARY_TRUE, BINARY_PROBABILITY), rel=1e-5)
    # The same scores as the binary prediction type where both define them.
    binary = compute_metrics("binary", BINARY_TRUE, probabilities, n_classes=2)
    assert values["ROC AUC"] == pytest.approx(binary["ROC AUC"])
    assert values["Log Loss"] == pytest.approx(binary["Log Loss"], rel=1e-5)


def test_multiclass_with_two_classes_and_one_class_in_the_sample() -> None:
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    values = compute_metrics("multiclass", np.zeros(3, dtype=int), probabilities, n_classes=2)
    assert values["ROC AUC"] is None
    assert values["Accuracy"] == pytest.approx(2 / 3)
