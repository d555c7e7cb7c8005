from __future__ import annotations

import pytest

from training_worker.usercode import (
    UserCodeError,
    call_user_function,
    check_output_layer,
    compile_tab,
    execute_tab,
    user_function,
)


def run_tab(code: str) -> dict:
    return execute_tab(compile_tab(code, "architecture", "build_model"), "architecture", "build_model", {})


def test_syntax_error_reports_tab_line_and_offending_text() -> None:
    with pytest.raises(UserCodeError) as caught:
        compile_tab("x = 1\ndef build_model(a, b)\n    return a\n", "architecture", "build_model")
    error = caught.value.to_error()
    assert (error["phase"], error["tab"], error["line"]) == ("build_model", "architecture", 2)
    assert "Architecture tab at line 2" in error["message"]
    assert "def build_model(a, b)" in error["message"]


def test_exception_points_at_the_deepest_user_line_with_a_trimmed_traceback() -> None:
    namespace = run_tab(
        "def helper(d):\n    return d['missing']\n\ndef build_model(shapes, n):\n    return helper(shapes)\n"
    )
    with pytest.raises(UserCodeError) as caught:
        call_user_function(namespace["build_model"], ({"main": (3,)}, 2), "build_model")
    error = caught.value.to_error()
    assert (error["tab"], error["line"]) == ("architecture", 2)
    assert error["message"].startswith("build_model() raised KeyError at line 2 of the Architecture tab")
    assert error["traceback"].splitlines()[1] == '  File "<architecture>", line 5, in build_model'
    assert "return d['missing']" in error["traceback"]  # the user's source line is shown
    assert "usercode.py" not in error["traceback"]


def test_top_level_code_error_and_sys_exit_are_user_errors() -> None:
    with pytest.raises(UserCodeError, match="top-level code raised ZeroDivisionError at line 2"):
        run_tab("a = 1\nb = a / 0\n")
    namespace = run_tab("import sys\ndef build_model(s, n):\n    sys.exit(1)\n")
    with pytest.raises(UserCodeError, match="raised SystemExit at line 3"):
        call_user_function(namespace["build_model"], ({}, 2), "build_model")


def test_missing_function_says_which_signature_to_define() -> None:
    with pytest.raises(
        UserCodeError, match=r"must define a function compile_model\(model\); found no such name"
    ):
        user_function(run_tab("x = 1\n"), "compile_model", "(model)", "architecture", "compile_model")


def dense_model(units: int, activation: str | None):
    import keras

    inputs = keras.Input(shape=(4,), name="main")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(units, activation=activation)(hidden))


@pytest.mark.parametrize(
    ("prediction_type", "units", "activation", "n_classes"),
    [
        ("binary", 1, "sigmoid", 2),
        ("binary", 2, "softmax", 2),
        ("multiclass", 5, "softmax", 5),
        ("regression", 1, None, 1),
    ],
)
def test_output_layer_fitting_the_prediction_type_is_accepted(
    prediction_type: str, units: int, activation: str | None, n_classes: int
) -> None:
    check_output_layer(dense_model(units, activation), prediction_type, n_classes)


@pytest.mark.parametrize(
    ("prediction_type", "units", "activation", "n_classes", "message"),
    [
        (
            "binary",
            3,
            "relu",
            2,
            "binary: last layer must be Dense(1, activation='sigmoid') or Dense(2, activation='softmax'); "
            "got Dense(3, activation='relu')",
        ),
        (
            "multiclass",
            3,
            "softmax",
            4,
            "multiclass: last layer must be Dense(4, activation='softmax'); "
            "got Dense(3, activation='softmax')",
        ),
        ("regression", 1, "sigmoid", 1, "got Dense(1, activation='sigmoid')"),
    ],
    ids=["binary-three-relu", "multiclass-wrong-size", "regression-sigmoid"],
)
def test_output_layer_not_fitting_is_refused_naming_expected_and_received(
    prediction_type: str, units: int, activation: str, n_classes: int, message: str
) -> None:
    with pytest.raises(UserCodeError) as caught:
        check_output_layer(dense_model(units, activation), prediction_type, n_classes)
    assert message in caught.value.message
    assert (caught.value.phase, caught.value.tab) == ("build_model", "architecture")


def test_separate_softmax_layer_counts_as_the_output_activation() -> None:
    import keras

    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3), keras.layers.Softmax()])
    check_output_layer(model, "multiclass", 3)
