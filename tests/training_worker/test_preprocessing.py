from __future__ import annotations

import io
import pickle

import numpy as np
import pandas as pd
import pytest

from training_worker.preprocessing import (
    Preprocessing,
    PreprocessingError,
    drop_missing_target,
    read_dataset,
    split_train_test,
)

CSV = """\
size,zip,color,comment,id,target
1.0,75001,red,great product love it,1,yes
2.0,75002,blue,bad,2,no
,75001,red,love it,3,yes
4.0,,green,,4,no
5.0,75003,red,terrible bad product,5,
6.0,75001,,great,6,yes
"""

FEATURES = [
    {
        "name": "size",
        "role": "input",
        "type": "numeric",
        "handling": {"rescaling": "minmax", "missing": "median"},
    },
    {
        "name": "zip",
        "role": "input",
        "type": "categorical",
        "handling": {"encoding": "dummy", "max_levels": 2},
    },
    {
        "name": "color",
        "role": "input",
        "type": "categorical",
        "handling": {"max_levels": 100},
        "input": "main",
    },
    {"name": "comment", "role": "input", "type": "text", "handling": {"max_features": 3}, "input": "words"},
    {"name": "id", "role": "reject", "type": "numeric", "handling": {}},
]


def read(csv: str = CSV, prediction_type: str = "binary") -> pd.DataFrame:
    return read_dataset(io.StringIO(csv), FEATURES, "target", prediction_type)


def fitted() -> tuple[Preprocessing, pd.DataFrame]:
    frame = drop_missing_target(read(), "target")
    return Preprocessing.fit(frame, FEATURES, "target", "binary", ["no", "yes"]), frame


def test_rows_without_target_are_dropped() -> None:
    frame = drop_missing_target(read(), "target")
    assert list(frame["id"]) == [1, 2, 3, 4, 6]


def test_each_input_gets_its_own_float32_array_and_shape() -> None:
    preprocessing, frame = fitted()
    arrays = preprocessing.transform(frame)
    # main: size (1) + zip top-2 levels (75001, and the tie 75002 vs missing broken by name) + 4 colors
    assert preprocessing.input_shapes == {"main": (7,), "words": (3,)}
    assert {name: array.shape for name, array in arrays.items()} == {"main": (5, 7), "words": (5, 3)}
    assert all(array.dtype == np.float32 for array in arrays.values())


def test_numeric_feature_is_imputed_then_rescaled_on_train_only() -> None:
    preprocessing, frame = fitted()
    size = preprocessing.transform(frame)["main"][:, 0]
    # median of 1, 2, 4, 6 is 3; minmax over [1, 6]
    np.testing.assert_allclose(size, [0.0, 0.2, 0.4, 0.6, 1.0], rtol=1e-6)
    unseen = preprocessing.transform(pd.DataFrame({**{c: [None] for c in frame.columns}, "size": [11.0]}))
    assert unseen["main"][0, 0] == pytest.approx(2.0)  # not refitted: out of [0, 1] for an unseen value


def test_numeric_looking_categorical_is_dummy_encoded_with_missing_as_a_level() -> None:
    preprocessing, frame = fitted()
    (zip_feature,) = [feature for feature in preprocessing.features if feature.name == "zip"]
    assert zip_feature.output_columns == ["zip=(missing)", "zip=75001"]
    color = next(feature for feature in preprocessing.features if feature.name == "color")
    assert color.output_columns == ["color=(missing)", "color=blue", "color=green", "color=red"]
    unseen = frame.iloc[:1].assign(zip="99999", color="purple")
    np.testing.assert_array_equal(preprocessing.transform(unseen)["main"][0, 1:], np.zeros(6))


def test_text_feature_is_tfidf_with_max_features() -> None:
    preprocessing, frame = fitted()
    words = preprocessing.transform(frame)["words"]
    comment = next(feature for feature in preprocessing.features if feature.name == "comment")
    assert len(comment.output_columns) == 3
    assert np.all(words[3] == 0)  # the missing comment is the empty text


def test_target_encoding_for_classes_and_regression() -> None:
    preprocessing, frame = fitted()
    np.testing.assert_array_equal(preprocessing.encode_target(frame["target"]), [1, 0, 1, 0, 1])
    numbers = Preprocessing(prediction_type="binary", target="t", classes=["0", "1"])
    np.testing.assert_array_equal(numbers.encode_target(pd.Series(["1.0", "0", 1])), [1, 0, 1])
    regression = Preprocessing(prediction_type="regression", target="t", classes=None)
    encoded = regression.encode_target(pd.Series([1.5, "2"]))
    assert encoded.dtype == np.float32 and list(encoded) == [1.5, 2.0]


def test_unknown_class_label_is_refused_with_the_labels_named() -> None:
    preprocessing, _ = fitted()
    with pytest.raises(PreprocessingError, match=r"\['maybe'\]"):
        preprocessing.encode_target(pd.Series(["yes", "maybe"]))


def test_fitted_preprocessing_pickles_and_describes_itself() -> None:
    preprocessing, frame = fitted()
    clone = pickle.loads(pickle.dumps(preprocessing))
    np.testing.assert_array_equal(clone.transform(frame)["main"], preprocessing.transform(frame)["main"])
    description = preprocessing.describe()
    assert description["input_shapes"] == {"main": [7], "words": [3]}
    size = description["features"][0]
    assert size["missing_value"] == 3.0 and (size["min"], size["max"]) == (1.0, 6.0)


