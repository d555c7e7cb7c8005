"""The metrics callbacks with the Metrics settings, on a stand-in model (no training)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from training_worker.callbacks import MetricsCallback, MultiOutputMetricsCallback, OutputHead, checked_score
from training_worker.usercode import UserCodeError, compile_tab, execute_tab

Y = np.array([0, 1, 1, 0])
SIGMOID = np.array([[0.2], [0.7], [0.4], [0.6]])  # TP 1, TN 1, FP 1, FN 1


def test_the_cost_matrix_lift_fraction_and_custom_score_reach_every_epoch() -> None:
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def score(y_valid: np.ndarray, y_pred: np.ndarray) -> float:
        seen.append((y_valid, y_pred))
        return 0.25

    callback = MetricsCallback(
        "binary",
        2,
        train=(np.zeros((4, 1)), Y),
        test=(np.zeros((4, 1)), Y),
        batch_size=2,
        custom_score=score,
        cost_matrix={"tp": 4.0, "tn": 1.0, "fp": -2.0, "fn": -1.0},
        lift_fraction=0.25,
    )
    callback.set_model(SimpleNamespace(predict=lambda inputs, **_: SIGMOID))
    logs: dict[str, float] = {"loss": 0.1}
    callback.on_epoch_end(0, logs)
    assert logs["Test Cost Matrix Gain"] == pytest.approx((4.0 + 1.0 - 2.0 - 1.0) / 4)
    assert logs["Test Cumulative Lift"] == pytest.approx(1 / 0.5)  # top row 0.7 is positive
    assert logs["Train Custom Score"] == logs["Test Custom Score"] == 0.25
    y_valid, y_pred = seen[0]
    assert y_valid.tolist() == Y.tolist()
    np.testing.assert_allclose(y_pred, np.column_stack([1 - SIGMOID[:, 0], SIGMOID[:, 0]]))


def test_multi_output_custom_score_is_the_first_targets_only() -> None:
    calls: list[np.ndarray] = []

    def score(y_valid: np.ndarray, y_pred: np.ndarray) -> float:
        calls.append(y_pred)
        return float(np.mean(y_pred))

    heads = [
        OutputHead("price", "price", "regression", 1),
        OutputHead("churn", "churn", "binary", 2),
    ]
    outputs = {"price": np.array([[1.0], [3.0], [5.0], [7.0]]), "churn": SIGMOID}
    targets = {"price": np.array([1.0, 3.0, 5.0, 8.0]), "churn": Y}
    callback = MultiOutputMetricsCallback(
        heads,
        train=(np.zeros((4, 1)), targets),
        test=(np.zeros((4, 1)), targets),
        batch_size=2,
        custom_score=score,
        cost_matrix={"tp": 4.0, "tn": 1.0, "fp": -2.0, "fn": -1.0},
    )
    model = SimpleNamespace(output_names=["price", "churn"], predict=lambda inputs, **_: outputs)
    values = callback.evaluate(model)
    assert values["Test Custom Score (price)"] == pytest.approx(4.0)
    assert not any(name.startswith("Test Custom Score (churn") for name in values)
    assert values["Test Cost Matrix Gain (churn)"] == pytest.approx(0.5)
    assert all(y_pred.shape == (4,) for y_pred in calls)  # regression values, flattened


def training_score(code: str):
    return execute_tab(compile_tab(code, "training", "fit"), "training", "fit", {"np": np})["score"]


def test_a_broken_score_is_a_user_code_error_at_its_line_in_the_phase_asked() -> None:
    raising = checked_score(
        training_score("def score(y_valid, y_pred):\n    return y_pred['x']\n"), "fit", "binary"
    )
    with pytest.raises(UserCodeError) as raised:
        raising(Y, SIGMOID)
    error = raised.value
    assert (error.phase, error.tab, error.line) == ("fit", "training", 2)
    assert (
        "score(y_valid, y_pred) (Custom Score) raised IndexError at line 2 of the Training tab"
        in error.message
    )

    wrong = checked_score(
        training_score("\n\ndef score(y_valid, y_pred):\n    return y_pred\n"), "evaluate", "binary"
    )
    with pytest.raises(UserCodeError) as raised:
        wrong(Y, SIGMOID)
    error = raised.value
    assert (error.phase, error.tab, error.line) == ("evaluate", "training", 3)
    assert "must return one number; it returned ndarray of shape (4, 2)" in error.message


@pytest.mark.parametrize("value", [0.5, np.float32(0.5), np.array(0.5), np.array([0.5])])
def test_a_score_may_return_any_single_number(value: object) -> None:
    assert checked_score(lambda y_valid, y_pred: value, "fit", "binary")(Y, SIGMOID) == 0.5
