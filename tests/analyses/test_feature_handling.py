"""Feature handling through the API: the encodings' options accepted with their defaults, anything
else refused naming the option, the feature and what is accepted, and integer inputs kept apart."""

from __future__ import annotations

from typing import Any

import pytest

from analyses.models import MLTask
from tests.analyses.test_api import create_mltask

pytestmark = pytest.mark.django_db

ALL_COMPONENTS = ["year", "month", "day", "weekday", "hour", "timestamp"]


@pytest.fixture
def mltask(project, dataset, clients) -> dict[str, Any]:
    response = create_mltask(clients["owner"], project, dataset)
    assert response.status_code == 201, response.json()
    return response.json()


def patch_features(client, mltask: dict[str, Any], features: list[dict[str, Any]]):
    return client.patch(
        f"/api/mltasks/{mltask['id']}/",
        {"version": mltask["version"], "features": features},
        content_type="application/json",
    )


def patch_note(client, mltask: dict[str, Any], **changes: Any):
    """PATCH the task's features with the column ``note`` changed (type, handling, input, role)."""
    features = [dict(f, **changes) if f["name"] == "note" else f for f in mltask["features"]]
    return patch_features(client, mltask, features)


def saved_note(response) -> dict[str, Any]:
    assert response.status_code == 200, response.json()
    return next(f for f in response.json()["features"] if f["name"] == "note")


@pytest.mark.parametrize(
    ("feature_type", "handling", "saved"),
    [
        ("categorical", {"encoding": "index"}, {"encoding": "index", "max_levels": 1000}),
        (
            "categorical",
            {"encoding": "index", "max_levels": 100_000},
            {"encoding": "index", "max_levels": 100_000},
        ),
        ("categorical", {"encoding": "dummy", "max_levels": 1}, {"encoding": "dummy", "max_levels": 1}),
        ("text", {"ngram_max": 2}, {"encoding": "tfidf", "max_features": 200, "ngram_max": 2}),
        (
            "text",
            {"encoding": "counts", "max_features": 1_000_000, "ngram_max": 5},
            {"encoding": "counts", "max_features": 1_000_000, "ngram_max": 5},
        ),
        (
            "text",
            {"encoding": "sequence"},
            {"encoding": "sequence", "vocabulary_size": 10_000, "sequence_length": 100},
        ),
        (
            "text",
            {"encoding": "sequence", "vocabulary_size": 2, "sequence_length": 10_000},
            {"encoding": "sequence", "vocabulary_size": 2, "sequence_length": 10_000},
        ),
        ("date", {}, {"components": ALL_COMPONENTS}),
        ("date", None, {"components": ALL_COMPONENTS}),
        # Any order, repeats allowed: saved once each, in the canonical order of the columns.
        (
            "date",
            {"components": ["timestamp", "weekday", "year", "year"]},
            {"components": ["year", "weekday", "timestamp"]},
        ),
    ],
)
def test_encoding_options_are_saved_over_the_encodings_defaults(
    clients, mltask: dict[str, Any], feature_type: str, handling: dict | None, saved: dict
) -> None:
    # An integer encoding needs an input of its own; the others may stay in main.
    response = patch_note(clients["editor"], mltask, type=feature_type, handling=handling, input="note_in")
    note = saved_note(response)
    assert (note["type"], note["handling"], note["input"]) == (feature_type, saved, "note_in")
    assert MLTask.objects.get(pk=mltask["id"]).features == response.json()["features"]


