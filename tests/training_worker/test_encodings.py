"""Feature encodings: categorical index, text counts / TF-IDF n-grams / sequences, dates.

Each encoding is fitted on a small hand-made train frame and applied to a test frame with unseen
levels, unseen words and missing values, against exact expected arrays. The Embedding models train
through the real runner on a text classification dataset built from scikit-learn's wine data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from tests.real_data import wine_reviews
from tests.training_worker.conftest import RunResult
from training_worker.preprocessing import Preprocessing, PreprocessingError, tokenize


def feature(
    name: str, feature_type: str, handling: dict[str, Any], input_name: str = "main"
) -> dict[str, Any]:
    return {"name": name, "role": "input", "type": feature_type, "handling": handling, "input": input_name}


def fit(train: pd.DataFrame, *features: dict[str, Any]) -> Preprocessing:
    return Preprocessing.fit(train.assign(target=1.0), list(features), "target", "regression")


def reloaded(preprocessing: Preprocessing, tmp_path: Path) -> Preprocessing:
    """As scoring gets it: through joblib, as the runner saves it next to the model."""
    joblib.dump(preprocessing, tmp_path / "preprocessing.joblib")
    return joblib.load(tmp_path / "preprocessing.joblib")


# ---------------------------------------------------------------- categorical


CITIES = pd.DataFrame({"city": ["paris", "lyon", "paris", None, "nice", "paris", "lyon", "brest"]})


def test_index_encoding_orders_levels_by_train_frequency_with_reserved_ids(tmp_path: Path) -> None:
    preprocessing = fit(
        CITIES, feature("city", "categorical", {"encoding": "index", "max_levels": 3}, "city_ids")
    )
    test = pd.DataFrame({"city": ["lyon", "rome", None, "paris", "brest", "nice"]})
    ids = reloaded(preprocessing, tmp_path).transform(test)["city_ids"]
    # paris (3) = 2, lyon (2) = 3, then the tie brest/nice (1 each) broken by name: brest = 4;
    # nice is rarer than the 3 kept levels and rome unseen: both others = 1; missing = 0.
    np.testing.assert_array_equal(ids, [[3], [1], [0], [2], [4], [1]])
    assert ids.dtype == np.int32
    assert preprocessing.input_shapes == {"city_ids": (1,)}
    assert preprocessing.vocabularies == {"city_ids": 5}  # 3 levels + missing + others
    (described,) = preprocessing.describe()["features"]
    assert described["encoding"] == "index" and described["levels"] == ["paris", "lyon", "brest"]
    assert described["embedding_input_dim"] == 5
    assert preprocessing.describe()["vocabularies"] == {"city_ids": 5}


def test_dummy_encoding_puts_rare_and_unseen_levels_nowhere_and_missing_in_its_own_column() -> None:
    preprocessing = fit(CITIES, feature("city", "categorical", {"encoding": "dummy", "max_levels": 2}))
    (city,) = preprocessing.features
    assert city.output_columns == ["city=lyon", "city=paris"]  # the 2 most frequent, sorted
    test = pd.DataFrame({"city": ["paris", "nice", "rome", "lyon"]})
    arrays = preprocessing.transform(test)
    np.testing.assert_array_equal(arrays["main"], [[0, 1], [0, 0], [0, 0], [1, 0]])
    assert arrays["main"].dtype == np.float32 and preprocessing.vocabularies == {}


# ---------------------------------------------------------------- text

REVIEWS = pd.DataFrame({"review": ["Red apple", "red apple pie", "green pie", None, "green tea"]})


def test_counts_with_bigrams_count_each_train_term_and_ignore_unseen_words() -> None:
    handling = {"encoding": "counts", "max_features": 100, "ngram_max": 2}
    preprocessing = fit(REVIEWS, feature("review", "text", handling, "words"))
    (review,) = preprocessing.features
    terms = ["apple", "apple pie", "green", "green pie", "green tea", "pie", "red", "red apple", "tea"]
    assert review.output_columns == [f"review:{term}" for term in terms]
    test = pd.DataFrame({"review": ["Red apple, red!", "blue pie", None, "GREEN TEA green"]})
    words = preprocessing.transform(test)["words"]
    np.testing.assert_array_equal(
        words,
        [
            [1, 0, 0, 0, 0, 0, 2, 1, 0],
            [0, 0, 0, 0, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0],  # missing is the empty text
            [0, 0, 2, 0, 1, 0, 0, 0, 1],
        ],
    )
    assert words.dtype == np.float32 and preprocessing.input_shapes == {"words": (9,)}
    (described,) = preprocessing.describe()["features"]
    assert (described["encoding"], described["ngram_range"], described["vocabulary_size"]) == (
        "counts",
        [1, 2],
        9,
    )


def test_tfidf_keeps_the_most_frequent_terms_and_normalises_rows() -> None:
    handling = {"encoding": "tfidf", "max_features": 3, "ngram_max": 2}
    preprocessing = fit(REVIEWS, feature("review", "text", handling))
    (review,) = preprocessing.features
    # apple, green, pie and red appear twice; "red" is in 2 texts and so is "apple": the top 3 by
    # corpus frequency, ties by term order, as scikit-learn keeps them.
    assert len(review.output_columns) == 3
    test = pd.DataFrame({"review": ["red apple pie", "nothing known", None]})
    main = preprocessing.transform(test)["main"]
    np.testing.assert_allclose(np.linalg.norm(main, axis=1), [1.0, 0.0, 0.0], atol=1e-6)


def test_tokens_are_lowercased_runs_of_word_characters() -> None:
    assert tokenize("Déjà-vu, C3PO_x! ok?") == ["déjà", "vu", "c3po_x", "ok"]


def test_sequence_encoding_pads_truncates_and_marks_out_of_vocabulary(tmp_path: Path) -> None:
    train = pd.DataFrame({"review": ["The cat sat", "the dog sat down", "a cat", None]})
    handling = {"encoding": "sequence", "vocabulary_size": 5, "sequence_length": 4}
    preprocessing = fit(train, feature("review", "text", handling, "review_tokens"))
    test = pd.DataFrame({"review": ["The CAT, the cat sat on the mat!", "dog", None, "", "sat sat"]})
    tokens = reloaded(preprocessing, tmp_path).transform(test)["review_tokens"]
    # Counts: cat, sat, the 2 each; a, dog, down 1: the 3 words of a size-5 vocabulary are
    # cat = 2, sat = 3, the = 4 (ties by token); 0 pads the end, 1 is out of vocabulary (dog).
    np.testing.assert_array_equal(
        tokens,
        [[4, 2, 4, 2], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [3, 3, 0, 0]],
    )
    assert tokens.dtype == np.int32
    assert preprocessing.input_shapes == {"review_tokens": (4,)}
    assert preprocessing.vocabularies == {"review_tokens": 5}
    (described,) = preprocessing.describe()["features"]
    assert described["most_frequent_tokens"] == ["cat", "sat", "the"]
    assert (described["words"], described["embedding_input_dim"], described["sequence_length"]) == (3, 5, 4)


def test_sequence_vocabulary_smaller_than_asked_reports_the_ids_actually_used() -> None:
    handling = {"encoding": "sequence", "vocabulary_size": 1000, "sequence_length": 2}
    preprocessing = fit(pd.DataFrame({"t": ["b a", "a"]}), feature("t", "text", handling, "t_ids"))
    assert preprocessing.vocabularies == {"t_ids": 4}  # a = 2, b = 3
    np.testing.assert_array_equal(preprocessing.transform(pd.DataFrame({"t": ["a b c"]}))["t_ids"], [[2, 3]])


# ---------------------------------------------------------------- dates

WHEN = pd.DataFrame(
    {"when": ["2020-01-01", "2020-01-03 12:00", "2021-07-04T06:00:00+02:00", None, "not a date"]}
)
# year, month, day, weekday (Monday = 0), hour (UTC), days since 1970-01-01
RAW_TRAIN = np.array(
    [
        [2020, 1, 1, 2, 0, 18262.0],
        [2020, 1, 3, 4, 12, 18264.5],
        [2021, 7, 4, 6, 4, 18812 + 4 / 24],
    ]
)


def test_date_components_are_imputed_with_the_train_mean_and_standard_scaled(tmp_path: Path) -> None:
    preprocessing = fit(WHEN, feature("when", "date", {}))
    (when,) = preprocessing.features
    names = ["year", "month", "day", "weekday", "hour", "timestamp"]
    assert when.output_columns == [f"when:{name}" for name in names]
    test = pd.DataFrame(
        {"when": ["2020-01-01", "1970-01-02 06:00", "", "31/12/1999", "2021-07-04T06:00:00+02:00", "soon"]}
    )
    raw = when.transformer.named_steps["components"].transform(when_values(test))
    np.testing.assert_allclose(
        raw,
        [
            RAW_TRAIN[0],
            [1970, 1, 2, 4, 6, 1.25],
            [np.nan] * 6,  # empty: missing
            [1999, 12, 31, 4, 0, 10956.0],  # no 31st month: read day first
            RAW_TRAIN[2],
            [np.nan] * 6,  # unparsable: missing
        ],
    )
    # Scaled after imputation: the 2 imputed train rows sit at the mean, so the spread is over 5 rows.
    mean, scale = RAW_TRAIN.mean(axis=0), RAW_TRAIN.std(axis=0) * np.sqrt(3 / 5)
    expected = (np.nan_to_num(raw, nan=0) - mean) / scale
    expected[[2, 5]] = 0  # missing: the train mean, which standard scaling maps to 0
    main = reloaded(preprocessing, tmp_path).transform(test)["main"]
    np.testing.assert_allclose(main, expected, rtol=1e-5, atol=1e-6)
    assert main.dtype == np.float32
    (described,) = preprocessing.describe()["features"]
    assert described["components"] == names
    np.testing.assert_allclose(described["mean"], mean)


def when_values(frame: pd.DataFrame) -> np.ndarray:
    from training_worker.preprocessing import parse_dates

    return parse_dates(frame["when"]).reshape(-1, 1)


def test_date_components_can_be_chosen_and_datetime_columns_are_read_as_is() -> None:
    preprocessing = fit(WHEN, feature("when", "date", {"components": ["hour", "year"]}))
    (when,) = preprocessing.features
    assert when.output_columns == ["when:year", "when:hour"]  # canonical order
    as_datetimes = pd.DataFrame({"when": pd.to_datetime(["2020-01-03 12:00", None])})
    as_text = pd.DataFrame({"when": ["2020-01-03 12:00", None]})
    np.testing.assert_array_equal(
        preprocessing.transform(as_datetimes)["main"], preprocessing.transform(as_text)["main"]
    )
    with pytest.raises(PreprocessingError, match=r"components must be a non-empty list of year, month"):
        fit(WHEN, feature("when", "date", {"components": ["minute"]}))


# ---------------------------------------------------------------- inputs


def test_integer_and_float_inputs_side_by_side_have_exact_shapes_and_dtypes() -> None:
    train = CITIES.assign(size=range(8), review=["a b", "b c", "c", None, "a", "b", "d e f", "a a a"])
    preprocessing = fit(
        train,
        feature("size", "numeric", {}),
        feature("city", "categorical", {"encoding": "dummy", "max_levels": 10}),
        feature("city", "categorical", {"encoding": "index"}, "city_index"),
        feature("review", "text", {"encoding": "sequence", "sequence_length": 100}, "review_tokens"),
    )
    assert preprocessing.input_shapes == {"main": (6,), "city_index": (1,), "review_tokens": (100,)}
    arrays = preprocessing.transform(train)
    assert {name: array.dtype for name, array in arrays.items()} == {
        "main": np.float32,
        "city_index": np.int32,
        "review_tokens": np.int32,
    }
    assert preprocessing.vocabularies == {"city_index": 6, "review_tokens": 8}


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (
            [feature("size", "numeric", {}), feature("city", "categorical", {"encoding": "index"})],
            r"Input 'main' receives the features \['size', 'city'\], of which \['city'\] are integer ids "
            r"for an Embedding layer .* set the input of 'city' to a new name such as 'city_ids'",
        ),
        (
            [
                feature("city", "categorical", {"encoding": "index"}, "ids"),
                feature("review", "text", {"encoding": "sequence"}, "ids"),
            ],
            r"Input 'ids' receives the features \['city', 'review'\], of which \['city', 'review'\]",
        ),
    ],
)
def test_integer_feature_sharing_an_input_is_refused_naming_input_and_features(
    features: list[dict[str, Any]], message: str
) -> None:
    train = CITIES.assign(size=range(8), review="a b")
    with pytest.raises(PreprocessingError, match=message):
        fit(train, *features)


def test_unknown_encoding_and_bad_numbers_are_refused_by_the_runner_too() -> None:
    with pytest.raises(PreprocessingError, match=r"has encoding 'hashing'; use one of \('dummy', 'index'\)"):
        fit(CITIES, feature("city", "categorical", {"encoding": "hashing"}))
    with pytest.raises(
        PreprocessingError, match=r"sequence_length must be a whole number of at least 1; got 0"
    ):
        fit(REVIEWS, feature("review", "text", {"encoding": "sequence", "sequence_length": 0}, "ids"))


# ---------------------------------------------------------------- through the runner


EMBEDDING_CODE = """\
def build_model(input_shapes, n_classes):
    band = keras.Input(shape=input_shapes["band_ids"], name="band_ids", dtype="int32")
    words = keras.Input(shape=input_shapes["tasting_tokens"], name="tasting_tokens", dtype="int32")
    b = keras.layers.Flatten()(keras.layers.Embedding(input_dim=12, output_dim=4)(band))
    w = keras.layers.Embedding(input_dim=60, output_dim=8)(words)
    w = keras.layers.GlobalAveragePooling1D()(w)
    x = keras.layers.Concatenate()([b, w])
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="prediction")(x)
    return keras.Model(inputs=[band, words], outputs=outputs)


