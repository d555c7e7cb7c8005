"""The Training tab's settings through the API: standard or advanced mode, kept epoch, early stopping."""

from __future__ import annotations

import pytest

from tests.analyses.test_multi_output_api import create, patch
from training_worker.defaults import DEFAULT_TRAINING_CODE

pytestmark = pytest.mark.django_db


@pytest.fixture
def mltask(clients, project, dataset) -> dict:
    response = create(clients["editor"], project, dataset, target="species")
    assert response.status_code == 201, response.json()
    return response.json()


def test_a_new_ml_task_has_working_training_defaults(mltask) -> None:
    training = mltask["training"]
    assert training["mode"] == "standard" and training["keep"] == "best"
    assert training["early_stopping"] == {"enabled": False, "patience": 5, "min_delta": 0.0}
    assert training["code"] == DEFAULT_TRAINING_CODE


def test_advanced_mode_code_and_early_stopping_are_saved(clients, mltask) -> None:
    code = DEFAULT_TRAINING_CODE.replace("epochs = 10", "epochs = 3")
    response = patch(
        clients["editor"],
        mltask,
        training={"mode": "advanced", "code": code, "keep": "last", "early_stopping": {"enabled": True}},
    )
    assert response.status_code == 200, response.json()
    training = response.json()["training"]
    assert (training["mode"], training["code"], training["keep"]) == ("advanced", code, "last")
    assert training["early_stopping"] == {"enabled": True, "patience": 5, "min_delta": 0.0}
    assert training["epochs"] == 10  # the standard settings stay for a switch back


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"mode": "expert"}, "training.mode 'expert' is unknown"),
        ({"keep": "worst"}, 'training.keep must be "best"'),
        ({"code": 3}, "training.code must be the Training tab's Python code"),
        ({"code": "x" * 200_001}, "training.code is longer than 200,000 characters"),
        ({"early_stopping": True}, "training.early_stopping must be an object"),
        ({"early_stopping": {"patience": -1}}, "training.early_stopping.patience"),
        ({"early_stopping": {"min_delta": "small"}}, "training.early_stopping.min_delta must be a number"),
    ],
)
def test_bad_training_settings_are_refused_and_nothing_is_saved(clients, mltask, training, message) -> None:
    client = clients["editor"]
    response = patch(client, mltask, training=training)
    assert response.status_code == 400 and message in response.json()["error"]
    assert client.get(f"/api/mltasks/{mltask['id']}/").json()["training"] == mltask["training"]


def test_a_partial_early_stopping_changes_only_what_it_names(clients, mltask) -> None:
    client = clients["editor"]
    first = patch(client, mltask, training={"early_stopping": {"enabled": True, "patience": 9}}).json()
    second = patch(client, first, training={"early_stopping": {"enabled": False}}).json()
    assert second["training"]["early_stopping"] == {"enabled": False, "patience": 9, "min_delta": 0.0}


def test_the_optimization_metric_must_be_one_of_the_prediction_types(clients, mltask) -> None:
    client = clients["editor"]
    assert patch(client, mltask, metric="Log Loss").json()["metric"] == "Log Loss"
    refused = patch(client, mltask, metric="R2 Score")
    assert refused.status_code == 400
    assert refused.json()["error"].startswith(
        "metric 'R2 Score' is not a multiclass metric; use one of Accuracy"
    )
    custom = patch(client, mltask, metric="Custom Score")
    assert (
        custom.status_code == 400
        and "Custom Score once a score() function is turned on" in custom.json()["error"]
    )
