"""Multi-output ML tasks through the API: several targets, each with its own prediction type."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def create(client, project, dataset, **body):
    analysis = client.post(
        f"/api/projects/{project.pk}/analyses/",
        {"dataset": dataset.pk, "name": "a"},
        content_type="application/json",
    ).json()
    return client.post(f"/api/analyses/{analysis['id']}/mltasks/", body, content_type="application/json")


def test_targets_create_a_multi_output_task_with_guessed_types(project, dataset, clients):
    response = create(
        clients["editor"],
        project,
        dataset,
        targets=[{"name": "species"}, {"name": "sepal_width", "prediction_type": "regression"}],
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["targets"] == [
        {
            "name": "species",
            "prediction_type": "multiclass",
            "classes": ["setosa", "versicolor", "virginica"],
        },
        {"name": "sepal_width", "prediction_type": "regression", "classes": None},
    ]
    assert body["design"]["targets"] == body["targets"]
    # The first target stays in target / prediction_type / classes.
    assert (body["target"], body["prediction_type"]) == ("species", "multiclass")
    assert [f["name"] for f in body["features"]] == ["sepal_length", "note"]
    code = body["architecture_code"]
    assert "loss_weights" in code and "'sepal_width': 'regression'" in code


def test_single_target_tasks_list_their_one_target(project, dataset, clients):
    body = create(clients["editor"], project, dataset, target="species").json()
    assert body["targets"] == [
        {"name": "species", "prediction_type": "multiclass", "classes": ["setosa", "versicolor", "virginica"]}
    ]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([{"name": "species"}, {"name": "species"}], "'species' appears more than once"),
        ([{"name": "species"}, {"name": "petal"}], "Target 'petal' is not a column"),
        ([{"name": "species"}], "targets needs 2 or more"),
        ([{"name": "species"}, {"name": "note", "prediction_type": "regression"}], "not numeric"),
    ],
)
def test_bad_targets_are_refused_with_the_reason(project, dataset, clients, targets, message):
    response = create(clients["editor"], project, dataset, targets=targets)
    assert response.status_code == 400 and message in response.json()["error"]


def test_target_and_targets_together_are_refused(project, dataset, clients):
    response = create(
        clients["editor"], project, dataset, target="species", targets=[{"name": "species"}, {"name": "note"}]
    )
    assert response.status_code == 400 and "either target" in response.json()["error"]


def test_no_target_can_become_a_feature(project, dataset, clients):
    client = clients["editor"]
    body = create(
        client,
        project,
        dataset,
        targets=[{"name": "species"}, {"name": "sepal_width", "prediction_type": "regression"}],
    ).json()
    features = body["features"] + [
        {"name": "sepal_width", "role": "input", "type": "numeric", "input": "main"}
    ]
    response = client.patch(
        f"/api/mltasks/{body['id']}/",
        {"version": body["version"], "features": features},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "'sepal_width' is a target; it cannot also be a feature" in response.json()["error"]
