"""Multi-output ML tasks through the API: several targets, each with its own prediction type."""

from __future__ import annotations

import pytest

from analyses.datasets import store_dataset

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


# ---------------------------------------------------------------- editing the targets (PATCH)

SPECIES = {
    "name": "species",
    "prediction_type": "multiclass",
    "classes": ["setosa", "versicolor", "virginica"],
}


def patch(client, mltask: dict, **body):
    return client.patch(
        f"/api/mltasks/{mltask['id']}/",
        {"version": mltask["version"], **body},
        content_type="application/json",
    )


def feature_names(body: dict) -> list[str]:
    return [f["name"] for f in body["features"]]


def test_a_target_is_added_after_creation(project, dataset, clients):
    client = clients["editor"]
    mltask = create(client, project, dataset, target="species").json()
    response = patch(client, mltask, targets=[{"name": "species"}, {"name": "sepal_width"}])
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["version"] == mltask["version"] + 1
    assert body["targets"] == [
        SPECIES,
        {"name": "sepal_width", "prediction_type": "regression", "classes": None},
    ]
    # The new target leaves the features, as at creation; untouched default code becomes multi-output.
    assert feature_names(body) == ["sepal_length", "note"]
    assert "'species': 'multiclass', 'sepal_width': 'regression'" in body["architecture_code"]
    assert body == client.get(f"/api/mltasks/{mltask['id']}/").json()


def test_a_removed_target_goes_back_to_being_an_input(project, dataset, clients):
    client = clients["editor"]
    mltask = create(
        client,
        project,
        dataset,
        targets=[{"name": "species"}, {"name": "sepal_width", "prediction_type": "regression"}],
    ).json()
    response = patch(client, mltask, targets=[{"name": "species"}])
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["targets"] == [SPECIES] and body["target"] == "species"
    # Back in its column's place, with its type's default handling into "main".
    assert feature_names(body) == ["sepal_length", "sepal_width", "note"]
    assert body["features"][1] == {
        "name": "sepal_width",
        "role": "input",
        "type": "numeric",
        "handling": {"rescaling": "standard", "missing": "mean"},
        "input": "main",
    }
    assert "TARGETS" not in body["architecture_code"] and "softmax" in body["architecture_code"]


def test_the_first_target_can_be_replaced(project, dataset, clients):
    client = clients["editor"]
    mltask = create(client, project, dataset, target="species").json()
    response = patch(client, mltask, targets=[{"name": "sepal_length", "prediction_type": "regression"}])
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["target"], body["prediction_type"], body["classes"]) == ("sepal_length", "regression", None)
    assert feature_names(body) == ["sepal_width", "species", "note"]
    assert 'Dense(1, name="prediction")' in body["architecture_code"]
    assert (mltask["metric"], body["metric"]) == ("ROC AUC", "R2 Score")  # the metric follows the type


def test_a_targets_prediction_type_changes_and_its_classes_are_recomputed(project, dataset, clients):
    client = clients["editor"]
    mltask = create(
        client,
        project,
        dataset,
        targets=[{"name": "species"}, {"name": "sepal_width", "prediction_type": "regression"}],
    ).json()
    response = patch(
        client,
        mltask,
        targets=[{"name": "species"}, {"name": "sepal_width", "prediction_type": "multiclass"}],
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    # A target sent without a type keeps its own.
    assert body["targets"][0] == SPECIES
    assert body["targets"][1] == {
        "name": "sepal_width",
        "prediction_type": "multiclass",
        "classes": ["2.2", "2.9", "3.0", "3.1", "3.4", "3.5"],
    }
    assert "'sepal_width': 'multiclass'" in body["architecture_code"]
    assert feature_names(body) == feature_names(mltask)  # the same columns are targets


def test_edited_architecture_code_is_kept_when_the_targets_change(project, dataset, clients):
    client = clients["editor"]
    mltask = create(client, project, dataset, target="species").json()
    mltask = patch(client, mltask, architecture_code="# mine").json()
    body = patch(client, mltask, targets=[{"name": "species"}, {"name": "sepal_width"}]).json()
    assert body["architecture_code"] == "# mine"
    assert len(body["targets"]) == 2


def test_targets_and_features_are_saved_together(project, dataset, clients):
    client = clients["editor"]
    mltask = create(client, project, dataset, target="species").json()
    features = [
        {**f, "role": "reject"} if f["name"] == "note" else f
        for f in mltask["features"]
        if f["name"] != "sepal_width"
    ]
    response = patch(
        client, mltask, targets=[{"name": "species"}, {"name": "sepal_width"}], features=features
    )
    assert response.status_code == 200, response.json()
    assert [(f["name"], f["role"]) for f in response.json()["features"]] == [
        ("sepal_length", "input"),
        ("note", "reject"),
    ]


def test_a_stale_targets_edit_is_refused_with_409(project, dataset, clients):
    mltask = create(clients["owner"], project, dataset, target="species").json()
    assert patch(clients["owner"], mltask, architecture_code="# owner's").status_code == 200
    response = patch(clients["editor"], mltask, targets=[{"name": "species"}, {"name": "sepal_width"}])
    assert response.status_code == 409
    assert "saved by owner since you opened it" in response.json()["error"]
    current = response.json()["current"]
    assert current["architecture_code"] == "# owner's" and len(current["targets"]) == 1


def test_a_viewer_cannot_edit_the_targets(project, dataset, clients):
    mltask = create(clients["editor"], project, dataset, target="species").json()
    response = patch(clients["viewer"], mltask, targets=[{"name": "species"}, {"name": "sepal_width"}])
    assert response.status_code == 403
    assert "needs the editor role" in response.json()["error"]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([], "an ML task needs at least one target"),
        (
            [{"name": "species"}, {"name": "sepal_width"}, {"name": "species"}],
            "targets: 'species' appears more than once",
        ),
        ([{"name": "species"}, {"name": "petal"}], "Target 'petal' is not a column of dataset 'iris'"),
        (
            [{"name": "species"}, {"name": "note", "prediction_type": "regression"}],
            "Target 'note' is not numeric",
        ),
        ([{"name": "species", "prediction_type": "binary"}], "binary needs exactly 2"),
        ([{"name": "species", "prediction_type": "ordinal"}], "prediction_type must be one of"),
    ],
)
def test_bad_target_edits_are_refused_with_the_reason(project, dataset, clients, targets, message):
    client = clients["editor"]
    mltask = create(client, project, dataset, target="species").json()
    response = patch(client, mltask, targets=targets)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert client.get(f"/api/mltasks/{mltask['id']}/").json() == mltask  # nothing saved


