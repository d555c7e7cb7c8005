"""ML task revisions through the JSON API: every save is a revision (author, time, message), any two
diff, restore adds a revision and never rewrites history, a stale save or restore is refused with
the teammate's version and the diff, sessions record the revision they ran; viewers read the
history but cannot restore, outsiders get 404."""

from __future__ import annotations

import importlib
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing, contextmanager

import pytest
from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

from analyses.models import EpochMetric, MLTask, MLTaskRevision, Session
from tests.analyses.test_api import create_mltask
from tests.conftest import api_client

pytestmark = pytest.mark.django_db

JSON = "application/json"


@pytest.fixture
def mltask(project, dataset, clients) -> dict:
    """A multiclass ML task on iris made by the owner: revision 1."""
    response = create_mltask(clients["owner"], project, dataset)
    assert response.status_code == 201, response.content
    return response.json()


def patch(client, mltask_id: int, version: int, **fields):
    return client.patch(f"/api/mltasks/{mltask_id}/", {"version": version, **fields}, content_type=JSON)


def get(client, path: str, status: int = 200) -> dict:
    response = client.get(path)
    assert response.status_code == status, response.content
    return response.json()


def restore(client, mltask_id: int, number: int, version: int, **extra):
    return client.post(
        f"/api/mltasks/{mltask_id}/revisions/{number}/restore/",
        {"version": version, **extra},
        content_type=JSON,
    )


def test_every_save_is_a_revision_with_its_author_time_and_message(mltask, clients):
    base = f"/api/mltasks/{mltask['id']}/revisions/"
    first = get(clients["viewer"], base)
    assert first["version"] == 1 and first["total"] == 1
    assert [(r["number"], r["author"], r["summary"]) for r in first["revisions"]] == [(1, "owner", "Created")]

    code = mltask["architecture_code"].replace("Dense(64", "Dense(128")
    assert code != mltask["architecture_code"]
    saved = patch(clients["editor"], mltask["id"], 1, architecture_code=code, message="  wider layer  ")
    assert saved.status_code == 200 and saved.json()["version"] == 2
    untitled = patch(clients["owner"], mltask["id"], 2, training={"epochs": 25})
    assert untitled.status_code == 200

    listed = get(clients["viewer"], base)
    assert listed["version"] == 3 and listed["total"] == 3 and listed["updated_by"] == "owner"
    newest, middle, oldest = listed["revisions"]
    assert (newest["number"], newest["author"], newest["message"]) == (3, "owner", "")
    # (a first PATCH also fills settings newer than the task's defaults, e.g. target_rescaling)
    assert newest["summary"].startswith("training.epochs: 10 → 25")
    assert (middle["number"], middle["author"], middle["message"]) == (2, "editor", "wider layer")
    assert middle["summary"] == "Architecture code (+1 −1)"
    assert oldest["number"] == 1
    assert newest["created_at"] >= middle["created_at"] >= oldest["created_at"]
    assert "design" not in newest  # the list stays small; the detail carries the design

    # ?limit=1: the editor's cheap check for a teammate's save.
    latest = get(clients["viewer"], f"{base}?limit=1")
    assert latest["version"] == 3 and [r["number"] for r in latest["revisions"]] == [3]
    assert [r["number"] for r in get(clients["viewer"], f"{base}?limit=1&offset=1")["revisions"]] == [2]
    assert clients["viewer"].get(f"{base}?limit=0").status_code == 400

    # A message longer than 500 characters is refused, and nothing is saved.
    too_long = patch(clients["owner"], mltask["id"], 3, training={"epochs": 5}, message="x" * 501)
    assert too_long.status_code == 422 and "message" in too_long.json()["error"]
    assert MLTask.objects.get(pk=mltask["id"]).version == 3
    assert MLTaskRevision.objects.filter(mltask_id=mltask["id"]).count() == 3