def test_stratified_split_keeps_class_proportions_and_is_seeded() -> None:
    frame = pd.DataFrame({"x": range(100), "target": ["a"] * 80 + ["b"] * 20})
    train, test = split_train_test(frame, "target", "binary", {"train_ratio": 0.8, "seed": 3})
    assert (len(train), len(test)) == (80, 20)
    assert (test["target"] == "b").sum() == 4
    again, _ = split_train_test(frame, "target", "binary", {"train_ratio": 0.8, "seed": 3})
    assert list(again.index) == list(train.index)


def test_missing_target_column_and_no_inputs_are_explained() -> None:
    with pytest.raises(PreprocessingError, match="target column 'label' is not in the dataset"):
        read_dataset(io.StringIO(CSV), FEATURES, "label", "binary")
    with pytest.raises(PreprocessingError, match="No feature has the role 'input'"):
        Preprocessing.fit(read(), [{**FEATURES[0], "role": "reject"}], "target", "binary", ["no", "yes"])


REGRESSION_FEATURES = [{"name": "x", "role": "input", "type": "numeric", "handling": {}}]


def regression_frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "target": [100.0, 200.0, 300.0, 400.0]})


def test_regression_target_is_standardised_by_default_and_predictions_come_back_in_its_units() -> None:
    frame = regression_frame()
    preprocessing = Preprocessing.fit(frame, REGRESSION_FEATURES, "target", "regression")
    y = preprocessing.encode_target(frame["target"])
    np.testing.assert_array_equal(y, [100, 200, 300, 400])  # metrics compare against this
    scaled = preprocessing.scale_target(y)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, (y - 250) / np.std(y), rtol=1e-6)
    assert scaled.mean() == pytest.approx(0, abs=1e-6) and scaled.std() == pytest.approx(1, rel=1e-6)
    # A Dense(1) output, (n, 1) float32, back to (n,) values in the target's units.
    output = scaled.reshape(-1, 1)
    np.testing.assert_allclose(preprocessing.output_to_predictions(output), y, rtol=1e-6)
    assert preprocessing.describe()["target_rescaling"] == {
        "method": "standard",
        "mean": 250.0,
        "scale": pytest.approx(np.std([100, 200, 300, 400])),
    }
    clone = pickle.loads(pickle.dumps(preprocessing))  # saved with joblib: scoring undoes it the same way
    np.testing.assert_allclose(clone.output_to_predictions(output), y, rtol=1e-6)


def test_target_rescaling_is_fitted_on_the_rows_given_only() -> None:
    train = regression_frame().iloc[:2]
    preprocessing = Preprocessing.fit(train, REGRESSION_FEATURES, "target", "regression")
    test_scaled = preprocessing.scale_target(preprocessing.encode_target(regression_frame()["target"]))
    np.testing.assert_allclose(test_scaled, [-1, 1, 3, 5], rtol=1e-6)  # mean 150, scale 50 from train


def test_target_rescaling_none_passes_model_output_through() -> None:
    frame = regression_frame()
    preprocessing = Preprocessing.fit(
        frame, REGRESSION_FEATURES, "target", "regression", target_rescaling="none"
    )
    y = preprocessing.encode_target(frame["target"])
    np.testing.assert_array_equal(preprocessing.scale_target(y), y)
    output = np.array([[1.5], [2.5], [3.5], [4.5]], dtype=np.float32)
    np.testing.assert_array_equal(preprocessing.output_to_predictions(output), [1.5, 2.5, 3.5, 4.5])
    assert preprocessing.describe()["target_rescaling"] == {"method": "none", "mean": 0.0, "scale": 1.0}


def test_constant_regression_target_is_centred_not_divided_by_zero() -> None:
    frame = regression_frame().assign(target=7.0)
    preprocessing = Preprocessing.fit(frame, REGRESSION_FEATURES, "target", "regression")
    np.testing.assert_array_equal(preprocessing.scale_target(np.full(4, 7.0)), np.zeros(4))
    np.testing.assert_array_equal(preprocessing.output_to_predictions(np.zeros((4, 1))), np.full(4, 7.0))


def test_classification_target_is_not_rescaled_and_output_is_untouched() -> None:
    # The design always sends target_rescaling; for classes it is accepted and ignored.
    frame = drop_missing_target(read(), "target")
    preprocessing = Preprocessing.fit(
        frame, FEATURES, "target", "binary", ["no", "yes"], target_rescaling="standard"
    )
    y = preprocessing.encode_target(frame["target"])
    assert preprocessing.target_scaling is None
    assert preprocessing.describe()["target_rescaling"] is None
    assert preprocessing.scale_target(y) is y
    output = np.array([[0.2], [0.9]], dtype=np.float32)
    assert preprocessing.output_to_predictions(output) is output


def test_unknown_target_rescaling_is_refused() -> None:
    with pytest.raises(PreprocessingError, match="Target rescaling 'log' is unknown"):
        Preprocessing.fit(regression_frame(), REGRESSION_FEATURES, "target", "regression", None, "log")
