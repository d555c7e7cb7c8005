"""The JSON API's rules: roles, 404 for outsiders, clear errors that lose nothing, stale saves refused."""

from __future__ import annotations

import json

import pytest

from analyses.models import Dataset, MLTask, Session
from tests.conftest import upload

pytestmark = pytest.mark.django_db


def create_mltask(client, project, dataset, target="species", **extra):
    analysis = client.post(
        f"/api/projects/{project.pk}/analyses/",
        {"dataset": dataset.pk, "name": "a"},
        content_type="application/json",
    ).json()
    return client.post(
        f"/api/analyses/{analysis['id']}/mltasks/",
        {"target": target, **extra},
        content_type="application/json",
    )


def test_token_is_issued_for_right_password_only(users, client):
    good = client.post(
        "/api/token/", {"username": "owner", "password": "Passw0rd!-long"}, content_type="application/json"
    )
    bad = client.post(
        "/api/token/", {"username": "owner", "password": "nope"}, content_type="application/json"
    )
    assert good.status_code == 200 and len(good.json()["token"]) == 40
    assert bad.status_code == 401 and "Wrong username or password" in bad.json()["error"]


def test_api_without_credentials_is_refused_with_a_hint(client):
    response = client.get("/api/projects/")
    assert response.status_code == 401
    assert "Token" in response.json()["error"]


def test_projects_list_shows_only_mine_with_my_role(project, clients):
    assert [(p["name"], p["role"]) for p in clients["viewer"].get("/api/projects/").json()] == [
        ("team", "viewer")
    ]
    assert clients["stranger"].get("/api/projects/").json() == []


def test_creating_a_project_makes_me_owner(clients):
    response = clients["stranger"].post("/api/projects/", {"name": "mine"}, content_type="application/json")
    assert response.status_code == 201 and response.json()["role"] == "owner"


@pytest.mark.parametrize(
    "path",
    [
        "/api/projects/{project}/",
        "/api/datasets/{dataset}/",
        "/api/datasets/{dataset}/rows/",
        "/api/analyses/{analysis}/",
        "/api/mltasks/{mltask}/",
        "/api/mltasks/{mltask}/sessions/",
        "/api/sessions/{session}/",
    ],
)
def test_outsiders_get_404_for_every_object(path, project, dataset, clients, users):
    mltask_json = create_mltask(clients["owner"], project, dataset).json()
    mltask = MLTask.objects.get(pk=mltask_json["id"])
    session = Session.objects.create(mltask=mltask, design=mltask.design(), created_by=users["owner"])
    url = path.format(
        project=project.pk,
        dataset=dataset.pk,
        analysis=mltask.analysis_id,
        mltask=mltask.pk,
        session=session.pk,
    )
    outsider = clients["stranger"].get(url)
    assert outsider.status_code == 404
    assert outsider.json() == {"error": "Not found."}
    assert clients["viewer"].get(url).status_code == 200


def test_outsider_cannot_interrupt_abort_or_train(project, dataset, clients, users):
    mltask = MLTask.objects.get(pk=create_mltask(clients["owner"], project, dataset).json()["id"])
    session = Session.objects.create(mltask=mltask, design=mltask.design(), created_by=users["owner"])
    for url in (
        f"/api/sessions/{session.pk}/interrupt/",
        f"/api/sessions/{session.pk}/abort/",
        f"/api/mltasks/{mltask.pk}/sessions/",
    ):
        assert clients["stranger"].post(url).status_code == 404
    session.refresh_from_db()
    assert session.status == "queued"
    assert Session.objects.count() == 1


def test_viewer_may_read_but_not_train_or_edit(project, dataset, clients):
    mltask = create_mltask(clients["owner"], project, dataset).json()
    viewer = clients["viewer"]
    assert viewer.post(f"/api/mltasks/{mltask['id']}/sessions/").status_code == 403
    edit = viewer.patch(
        f"/api/mltasks/{mltask['id']}/",
        {"version": mltask["version"], "architecture_code": "x"},
        content_type="application/json",
    )
    assert edit.status_code == 403 and "editor" in edit.json()["error"]
    assert MLTask.objects.get(pk=mltask["id"]).architecture_code == mltask["architecture_code"]