def test_a_revision_keeps_its_design_and_any_two_diff(mltask, clients):
    code = mltask["architecture_code"] + "\n# tuned\n"
    patch(clients["owner"], mltask["id"], 1, architecture_code=code, training={"epochs": 3})
    base = f"/api/mltasks/{mltask['id']}/revisions/"

    one, two = get(clients["viewer"], f"{base}1/"), get(clients["viewer"], f"{base}2/")
    assert one["design"] == mltask["design"]
    assert two["design"]["architecture_code"] == code and two["design"]["training"]["epochs"] == 3
    assert two["design"] == get(clients["viewer"], f"/api/mltasks/{mltask['id']}/")["design"]

    diff = get(clients["viewer"], f"{base}1/diff/2/")
    assert (diff["a"]["number"], diff["b"]["number"], diff["same"]) == (1, 2, False)
    architecture = next(item for item in diff["code"] if item["name"] == "architecture_code")
    assert architecture["changed"] is True
    assert architecture["diff"].startswith("--- revision 1\n+++ revision 2\n")
    assert "+# tuned" in architecture["diff"].splitlines()
    assert not next(item for item in diff["code"] if item["name"] == "training_code")["changed"]
    assert {"path": "training.epochs", "before": 10, "after": 3, "change": "changed"} in diff["settings"]
    assert not any(item["path"].startswith(("architecture", "features")) for item in diff["settings"])
    backwards = get(clients["viewer"], f"{base}2/diff/1/")
    assert "-# tuned" in next(i for i in backwards["code"] if i["name"] == "architecture_code")["diff"]
    assert get(clients["viewer"], f"{base}2/diff/2/")["same"] is True

    assert clients["viewer"].get(f"{base}9/").status_code == 404
    assert clients["viewer"].get(f"{base}1/diff/9/").status_code == 404


def test_restore_adds_a_revision_with_the_old_design_and_refuses_a_stale_version(mltask, clients):
    original = mltask["design"]
    patch(clients["owner"], mltask["id"], 1, architecture_code="# broken\n", training={"epochs": 2})
    patch(clients["editor"], mltask["id"], 2, split={"train_ratio": 0.6}, metric="Accuracy")

    restored = restore(clients["editor"], mltask["id"], 1, 3, message="back to the defaults")
    assert restored.status_code == 200, restored.content
    body = restored.json()
    assert body["version"] == 4 and body["design"] == original
    assert body["revision"]["number"] == 4 and body["revision"]["restored_from"] == 1
    assert body["revision"]["message"] == "Restored revision 1: back to the defaults"
    assert body["revision"]["author"] == "editor"
    assert MLTask.objects.get(pk=mltask["id"]).design() == original

    # History is never rewritten: revisions 2 and 3 keep what they were.
    history = get(clients["viewer"], f"/api/mltasks/{mltask['id']}/revisions/")
    assert [r["number"] for r in history["revisions"]] == [4, 3, 2, 1]
    two = get(clients["viewer"], f"/api/mltasks/{mltask['id']}/revisions/2/")
    assert two["design"]["architecture_code"] == "# broken\n"
    assert get(clients["viewer"], f"/api/mltasks/{mltask['id']}/revisions/1/diff/4/")["same"] is True

    # A restore based on version 3 (someone restored meanwhile) is refused, like a stale PATCH.
    stale = restore(clients["owner"], mltask["id"], 2, 3)
    assert stale.status_code == 409
    answer = stale.json()
    assert "saved by editor since you opened it" in answer["error"]
    assert answer["current"]["version"] == 4
    assert [r["number"] for r in answer["conflict"]["since"]] == [4]
    assert MLTask.objects.get(pk=mltask["id"]).version == 4
    assert MLTaskRevision.objects.filter(mltask_id=mltask["id"]).count() == 4


