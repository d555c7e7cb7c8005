"""Duplicating analyses and ML tasks through the API: within a project, into another project where
the user is editor (its datasets and their files copied there, so it stands alone), refused for
projects where the user is viewer (403) or not a member (404), 400 naming the columns another
dataset lacks; and a copy is independent of its original."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analyses.models import Activity, Analysis, Dataset, Membership, MLTask, Project, Role, Session
from tests.conftest import IRIS_CSV, upload
from tests.digits_images import indexed_zip

pytestmark = pytest.mark.django_db


def post(client, path: str, body: dict | None = None):
    return client.post(path, json.dumps(body or {}), content_type="application/json")


def patch(client, mltask: dict, **fields):
    return client.patch(
        f"/api/mltasks/{mltask['id']}/",
        {"version": mltask["version"], **fields},
        content_type="application/json",
    )


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "files"
    return settings.MEDIA_ROOT


@pytest.fixture
def other(users) -> Project:
    """A second project: the editor is editor there, the viewer only a viewer, the owner absent."""
    project = Project.objects.create(name="elsewhere", created_by=users["editor"])
    Membership.objects.create(project=project, user=users["editor"], role=Role.EDITOR)
    Membership.objects.create(project=project, user=users["viewer"], role=Role.VIEWER)
    return project


def analysis_with_tasks(client, project: Project, dataset_id: int) -> tuple[dict, list[dict]]:
    """An analysis with two ML tasks (one with edited code and settings) and a session row."""
    analysis = post(
        client, f"/api/projects/{project.pk}/analyses/", {"dataset": dataset_id, "name": "a"}
    ).json()
    species = post(client, f"/api/analyses/{analysis['id']}/mltasks/", {"target": "species"}).json()
    edited = patch(client, species, architecture_code="# tuned\n", training={"epochs": 7})
    assert edited.status_code == 200, edited.content
    width = post(client, f"/api/analyses/{analysis['id']}/mltasks/", {"target": "sepal_width"}).json()
    assert post(client, f"/api/mltasks/{species['id']}/sessions/").status_code == 201
    return analysis, [edited.json(), width]


def design_of(mltask: dict) -> dict:
    return {k: mltask[k] for k in ("targets", "features", "architecture_code", "training", "metric")}


def test_an_analysis_is_copied_within_its_project_with_its_ml_tasks_but_no_sessions(project, clients, media):
    editor = clients["editor"]
    dataset = upload(editor, project.pk, "iris.csv", IRIS_CSV.encode(), name="iris").json()
    analysis, tasks = analysis_with_tasks(editor, project, dataset["id"])

    response = post(editor, f"/api/analyses/{analysis['id']}/duplicate/")
    assert response.status_code == 201, response.content
    copy = response.json()
    assert copy["id"] != analysis["id"] and copy["project"] == project.pk
    assert copy["name"] == "Copy of a" and copy["dataset"] == dataset["id"]  # same project: same dataset
    copies = [editor.get(f"/api/mltasks/{t['id']}/").json() for t in copy["mltasks"]]
    assert [design_of(c) for c in copies] == [design_of(t) for t in tasks]
    assert copies[0]["architecture_code"] == "# tuned\n" and copies[0]["version"] == 1
    assert not Session.objects.filter(mltask_id__in=[c["id"] for c in copies]).exists()
    assert Dataset.objects.count() == 1

    named = post(editor, f"/api/analyses/{analysis['id']}/duplicate/", {"name": "second try"})
    assert named.status_code == 201 and named.json()["name"] == "second try"
    entries = Activity.objects.filter(project=project, verb="duplicated").order_by("id")
    assert [(e.object_type, e.object_id, e.label) for e in entries] == [
        ("analysis", copy["id"], "analysis Copy of a"),
        ("analysis", named.json()["id"], "analysis second try"),
    ]
    assert entries[0].details["from"] == "analysis a" and entries[0].actor.username == "editor"


def test_an_ml_task_copy_is_independent_of_its_original(project, clients, media):
    editor = clients["editor"]
    dataset = upload(editor, project.pk, "iris.csv", IRIS_CSV.encode(), name="iris").json()
    _, (species, _) = analysis_with_tasks(editor, project, dataset["id"])

    response = post(editor, f"/api/mltasks/{species['id']}/duplicate/")
    assert response.status_code == 201, response.content
    copy = response.json()
    assert copy["analysis"] == species["analysis"] and design_of(copy) == design_of(species)
    changed = patch(editor, copy, architecture_code="# only the copy\n", training={"epochs": 2})
    assert changed.status_code == 200, changed.content

    original = editor.get(f"/api/mltasks/{species['id']}/").json()
    assert original["architecture_code"] == "# tuned\n" and original["training"]["epochs"] == 7
    assert original["version"] == species["version"]
    assert MLTask.objects.get(pk=copy["id"]).sessions.count() == 0


def test_an_analysis_copied_into_another_project_brings_its_datasets_and_files(
    project, other, clients, media
):
    editor = clients["editor"]
    train = upload(editor, project.pk, "iris.csv", IRIS_CSV.encode(), name="iris").json()
    test = upload(editor, project.pk, "iris_test.csv", IRIS_CSV.encode(), name="iris test").json()
    analysis, (species, _) = analysis_with_tasks(editor, project, train["id"])
    explicit = patch(editor, species, split={"mode": "explicit", "test_dataset": test["id"]})
    assert explicit.status_code == 200, explicit.content

    response = post(editor, f"/api/analyses/{analysis['id']}/duplicate/", {"project": other.pk})
    assert response.status_code == 201, response.content
    copy = response.json()
    assert copy["project"] == other.pk and copy["name"] == "a"
    copied = {d.name: d for d in Dataset.objects.filter(project=other)}
    assert sorted(copied) == ["iris", "iris test"]  # each copied once
    assert copy["dataset"] == copied["iris"].pk
    tasks = [editor.get(f"/api/mltasks/{t['id']}/").json() for t in copy["mltasks"]]
    assert tasks[0]["split"]["test_dataset"] == copied["iris test"].pk

    source_file = Path(Dataset.objects.get(pk=train["id"]).file.path)
    copy_file = Path(copied["iris"].file.path)
    assert copy_file.is_file() and copy_file != source_file
    assert copy_file.name.startswith(f"{other.pk}-")
    assert copy_file.read_bytes() == source_file.read_bytes()
    source_file.unlink()  # the other project stands alone: its copy still reads
    rows = clients["viewer"].get(f"/api/datasets/{copied['iris'].pk}/rows/?limit=3")
    assert rows.status_code == 200 and rows.json()["rows"][0][:3] == ["5.1", "3.5", "setosa"]
    assert clients["owner"].get(f"/api/datasets/{copied['iris'].pk}/").status_code == 404  # not a member

    here = Activity.objects.get(project=project, verb="duplicated")
    there = Activity.objects.get(project=other, verb="duplicated")
    assert (here.object_id, here.details) == (analysis["id"], {"to_project": "elsewhere", "copy": copy["id"]})
    assert there.object_id == copy["id"]
    assert there.details["from_project"] == "team" and sorted(there.details["datasets_copied"]) == sorted(
        copied
    )


def test_an_image_datasets_folder_is_copied_with_it(project, other, clients, media):
    editor = clients["editor"]
    dataset = upload(editor, project.pk, "digits.zip", indexed_zip(limit=12), name="digits").json()
    analysis = post(editor, f"/api/projects/{project.pk}/analyses/", {"dataset": dataset["id"]}).json()
    assert post(editor, f"/api/analyses/{analysis['id']}/mltasks/", {"target": "digit"}).status_code == 201

    response = post(editor, f"/api/analyses/{analysis['id']}/duplicate/", {"project": other.pk})
    assert response.status_code == 201, response.content
    source = Dataset.objects.get(pk=dataset["id"])
    copy = Dataset.objects.get(pk=response.json()["dataset"])
    assert copy.project_id == other.pk and copy.images_path != source.images_path
    names = sorted(p.relative_to(source.images_path) for p in source.images_path.rglob("*.png"))
    assert len(names) == 12
    assert sorted(p.relative_to(copy.images_path) for p in copy.images_path.rglob("*.png")) == names
    first = names[0]
    assert (copy.images_path / first).read_bytes() == (source.images_path / first).read_bytes()
    assert copy.column("file")["type"] == "image"
    assert os.path.commonpath([copy.images_path, media]) == str(media)


def test_the_target_project_must_be_one_where_the_user_is_editor(project, other, users, clients, media):
    editor, viewer = clients["editor"], clients["viewer"]
    dataset = upload(editor, project.pk, "iris.csv", IRIS_CSV.encode(), name="iris").json()
    analysis, (species, _) = analysis_with_tasks(editor, project, dataset["id"])

    refused = post(viewer, f"/api/analyses/{analysis['id']}/duplicate/", {"project": other.pk})
    assert refused.status_code == 403 and "editor" in refused.json()["error"]
    assert post(viewer, f"/api/analyses/{analysis['id']}/duplicate/").status_code == 403  # viewer here too
    hidden = post(clients["owner"], f"/api/analyses/{analysis['id']}/duplicate/", {"project": other.pk})
    assert hidden.status_code == 404
    outsider = post(clients["stranger"], f"/api/mltasks/{species['id']}/duplicate/")
    assert outsider.status_code == 404
    foreign = Analysis.objects.create(project=other, dataset=Dataset.objects.get(pk=dataset["id"]), name="x")
    assert (
        post(
            clients["owner"], f"/api/mltasks/{species['id']}/duplicate/", {"analysis": foreign.pk}
        ).status_code
        == 404
    )
    assert Analysis.objects.count() == 2 and MLTask.objects.count() == 2
    assert not Activity.objects.filter(verb="duplicated").exists()


def test_an_ml_task_moved_to_a_dataset_lacking_its_columns_is_refused_naming_them(
    project, other, clients, media
):
    editor = clients["editor"]
    dataset = upload(editor, project.pk, "iris.csv", IRIS_CSV.encode(), name="iris").json()
    _, (species, width) = analysis_with_tasks(editor, project, dataset["id"])
    narrow_csv = "sepal_length,species,extra\n5.1,setosa,1\n6.2,versicolor,2\n5.9,virginica,3\n"
    narrow = upload(editor, other.pk, "narrow.csv", narrow_csv.encode(), name="narrow").json()
    target = post(editor, f"/api/projects/{other.pk}/analyses/", {"dataset": narrow["id"]}).json()

    refused = post(editor, f"/api/mltasks/{species['id']}/duplicate/", {"analysis": target["id"]})
    assert refused.status_code == 400
    assert refused.json()["missing_columns"] == ["sepal_width", "note"]
    assert "'sepal_width', 'note'" in refused.json()["error"]
    assert not MLTask.objects.filter(analysis_id=target["id"]).exists()
    assert Dataset.objects.filter(project=other).count() == 1  # nothing copied for nothing

    wide_csv = IRIS_CSV.replace("setosa", "seto")  # all the columns, other labels
    wide = upload(editor, other.pk, "wide.csv", wide_csv.encode(), name="wide").json()
    fits = post(editor, f"/api/projects/{other.pk}/analyses/", {"dataset": wide["id"]}).json()
    moved = post(editor, f"/api/mltasks/{species['id']}/duplicate/", {"analysis": fits["id"]})
    assert moved.status_code == 201, moved.content
    assert moved.json()["dataset"] == wide["id"] and moved.json()["classes"] == [
        "seto",
        "versicolor",
        "virginica",
    ]
    assert moved.json()["architecture_code"] == "# tuned\n"
    assert Activity.objects.filter(project=other, verb="duplicated", object_id=moved.json()["id"]).exists()


def test_a_copy_that_fails_midway_leaves_no_rows_or_files_behind(project, other, clients, media):
    editor = clients["editor"]
    train = upload(editor, project.pk, "iris.csv", IRIS_CSV.encode(), name="iris").json()
    test = upload(editor, project.pk, "iris_test.csv", IRIS_CSV.encode(), name="iris test").json()
    analysis, (species, _) = analysis_with_tasks(editor, project, train["id"])
    assert patch(editor, species, split={"mode": "explicit", "test_dataset": test["id"]}).status_code == 200
    Path(Dataset.objects.get(pk=test["id"]).file.path).unlink()  # lost from storage
    before = sorted(media.rglob("*"))

    response = post(editor, f"/api/analyses/{analysis['id']}/duplicate/", {"project": other.pk})
    assert response.status_code == 400
    assert (
        response.json()["error"]
        == "The file of dataset 'iris test' is missing from storage; it cannot be copied."
    )
    assert sorted(media.rglob("*")) == before  # the copy of iris made first is gone again
    assert (
        not Dataset.objects.filter(project=other).exists()
        and not Analysis.objects.filter(project=other).exists()
    )


def test_a_copied_dataset_is_edited_apart_from_its_source(project, other, clients, media):
    editor = clients["editor"]
    dataset = upload(editor, project.pk, "iris.csv", IRIS_CSV.encode(), name="iris").json()
    analysis = post(editor, f"/api/projects/{project.pk}/analyses/", {"dataset": dataset["id"]}).json()
    copy = post(editor, f"/api/analyses/{analysis['id']}/duplicate/", {"project": other.pk}).json()
    retyped = editor.patch(
        f"/api/datasets/{copy['dataset']}/",
        {"columns": [{"name": "note", "type": "text"}]},
        content_type="application/json",
    )
    assert retyped.status_code == 200, retyped.content
    assert Dataset.objects.get(pk=copy["dataset"]).column("note")["type"] == "text"
    assert (
        Dataset.objects.get(pk=dataset["id"]).column("note")["type"]
        == dataset_type(dataset, "note")
        != "text"
    )


def dataset_type(dataset: dict, name: str) -> str:
    return next(c["type"] for c in dataset["columns"] if c["name"] == name)
