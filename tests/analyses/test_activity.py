"""The project activity feed: every action through the real API lands in it (who, what, which
object, linked), session endings are the platform's entries, it pages back by id, viewers read it,
outsiders get 404, and a failure to record never breaks the action it describes."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from analyses.models import Activity, Dataset, EpochMetric, MLTask, Session
from tests.analyses.test_api import create_mltask
from tests.conftest import IRIS_CSV, upload
from training_worker import recovery, supervisor
from training_worker.events import Status

pytestmark = pytest.mark.django_db


def feed(client, project, **query) -> dict:
    response = client.get(f"/api/projects/{project.pk}/activity/", query)
    assert response.status_code == 200, response.content
    return response.json()


def post(client, path: str, body: dict | None = None):
    return client.post(path, json.dumps(body or {}), content_type="application/json")


def only(client, project, verb: str) -> dict:
    entries = [e for e in feed(client, project, limit=200)["entries"] if e["verb"] == verb]
    assert len(entries) == 1, (verb, entries)
    return entries[0]


def test_uploads_edits_and_creations_are_in_the_feed_with_who_and_a_link(
    project, clients, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    owner, editor = clients["owner"], clients["editor"]
    dataset = upload(editor, project.pk, "iris.csv", IRIS_CSV.encode(), name="iris").json()
    edited = owner.patch(
        f"/api/datasets/{dataset['id']}/",
        {"columns": [{"name": "note", "type": "text"}]},
        content_type="application/json",
    )
    assert edited.status_code == 200, edited.content
    mltask = create_mltask(editor, project, Dataset.objects.get(pk=dataset["id"])).json()
    saved = editor.patch(
        f"/api/mltasks/{mltask['id']}/",
        {"version": mltask["version"], "training": {"epochs": 3}, "architecture_code": "# mine\n"},
        content_type="application/json",
    )
    assert saved.status_code == 200, saved.content

    entries = feed(clients["viewer"], project)["entries"]
    assert [e["verb"] for e in entries] == [
        "edited_mltask",
        "created_mltask",
        "created_analysis",
        "edited_dataset",
        "uploaded",
    ]  # newest first
    assert [e["actor"] for e in entries] == ["editor", "editor", "editor", "owner", "editor"]
    edit, created, analysis, retyped, uploaded = entries
    assert uploaded["object"] == {
        "type": "dataset",
        "id": dataset["id"],
        "label": "dataset iris",
        "url": f"/projects/{project.pk}/datasets/{dataset['id']}/",
    }
    assert uploaded["action"] == "uploaded" and uploaded["note"] == "7 rows"
    assert retyped["note"] == "note → text"
    assert analysis["object"]["type"] == "analysis"
    assert analysis["object"]["url"] == f"/projects/{project.pk}/analyses/{mltask['analysis']}/"
    assert created["object"]["label"] == "ML task species (multiclass)"
    assert created["object"]["url"] == f"/projects/{project.pk}/mltasks/{mltask['id']}/"
    assert edit["details"]["fields"] == ["architecture_code", "training"]
    assert edit["note"] == "version 2: architecture_code, training"
    assert all(e["created_at"] for e in entries)


@pytest.fixture
def mltask(project, dataset, clients) -> MLTask:
    return MLTask.objects.get(pk=create_mltask(clients["owner"], project, dataset).json()["id"])


def test_train_interrupt_abort_and_continue_are_recorded_per_session(project, mltask, clients, users):
    editor = clients["editor"]
    first = post(editor, f"/api/mltasks/{mltask.pk}/sessions/")
    second = post(editor, f"/api/mltasks/{mltask.pk}/sessions/")
    assert first.status_code == second.status_code == 201
    first, second = first.json()["id"], second.json()["id"]  # queued: no worker in a test transaction
    assert post(editor, f"/api/sessions/{first}/interrupt/").status_code == 200
    assert post(clients["owner"], f"/api/sessions/{second}/abort/").status_code == 200
    assert post(editor, f"/api/sessions/{second}/abort/").status_code == 409  # already ended: no entry

    trained = [e for e in feed(editor, project)["entries"] if e["verb"] == "trained"]
    assert [e["details"]["session"] for e in trained] == [second, first]
    assert trained[0]["object"]["url"] == f"/projects/{project.pk}/sessions/{second}/"
    assert trained[0]["object"]["label"] == "ML task species (multiclass)"
    interrupted = only(editor, project, "interrupted")
    assert interrupted["actor"] == "editor" and interrupted["details"] == {
        "session": first,
        "status": "aborted",  # a queued session stops before it starts
    }
    aborted = only(editor, project, "aborted")
    assert aborted["actor"] == "owner" and aborted["note"] == f"session {second}"

    done = Session.objects.create(
        mltask=mltask,
        design=mltask.design() | {"version": mltask.version},
        created_by=users["owner"],
        status="interrupted",
        epochs_total=4,
        epochs_done=1,
        artifacts={"model": "sessions/x/output/model.keras"},
    )
    EpochMetric.objects.create(session=done, epoch=1, seconds=0.1, values={"loss": 1.0})
    resumed = post(editor, f"/api/sessions/{done.pk}/resume/", {"epochs": 6})
    assert resumed.status_code == 201, resumed.content
    continued = only(editor, project, "continued")
    assert continued["details"] == {"session": resumed.json()["id"], "from_session": done.pk}
    assert continued["note"] == f"session {resumed.json()['id']}, from session {done.pk}"


def test_a_session_ending_is_the_platforms_entry_once(project, mltask, users, clients):
    session = Session.objects.create(
        mltask=mltask, design=mltask.design(), created_by=users["editor"], status="running"
    )
    supervisor.finish(session.pk, Status.SUCCEEDED, final_metrics={"Test ROC AUC": 0.97, "loss": 0.1})
    supervisor.finish(session.pk, Status.FAILED, error={"phase": "fit", "message": "late"})  # no change
    failed = Session.objects.create(
        mltask=mltask, design=mltask.design(), created_by=users["editor"], status="starting"
    )
    supervisor.finish(failed.pk, Status.FAILED, error={"phase": "build_model", "message": "returned None"})

    lost = Session.objects.create(
        mltask=mltask,
        design=mltask.design(),
        created_by=users["editor"],
        status="running",
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )
    assert recovery.fail_lost_sessions(60) == 1  # its supervisor went silent

    entries = [e for e in feed(clients["viewer"], project)["entries"] if e["verb"].startswith("session_")]
    assert [e["verb"] for e in entries] == ["session_failed", "session_failed", "session_succeeded"]
    assert entries[0]["note"].startswith(f"session {lost.pk} failed in runner: Worker lost")
    _, failure, success = entries
    assert success["actor"] is None
    assert success["note"] == f"session {session.pk} succeeded — Test ROC AUC 0.97"
    assert success["object"]["url"] == f"/projects/{project.pk}/sessions/{session.pk}/"
    assert failure["note"] == f"session {failed.pk} failed in build_model: returned None"


def test_scoring_and_deleting_a_session_are_recorded(
    project, mltask, dataset, users, clients, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    session = Session.objects.create(
        mltask=mltask, design=mltask.design(), created_by=users["owner"], status="succeeded"
    )
    output = tmp_path / "sessions" / str(session.pk) / "output"
    output.mkdir(parents=True)
    for name in ("model.keras", "preprocessing.joblib"):
        (output / name).write_bytes(b"stand-in")  # scoring checks they are stored; no job runs here
    session.artifacts = {
        "model": f"sessions/{session.pk}/output/model.keras",
        "preprocessing": f"sessions/{session.pk}/output/preprocessing.joblib",
    }
    session.save(update_fields=["artifacts"])
    scored = post(clients["editor"], f"/api/sessions/{session.pk}/score/", {"dataset": dataset.pk})
    assert scored.status_code == 201, scored.content
    failed = Session.objects.create(
        mltask=mltask, design=mltask.design(), created_by=users["owner"], status="failed"
    )
    assert clients["editor"].delete(f"/api/sessions/{failed.pk}/").status_code == 204

    entry = only(clients["viewer"], project, "scored")
    assert entry["note"] == f"session {session.pk} → iris" and entry["actor"] == "editor"
    assert entry["details"]["job"] == scored.json()["id"]
    assert entry["object"]["url"] == f"/projects/{project.pk}/sessions/{session.pk}/"
    deleted = only(clients["viewer"], project, "deleted_session")
    assert deleted["object"] == {
        "type": "session",
        "id": failed.pk,
        "label": "ML task species (multiclass)",
        "url": None,  # nothing left to open
    }


def test_member_and_variable_changes_are_recorded(project, clients):
    owner = clients["owner"]
    members = f"/api/projects/{project.pk}/members/"
    assert post(owner, members, {"username": "stranger", "role": "viewer"}).status_code == 201
    assert post(owner, members, {"username": "stranger", "role": "editor"}).status_code == 201
    assert (
        post(owner, members, {"username": "stranger", "role": "editor"}).status_code == 201
    )  # same: no entry
    assert owner.delete(f"{members}stranger/").status_code == 200
    variables = f"/api/projects/{project.pk}/variables/"
    assert (
        owner.put(variables, json.dumps({"lr": 0.1, "n": 1}), content_type="application/json").status_code
        == 200
    )
    assert (
        owner.put(variables, json.dumps({"lr": 0.2, "n": 1}), content_type="application/json").status_code
        == 200
    )

    entries = feed(clients["viewer"], project)["entries"]
    assert [(e["verb"], e["object"]["label"], e["note"]) for e in entries] == [
        ("variables_changed", "", "lr"),
        ("variables_changed", "", "lr, n"),
        ("member_removed", "stranger", ""),
        ("role_changed", "stranger", "viewer → editor"),
        ("member_added", "stranger", "as viewer"),
    ]
    assert {e["actor"] for e in entries} == {"owner"}


def test_the_feed_pages_back_by_id(project, users, clients):
    for n in range(7):
        Activity.objects.create(project=project, actor=users["owner"], verb="uploaded", label=f"dataset d{n}")
    first = feed(clients["viewer"], project, limit=3)
    assert [e["object"]["label"] for e in first["entries"]] == ["dataset d6", "dataset d5", "dataset d4"]
    second = feed(clients["viewer"], project, limit=3, before=first["next_before"])
    assert [e["object"]["label"] for e in second["entries"]] == ["dataset d3", "dataset d2", "dataset d1"]
    last = feed(clients["viewer"], project, limit=3, before=second["next_before"])
    assert [e["object"]["label"] for e in last["entries"]] == ["dataset d0"]
    assert last["next_before"] is None
    assert len(feed(clients["viewer"], project)["entries"]) == 7  # 50 by default
    bad = clients["viewer"].get(f"/api/projects/{project.pk}/activity/", {"limit": 0})
    assert bad.status_code == 400 and "limit" in bad.json()["error"]


def test_outsiders_get_404_and_see_no_other_projects_entries(project, users, clients):
    Activity.objects.create(project=project, actor=users["owner"], verb="uploaded", label="dataset secret")
    response = clients["stranger"].get(f"/api/projects/{project.pk}/activity/")
    assert response.status_code == 404 and "secret" not in response.content.decode()
    other = post(clients["stranger"], "/api/projects/", {"name": "mine"}).json()
    answer = clients["stranger"].get(f"/api/projects/{other['id']}/activity/").json()
    assert answer == {"entries": [], "next_before": None}


@pytest.fixture
def activity_refused():
    """The database refuses every new activity row (as a full disk or a lock would), nothing else."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "CREATE TRIGGER refuse_activity BEFORE INSERT ON analyses_activity "
                "BEGIN SELECT RAISE(ABORT, 'activity refused'); END"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION refuse_activity() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'activity refused'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_activity BEFORE INSERT ON analyses_activity "
                "FOR EACH ROW EXECUTE FUNCTION refuse_activity()"
            )
    yield  # the test's transaction rolls the trigger back


def test_a_failure_to_record_never_breaks_the_action(
    project, clients, settings, tmp_path, caplog, activity_refused
):
    settings.MEDIA_ROOT = tmp_path
    response = upload(clients["editor"], project.pk, "iris.csv", IRIS_CSV.encode(), name="iris")
    assert response.status_code == 201, response.content
    dataset = Dataset.objects.get(pk=response.json()["id"])
    assert Path(dataset.file.path).is_file()
    mltask = create_mltask(clients["editor"], project, dataset)  # in a transaction of its own making
    assert mltask.status_code == 201 and MLTask.objects.filter(pk=mltask.json()["id"]).exists()
    assert Activity.objects.count() == 0
    assert "could not record 'uploaded'" in caplog.text and "activity refused" in caplog.text