def test_two_saves_from_the_same_version_one_wins_the_other_gets_the_teammates_version_and_diff(
    mltask, clients
):
    code = mltask["architecture_code"]
    owners = code.replace("Dense(64", "Dense(256")
    editors = code + "\n# the editor's idea\n"
    first = patch(clients["owner"], mltask["id"], 1, architecture_code=owners, message="bigger")
    second = patch(clients["editor"], mltask["id"], 1, architecture_code=editors)
    assert first.status_code == 200 and second.status_code == 409

    answer = second.json()
    assert answer["current"]["architecture_code"] == owners  # the teammate's version
    conflict = answer["conflict"]
    assert (conflict["base"], conflict["latest"]) == (1, 2)
    assert [(r["number"], r["author"], r["message"]) for r in conflict["since"]] == [(2, "owner", "bigger")]
    diff = next(item for item in conflict["diff"]["code"] if item["name"] == "architecture_code")
    lines = diff["diff"].splitlines()
    assert any(line.startswith("-") and "Dense(64" in line for line in lines)
    assert any(line.startswith("+") and "Dense(256" in line for line in lines)
    assert conflict["diff"]["settings"] == []
    # Nothing of the refused save was kept, and it made no revision.
    assert MLTask.objects.get(pk=mltask["id"]).architecture_code == owners
    assert list(MLTaskRevision.objects.filter(mltask_id=mltask["id"]).values_list("number", flat=True)) == [
        2,
        1,
    ]


def _own_database(tmp_path) -> Callable[[], BaseDatabaseWrapper] | None:
    """How each thread opens the database: on PostgreSQL its own connection to the test database
    (None: Django's default). The SQLite test database is in memory with a shared cache, whose
    table locks fail at once rather than wait; so the threads use a file copy of it, opened as
    production opens SQLite (WAL, BEGIN IMMEDIATE, a busy timeout)."""
    if connection.vendor != "sqlite":
        return None
    path = tmp_path / "db.sqlite3"
    connection.ensure_connection()
    with closing(sqlite3.connect(path)) as target:
        connection.connection.backup(target)
    file_settings = {**connection.settings_dict, "NAME": str(path)}
    assert file_settings["OPTIONS"].get("transaction_mode") == "IMMEDIATE"
    return lambda: SQLiteWrapper(file_settings, DEFAULT_DB_ALIAS)


@contextmanager
def on_database(opener: Callable[[], BaseDatabaseWrapper] | None):
    """This thread's queries go to ``opener()``'s connection while inside (when there is one)."""
    before = connections[DEFAULT_DB_ALIAS] if opener else None
    if opener:
        connections[DEFAULT_DB_ALIAS] = opener()
    try:
        yield
    finally:
        if opener:
            connections[DEFAULT_DB_ALIAS].close()
            connections[DEFAULT_DB_ALIAS] = before