@pytest.mark.parametrize(
    ("feature_type", "handling", "message"),
    [
        (
            "categorical",
            {"encoding": "hashing"},
            "encoding of 'note' must be one of dummy, index; got 'hashing'.",
        ),
        (
            "categorical",
            {"encoding": "index", "max_levels": 100_001},
            "max_levels of 'note' must be a whole number from 1 to 100000; got 100001.",
        ),
        (
            "text",
            {"encoding": "bert"},
            "encoding of 'note' must be one of tfidf, counts, sequence; got 'bert'.",
        ),
        (
            "text",
            {"max_features": 0},
            "max_features of 'note' must be a whole number from 1 to 1000000; got 0.",
        ),
        ("text", {"ngram_max": 6}, "ngram_max of 'note' must be a whole number from 1 to 5; got 6."),
        ("text", {"ngram_max": 1.5}, "ngram_max of 'note' must be a whole number from 1 to 5; got 1.5."),
        (
            "text",
            {"encoding": "sequence", "vocabulary_size": 1},
            "vocabulary_size of 'note' must be a whole number from 2 to 1000000; got 1.",
        ),
        (
            "text",
            {"encoding": "sequence", "sequence_length": 10_001},
            "sequence_length of 'note' must be a whole number from 1 to 10000; got 10001.",
        ),
        (
            "text",
            {"encoding": "sequence", "max_features": 200},
            "text handling with encoding sequence of 'note' has no option 'max_features'; "
            "options are encoding, vocabulary_size, sequence_length.",
        ),
        (
            "text",
            {"vocabulary_size": 100},
            "text handling with encoding tfidf of 'note' has no option 'vocabulary_size'; "
            "options are encoding, max_features, ngram_max.",
        ),
        (
            "categorical",
            {"encoding": "index", "ngram_max": 2},
            "categorical handling with encoding index of 'note' has no option 'ngram_max'; "
            "options are encoding, max_levels.",
        ),
        (
            "date",
            {"components": ["year", "minute"]},
            "components of 'note' must be a non-empty list of year, month, day, weekday, hour, timestamp; "
            "got ['year', 'minute'].",
        ),
        ("date", {"components": []}, "components of 'note' must be a non-empty list of year,"),
        ("date", {"components": "year"}, "components of 'note' must be a non-empty list of year,"),
        (
            "date",
            {"encoding": "dummy"},
            "date handling of 'note' has no option 'encoding'; options are components.",
        ),
        ("audio", {}, "type of 'note' must be one of numeric, categorical, text, date, image."),
    ],
)
def test_bad_options_are_refused_naming_option_feature_and_what_is_accepted(
    clients, mltask: dict[str, Any], feature_type: str, handling: dict, message: str
) -> None:
    response = patch_note(clients["editor"], mltask, type=feature_type, handling=handling, input="note_in")
    assert response.status_code == 400
    assert f"features: {message}" in response.json()["error"]
    assert MLTask.objects.get(pk=mltask["id"]).version == mltask["version"]  # nothing saved


def test_numeric_features_take_no_encoding(clients, mltask: dict[str, Any]) -> None:
    features = [
        dict(f, handling={"encoding": "index"}) if f["name"] == "sepal_length" else f
        for f in mltask["features"]
    ]
    response = patch_features(clients["editor"], mltask, features)
    assert response.status_code == 400
    assert (
        "numeric handling of 'sepal_length' has no option 'encoding'; options are rescaling"
        in (response.json()["error"])
    )


@pytest.mark.parametrize(
    ("feature_type", "handling"),
    [("categorical", {"encoding": "index"}), ("text", {"encoding": "sequence", "sequence_length": 20})],
)
def test_integer_encoded_feature_sharing_an_input_is_refused_naming_input_and_features(
    clients, mltask: dict[str, Any], feature_type: str, handling: dict
) -> None:
    response = patch_note(clients["editor"], mltask, type=feature_type, handling=handling, input="main")
    assert response.status_code == 400
    assert response.json()["error"] == (
        "features: input 'main' receives 'sepal_length', 'sepal_width', 'note', but integer ids for an "
        "Embedding layer (categorical index or text sequence encoding) need an input of their own: "
        "'note'. Set the input of 'note' to a new name such as 'note_ids'."
    )
    assert MLTask.objects.get(pk=mltask["id"]).version == mltask["version"]


def test_a_rejected_integer_feature_does_not_count_and_two_integer_features_cannot_share(
    clients, mltask: dict[str, Any]
) -> None:
    rejected = patch_note(
        clients["editor"], mltask, handling={"encoding": "index"}, input="main", role="reject"
    )
    assert saved_note(rejected)["role"] == "reject"
    mltask = rejected.json()
    features = [
        dict(f, role="input", type="categorical", handling={"encoding": "index"}, input="ids")
        if f["name"] in ("note", "sepal_width")
        else f
        for f in mltask["features"]
    ]
    response = patch_features(clients["editor"], mltask, features)
    assert response.status_code == 400
    assert (
        "input 'ids' receives 'sepal_width', 'note', but integer ids for an Embedding layer"
        in (response.json()["error"])
    )
    assert "need an input of their own: 'sepal_width', 'note'." in response.json()["error"]


def test_a_date_column_gets_the_date_handling_by_default(project, dataset, clients) -> None:
    # As the dataset's type inference reports a date column (the type is the user's to override).
    dataset.columns = [dict(c, type="date") if c["name"] == "note" else c for c in dataset.columns]
    dataset.save()
    response = create_mltask(clients["owner"], project, dataset)
    assert response.status_code == 201, response.json()
    note = next(f for f in response.json()["features"] if f["name"] == "note")
    assert (note["type"], note["handling"], note["input"]) == ("date", {"components": ALL_COMPONENTS}, "main")