def compile_model(model):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.05),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
"""

INTEGER_FEATURES = [
    # max_levels 10 and vocabulary_size 60: the Embeddings' input_dim above (12 = 10 levels + 2).
    feature("band", "categorical", {"encoding": "index", "max_levels": 10}, "band_ids"),
    feature(
        "tasting",
        "text",
        {"encoding": "sequence", "vocabulary_size": 60, "sequence_length": 16},
        "tasting_tokens",
    ),
]


def write_wine_job(workdir: Path, features: list[dict[str, Any]]) -> pd.DataFrame:
    frame = wine_reviews()
    (workdir / "output").mkdir(parents=True, exist_ok=True)
    frame.to_csv(workdir / "dataset.csv", index=False)
    job = {
        "session_id": 1,
        "dataset": {"path": "dataset.csv", "format": "csv"},
        "target": "target",
        "prediction_type": "multiclass",
        "classes": sorted(frame["target"].unique()),
        "features": features,
        "split": {"train_ratio": 0.8, "seed": 1337, "stratify": True},
        "architecture_code": EMBEDDING_CODE,
        "training": {"mode": "standard", "epochs": 2, "batch_size": 8},
        "seed": 1337,
    }
    (workdir / "job.json").write_text(json.dumps(job))
    return frame


def test_embedding_model_on_index_and_sequence_inputs_trains_through_the_runner(
    run_job: Callable[..., RunResult], tmp_path: Path
) -> None:
    frame = write_wine_job(tmp_path, INTEGER_FEATURES)
    run = run_job()
    assert run.done["status"] == "succeeded", (run.done["error"], run.logs)
    (model_event,) = run.of_type("model")
    assert model_event["input_shapes"] == {"band_ids": [1], "tasting_tokens": [16]}
    # 5 bands + missing + others; 13 measurements x 3 terciles = 39 words + padding + unknown.
    assert model_event["vocabularies"] == {"band_ids": 7, "tasting_tokens": 41}
    assert run.done["final_metrics"]["Test Accuracy"] >= 0.75  # chance is 0.4; 0.89 at the time of writing
    description = json.loads((tmp_path / "output" / "preprocessing.json").read_text())
    assert description["vocabularies"] == model_event["vocabularies"]
    # Scoring later: the saved preprocessing turns new rows (unseen band, unknown words) into ids.
    saved = joblib.load(tmp_path / "output" / "preprocessing.joblib")
    new_rows = pd.DataFrame({"band": ["band9", None], "tasting": ["hue_low corked", None]})
    arrays = saved.transform(new_rows)
    np.testing.assert_array_equal(arrays["band_ids"], [[1], [0]])
    assert arrays["tasting_tokens"][0, 1] == 1 and arrays["tasting_tokens"][0, 0] >= 2
    assert not arrays["tasting_tokens"][1].any()
    assert len(frame) == 178


def test_runner_refuses_an_integer_feature_mixed_into_a_float_input(
    run_job: Callable[..., RunResult], tmp_path: Path
) -> None:
    mixed = [
        feature("band", "categorical", {"encoding": "index"}, "main"),
        feature("tasting", "text", {"encoding": "tfidf"}, "main"),
    ]
    write_wine_job(tmp_path, mixed)
    done = run_job().done
    assert done["status"] == "failed" and done["error"]["phase"] == "preprocessing"
    assert (
        "Input 'main' receives the features ['band', 'tasting'], of which ['band']"
        in done["error"]["message"]
    )