@pytest.mark.django_db(transaction=True)
def test_concurrent_saves_in_threads_make_exactly_one_revision(project, dataset, users, tmp_path):
    """Several editors save from version 1 at the same moment, each request on its own thread and
    database connection: exactly one wins and makes revision 2; the others get 409."""
    owner = api_client(users["owner"])
    mltask = create_mltask(owner, project, dataset).json()
    clients = [api_client(users[name]) for name in ("owner", "editor", "owner", "editor", "owner")]
    opener = _own_database(tmp_path)
    start = threading.Barrier(len(clients))
    statuses: list[int] = []

    def save(index: int, client) -> None:
        with on_database(opener):
            try:
                start.wait()
                response = patch(client, mltask["id"], 1, architecture_code=f"# save {index}\n")
                statuses.append(response.status_code)
            finally:
                connections[DEFAULT_DB_ALIAS].close()

    threads = [threading.Thread(target=save, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [200, 409, 409, 409, 409]
    with on_database(opener):
        task = MLTask.objects.get(pk=mltask["id"])
        revisions = list(MLTaskRevision.objects.filter(mltask=task))
        assert task.version == 2 and [r.number for r in revisions] == [2, 1]
        assert revisions[0].design["architecture_code"] == task.architecture_code
        assert revisions[0].author.username in ("owner", "editor")


def test_a_session_records_the_revision_it_ran_and_a_resume_keeps_it(mltask, clients, users, client):
    patch(clients["owner"], mltask["id"], 1, training={"epochs": 4})
    trained = clients["editor"].post(f"/api/mltasks/{mltask['id']}/sessions/", {}, content_type=JSON)
    assert trained.status_code == 201 and trained.json()["revision"] == 2
    session = Session.objects.get(pk=trained.json()["id"])
    assert session.revision.number == 2 and session.revision.design["training"]["epochs"] == 4
    assert get(clients["viewer"], f"/api/sessions/{session.pk}/")["revision"] == 2
    assert [s["revision"] for s in get(clients["viewer"], f"/api/mltasks/{mltask['id']}/sessions/")] == [2]

    # The design moves on; the session still says which revision it ran, and so does its page.
    patch(clients["owner"], mltask["id"], 2, training={"epochs": 6})
    Session.objects.filter(pk=session.pk).update(
        status="interrupted", artifacts={"model": "output/model.keras"}
    )
    EpochMetric.objects.create(session=session, epoch=1, seconds=1.0, values={"loss": 1.0})
    resumed = clients["editor"].post(f"/api/sessions/{session.pk}/resume/", {}, content_type=JSON)
    assert resumed.status_code == 201, resumed.content
    assert resumed.json()["revision"] == 2  # it goes on with the source's design
    again = clients["editor"].post(f"/api/mltasks/{mltask['id']}/sessions/", {}, content_type=JSON)
    assert again.json()["revision"] == 3

    client.force_login(users["viewer"])
    page = client.get(f"/projects/{mltask['project']}/sessions/{session.pk}/")
    assert page.status_code == 200
    assert f'href="/projects/{mltask["project"]}/mltasks/{mltask["id"]}/?revision=2#history"' in (
        page.content.decode()
    )


def test_an_ml_task_without_history_gets_a_revision_when_it_trains(mltask, clients):
    MLTaskRevision.objects.filter(mltask_id=mltask["id"]).delete()
    trained = clients["owner"].post(f"/api/mltasks/{mltask['id']}/sessions/", {}, content_type=JSON)
    assert trained.json()["revision"] == 1
    assert MLTaskRevision.objects.get(mltask_id=mltask["id"]).design == mltask["design"]


def test_the_migration_gives_existing_ml_tasks_a_revision_of_their_current_version(mltask, clients, users):
    patch(clients["owner"], mltask["id"], 1, training={"epochs": 7})
    session = Session.objects.create(
        mltask_id=mltask["id"], design={**mltask["design"], "version": 2}, created_by=users["owner"]
    )
    old = Session.objects.create(
        mltask_id=mltask["id"], design={**mltask["design"], "version": 1}, created_by=users["owner"]
    )
    MLTaskRevision.objects.all().delete()  # as before the migration

    importlib.import_module("analyses.migrations.0009_revisions").first_revisions(apps, None)

    task = MLTask.objects.get(pk=mltask["id"])
    (revision,) = MLTaskRevision.objects.filter(mltask=task)
    assert revision.number == 2 and revision.design == task.design()
    assert revision.author.username == "owner" and revision.created_at == task.updated_at
    session.refresh_from_db()
    old.refresh_from_db()
    assert session.revision == revision and old.revision is None


def test_viewers_read_the_history_but_cannot_restore_and_outsiders_get_404(mltask, clients):
    patch(clients["owner"], mltask["id"], 1, training={"epochs": 2})
    base = f"/api/mltasks/{mltask['id']}/revisions/"
    for path in (base, f"{base}1/", f"{base}1/diff/2/"):
        assert clients["viewer"].get(path).status_code == 200
        assert clients["stranger"].get(path).status_code == 404
    refused = restore(clients["viewer"], mltask["id"], 1, 2)
    assert refused.status_code == 403 and "needs the editor role" in refused.json()["error"]
    assert restore(clients["stranger"], mltask["id"], 1, 2).status_code == 404
    assert restore(clients["editor"], mltask["id"], 7, 2).status_code == 404
    assert MLTask.objects.get(pk=mltask["id"]).version == 2