def test_a_column_cannot_be_a_target_and_an_input_in_one_edit(project, dataset, clients):
    client = clients["editor"]
    mltask = create(client, project, dataset, target="species").json()
    response = patch(
        client, mltask, targets=[{"name": "species"}, {"name": "sepal_width"}], features=mltask["features"]
    )
    assert response.status_code == 400
    assert "features: 'sepal_width' is a target; it cannot also be a feature" in response.json()["error"]


def test_prediction_type_and_targets_together_are_refused(project, dataset, clients):
    client = clients["editor"]
    mltask = create(client, project, dataset, target="species").json()
    response = patch(client, mltask, prediction_type="multiclass", targets=[{"name": "species"}])
    assert response.status_code == 400
    assert "either prediction_type or targets" in response.json()["error"]


def test_the_last_input_cannot_become_a_target(project, dataset, clients):
    client = clients["editor"]
    mltask = create(client, project, dataset, target="species").json()
    everything = [{"name": n} for n in ("species", "sepal_length", "sepal_width", "note")]
    response = patch(client, mltask, targets=everything)
    assert response.status_code == 400
    assert "at least one column must have role input" in response.json()["error"]


def test_an_explicit_test_dataset_must_hold_a_new_target(project, dataset, clients, users, tmp_path):
    holdout_csv = tmp_path / "holdout.csv"
    holdout_csv.write_text("sepal_length,species,note\n5.1,setosa,a\n6.2,versicolor,b\n5.9,virginica,c\n")
    holdout = store_dataset(project, holdout_csv, "holdout.csv", "holdout", users["owner"], 1)
    client = clients["editor"]
    mltask = create(client, project, dataset, target="species").json()
    features = [{**f, "role": "reject"} if f["name"] == "sepal_width" else f for f in mltask["features"]]
    mltask = patch(client, mltask, features=features, split={"mode": "explicit", "test_dataset": holdout.pk})
    assert mltask.status_code == 200, mltask.json()
    response = patch(client, mltask.json(), targets=[{"name": "species"}, {"name": "sepal_width"}])
    assert response.status_code == 400
    assert "dataset 'holdout' lacks the column(s) 'sepal_width'" in response.json()["error"]


# ---------------------------------------------------------------- one output name per target


@pytest.fixture
def churn(project, users, tmp_path, settings):
    """Two columns whose output names collide: "churn rate" → churn_rate."""
    settings.MEDIA_ROOT = tmp_path / "files"
    path = tmp_path / "churn.csv"
    path.write_text(
        "tenure,churn rate,churn_rate,plan\n1,0.1,0.2,a\n5,0.3,0.1,b\n9,0.2,0.4,a\n2,0.5,0.3,b\n7,0.4,0.6,a\n"
    )
    return store_dataset(project, path, "churn.csv", "churn", users["owner"], path.stat().st_size)


COLLISION = "targets: 'churn rate' and 'churn_rate' would both be the model output 'churn_rate'"


def test_two_targets_on_one_output_name_are_refused_at_creation(project, churn, clients):
    response = create(
        clients["editor"], project, churn, targets=[{"name": "churn rate"}, {"name": "churn_rate"}]
    )
    assert response.status_code == 400
    assert COLLISION in response.json()["error"]
    assert "keep only one of them as a target" in response.json()["error"]


def test_two_targets_on_one_output_name_are_refused_on_edit(project, churn, clients):
    client = clients["editor"]
    mltask = create(client, project, churn, target="churn rate").json()
    response = patch(client, mltask, targets=[{"name": "churn rate"}, {"name": "churn_rate"}])
    assert response.status_code == 400
    assert COLLISION in response.json()["error"]
    assert client.get(f"/api/mltasks/{mltask['id']}/").json()["targets"] == mltask["targets"]