def test_mltask_defaults_guess_multiclass_and_fill_a_working_design(project, dataset, clients):
    response = create_mltask(clients["editor"], project, dataset)
    assert response.status_code == 201
    body = response.json()
    assert body["prediction_type"] == "multiclass"
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert "softmax" in body["architecture_code"] and "def compile_model" in body["architecture_code"]
    handling = {f["name"]: f for f in body["features"]}
    assert handling["sepal_length"]["type"] == "numeric"
    assert handling["sepal_length"]["handling"]["rescaling"] == "standard"
    assert handling["sepal_length"]["handling"]["missing"] == "mean"
    assert handling["note"]["type"] == "categorical" and handling["note"]["handling"]["encoding"] == "dummy"
    assert {f["input"] for f in body["features"]} == {"main"}
    assert body["training"]["mode"] == "standard" and body["training"]["epochs"] >= 1


def test_unknown_target_is_refused_naming_the_columns(project, dataset, clients):
    response = create_mltask(clients["editor"], project, dataset, target="colour")
    assert response.status_code == 400
    assert "'colour' is not a column" in response.json()["error"]
    assert "sepal_length" in response.json()["error"]
    assert MLTask.objects.count() == 0


def test_prediction_type_can_be_changed_and_default_code_follows(project, dataset, clients):
    mltask = create_mltask(clients["editor"], project, dataset, target="sepal_length").json()
    assert mltask["prediction_type"] == "regression"
    changed = clients["editor"].patch(
        f"/api/mltasks/{mltask['id']}/",
        {"version": mltask["version"], "prediction_type": "multiclass"},
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["prediction_type"] == "multiclass"
    assert "softmax" in changed.json()["architecture_code"]


def test_binary_on_a_three_class_target_says_choose_multiclass(project, dataset, clients):
    response = create_mltask(clients["editor"], project, dataset, prediction_type="binary")
    assert response.status_code == 400
    assert "binary needs exactly 2" in response.json()["error"]


def test_stale_save_is_refused_with_409_and_keeps_the_teammates_edit(project, dataset, clients):
    mltask = create_mltask(clients["owner"], project, dataset).json()
    url = f"/api/mltasks/{mltask['id']}/"
    first = clients["owner"].patch(
        url, {"version": mltask["version"], "architecture_code": "# owner's"}, content_type="application/json"
    )
    assert first.status_code == 200 and first.json()["version"] == mltask["version"] + 1
    stale = clients["editor"].patch(
        url,
        {"version": mltask["version"], "architecture_code": "# editor's"},
        content_type="application/json",
    )
    assert stale.status_code == 409
    assert "saved by owner" in stale.json()["error"]
    assert stale.json()["current"]["architecture_code"] == "# owner's"
    assert MLTask.objects.get(pk=mltask["id"]).architecture_code == "# owner's"


def test_bad_training_settings_name_the_field(project, dataset, clients):
    mltask = create_mltask(clients["owner"], project, dataset).json()
    response = clients["owner"].patch(
        f"/api/mltasks/{mltask['id']}/",
        {"version": mltask["version"], "training": {"epochs": 0}},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "training.epochs" in response.json()["error"]
    assert MLTask.objects.get(pk=mltask["id"]).version == mltask["version"]


def test_upload_infers_schema_and_pages_rows(project, clients, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    content = b"age,city,income\n30,Paris,1.5\n,Lyon,2.5\n41,Paris,\n"
    response = upload(clients["editor"], project.pk, "people.csv", content)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["rows"] == 3 and body["name"] == "people"
    contract = ("name", "type", "missing", "distinct")  # statistics on top: see test_datasets.py
    assert [{key: column[key] for key in contract} for column in body["columns"]] == [
        {"name": "age", "type": "numeric", "missing": 1, "distinct": 2},
        {"name": "city", "type": "categorical", "missing": 0, "distinct": 2},
        {"name": "income", "type": "numeric", "missing": 1, "distinct": 2},
    ]
    page = clients["viewer"].get(f"/api/datasets/{body['id']}/rows/?offset=1&limit=1").json()
    assert page["columns"] == ["age", "city", "income"]
    assert page["rows"] == [["", "Lyon", "2.5"]] and page["total"] == 3


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("empty.csv", b"", "is empty"),
        ("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV file"),
        ("header.csv", b"a,b,c\n", "no rows"),
        ("dupes.csv", b"a,b,a\n1,2,3\n", "repeats column name(s) a"),
        ("noname.csv", b"a,,c\n1,2,3\n", "column 2 of the header row has no name"),
    ],
)
def test_bad_uploads_get_a_clear_error_and_store_nothing(
    project, clients, settings, tmp_path, filename, content, message
):
    settings.MEDIA_ROOT = tmp_path
    response = upload(clients["editor"], project.pk, filename, content)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert Dataset.objects.count() == 0
    assert not list(tmp_path.rglob("*.csv"))


def test_oversize_upload_is_refused_with_413(project, clients, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.MAX_UPLOAD_BYTES = 1000
    response = upload(clients["editor"], project.pk, "big.csv", b"a,b\n" + b"1,2\n" * 1000)
    assert response.status_code == 413
    assert "upload limit" in response.json()["error"]
    assert Dataset.objects.count() == 0


def test_viewer_cannot_upload(project, clients, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    assert upload(clients["viewer"], project.pk, "a.csv", b"a\n1\n").status_code == 403


def test_owner_manages_members_and_variables(project, clients, users):
    add = clients["owner"].post(
        f"/api/projects/{project.pk}/members/",
        {"username": "stranger", "role": "viewer"},
        content_type="application/json",
    )
    assert add.status_code == 201
    assert clients["stranger"].get(f"/api/projects/{project.pk}/").status_code == 200
    assert (
        clients["editor"]
        .post(
            f"/api/projects/{project.pk}/members/",
            {"username": "stranger", "role": "owner"},
            content_type="application/json",
        )
        .status_code
        == 403
    )
    put = clients["owner"].put(
        f"/api/projects/{project.pk}/variables/", json.dumps({"lr": 0.01}), content_type="application/json"
    )
    assert put.status_code == 200 and put.json() == {"lr": 0.01}
    assert clients["owner"].delete(f"/api/projects/{project.pk}/members/stranger/").status_code == 200
    assert clients["stranger"].get(f"/api/projects/{project.pk}/").status_code == 404


def test_health_answers_without_login(client):
    body = client.get("/api/health/").json()
    assert body["database"] == "ok"
    assert "workers" not in body


def test_openapi_schema_documents_the_contract(client):
    schema = client.get("/api/schema/").json()
    for path in (
        "/api/token/",
        "/api/projects/{project_id}/datasets/",
        "/api/mltasks/{mltask_id}/sessions/",
        "/api/sessions/{session_id}/interrupt/",
    ):
        assert path in schema["paths"]


def test_only_staff_create_accounts(clients, users, django_user_model):
    body = {"username": "newcomer", "password": "a-Long-passw0rd"}
    assert clients["owner"].post("/api/users/", body, content_type="application/json").status_code == 403
    users["owner"].is_staff = True
    users["owner"].save()
    created = clients["owner"].post("/api/users/", body, content_type="application/json")
    assert created.status_code == 201 and created.json()["username"] == "newcomer"
    again = clients["owner"].post("/api/users/", body, content_type="application/json")
    assert again.status_code == 409
    weak = clients["owner"].post(
        "/api/users/", {"username": "weak", "password": "123"}, content_type="application/json"
    )
    assert weak.status_code == 400 and "too short" in weak.json()["error"]
    assert django_user_model.objects.filter(username="weak").count() == 0


def test_unknown_api_path_answers_json_404(client):
    response = client.get("/api/nothing-here/")
    assert response.status_code == 404
    assert "No API endpoint" in response.json()["error"]


def test_feature_handling_can_be_edited_and_bad_options_are_named(project, dataset, clients):
    mltask = create_mltask(clients["owner"], project, dataset).json()
    features = mltask["features"]
    by_name = {f["name"]: f for f in features}
    by_name["sepal_length"]["handling"] = {"rescaling": "minmax", "missing": "constant", "missing_value": -1}
    by_name["sepal_width"]["input"] = "wide"
    by_name["note"]["role"] = "reject"
    url = f"/api/mltasks/{mltask['id']}/"
    saved = clients["owner"].patch(
        url, {"version": mltask["version"], "features": features}, content_type="application/json"
    )
    assert saved.status_code == 200, saved.json()
    kept = {f["name"]: f for f in saved.json()["features"]}
    assert kept["sepal_length"]["handling"] == {
        "rescaling": "minmax",
        "missing": "constant",
        "missing_value": -1.0,
    }
    assert kept["sepal_width"]["input"] == "wide" and kept["note"]["role"] == "reject"

    by_name["sepal_length"]["handling"] = {"rescaling": "log"}
    refused = clients["owner"].patch(
        url, {"version": saved.json()["version"], "features": features}, content_type="application/json"
    )
    assert refused.status_code == 400
    assert "rescaling of 'sepal_length' must be one of standard, minmax, none" in refused.json()["error"]
    by_name["sepal_length"]["handling"] = {}
    by_name["note"]["handling"] = {"max_levels": 0}
    by_name["note"]["role"] = "input"
    refused = clients["owner"].patch(
        url, {"version": saved.json()["version"], "features": features}, content_type="application/json"
    )
    assert "max_levels of 'note' must be a whole number from 1 to 10000" in refused.json()["error"]
    assert MLTask.objects.get(pk=mltask["id"]).version == saved.json()["version"]
