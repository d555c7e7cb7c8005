from __future__ import annotations

import math
import re

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


# ------------------------------------------------------------------ the Metrics settings


def test_a_custom_cost_matrix_gives_the_hand_computed_gain() -> None:
    # Threshold 0.5 on BINARY_PROBABILITY: TP = 3 (0.8, 0.9, 0.55), TN = 4 (0.1, 0.2, 0.3, 0.05),
    # FP = 2 (0.6, 0.7), FN = 1 (0.4), over 10 rows.
    matrix = {"tp": 2.0, "tn": 0.5, "fp": -1.0, "fn": -3.0}
    values = compute_metrics("binary", BINARY_TRUE, BINARY_PROBABILITY, 2, cost_matrix=matrix)
    assert values["Cost Matrix Gain"] == pytest.approx((3 * 2.0 + 4 * 0.5 + 2 * -1.0 + 1 * -3.0) / 10)
    # Only the gain changes: every other metric is the default computation's.
    default = compute_metrics("binary", BINARY_TRUE, BINARY_PROBABILITY, 2)
    assert {k: v for k, v in values.items() if k != "Cost Matrix Gain"} == {
        k: v for k, v in default.items() if k != "Cost Matrix Gain"
    }


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        # Rows by probability: 0.9 (1), 0.8 (1), 0.7 (0), 0.6 (0), 0.55 (1), 0.4 (1), 0.3 (0), ...
        # overall positive rate 4 / 10.
        (0.2, (2 / 2) / 0.4),  # top 2 rows: both positive
        (0.5, (3 / 5) / 0.4),  # top 5 rows: 0.9, 0.8, 0.55 positive
        (0.25, (2 / 3) / 0.4),  # ceil(2.5) = 3 rows: 0.9, 0.8 positive, 0.7 not
        (1.0, 1.0),  # every row: the overall rate itself
    ],
)
def test_cumulative_lift_at_a_chosen_fraction_by_hand(fraction: float, expected: float) -> None:
    values = compute_metrics("binary", BINARY_TRUE, BINARY_PROBABILITY, 2, lift_fraction=fraction)
    assert values["Cumulative Lift"] == pytest.approx(expected)


def test_metrics_settings_default_and_merge_with_the_saved_ones() -> None:
    from training_worker.metrics import default_metrics_settings, parse_metrics_settings

    assert default_metrics_settings() == {
        "cost_matrix": {"tp": 1.0, "tn": 0.0, "fp": -0.3, "fn": 0.0},
        "lift_fraction": 0.4,
        "custom_score": False,
    }
    assert parse_metrics_settings(None).as_json() == default_metrics_settings()
    saved = {"cost_matrix": {"tp": 5, "tn": 0, "fp": -1, "fn": 0}, "lift_fraction": 0.1, "custom_score": True}
    edited = parse_metrics_settings({"cost_matrix": {"fn": -2}, "lift_fraction": 1}, saved)
    assert edited.as_json() == {
        "cost_matrix": {"tp": 5.0, "tn": 0.0, "fp": -1.0, "fn": -2.0},
        "lift_fraction": 1.0,
        "custom_score": True,
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 2], "training.metrics must be an object"),
        ({"threshold": 0.5}, "training.metrics has no setting 'threshold'"),
        ({"cost_matrix": 3}, "training.metrics.cost_matrix must be an object"),
        ({"cost_matrix": {"tp": 1, "gain": 2}}, "training.metrics.cost_matrix has no cell 'gain'"),
        ({"cost_matrix": {"fp": "-0.3"}}, "training.metrics.cost_matrix.fp must be a number"),
        ({"cost_matrix": {"tn": True}}, "training.metrics.cost_matrix.tn must be a number"),
        ({"cost_matrix": {"tp": float("nan")}}, "training.metrics.cost_matrix.tp must be a number"),
        ({"cost_matrix": {"fn": 1e13}}, "training.metrics.cost_matrix.fn must be a number from -1e12"),
        ({"lift_fraction": 0}, "training.metrics.lift_fraction must be a number above 0 and at most 1"),
        ({"lift_fraction": 1.5}, "training.metrics.lift_fraction must be a number above 0 and at most 1"),
        ({"lift_fraction": "0.4"}, "training.metrics.lift_fraction must be a number"),
        ({"custom_score": "yes"}, "training.metrics.custom_score must be true"),
    ],
)
def test_bad_metrics_settings_are_refused_with_the_setting_named(value: object, message: str) -> None:
    from training_worker.metrics import parse_metrics_settings

    with pytest.raises(ValueError, match=re.escape(message)):
        parse_metrics_settings(value)


def test_score_arguments_have_one_shape_whatever_the_output_layer() -> None:
    from training_worker.metrics import score_arguments

    sigmoid = BINARY_PROBABILITY.reshape(-1, 1).astype(np.float32)
    softmax = np.column_stack([1 - BINARY_PROBABILITY, BINARY_PROBABILITY])
    for output in (sigmoid, softmax):
        y_valid, y_pred = score_arguments("binary", BINARY_TRUE.reshape(-1, 1), output)
        assert y_valid.shape == (10,) and y_valid.dtype == np.int64
        np.testing.assert_allclose(y_pred, softmax, rtol=1e-6)
    y_valid, y_pred = score_arguments("regression", np.array([1.5, 2.5]), np.array([[1.0], [2.0]]))
    assert y_valid.tolist() == [1.5, 2.5] and y_pred.tolist() == [1.0, 2.0]
