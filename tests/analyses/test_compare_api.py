"""Comparing sessions through the JSON API: the sessions table and its sorting, several sessions
side by side, the diff of two designs, and deleting a session with its files (editors only; never
while it may still run); outsiders and sessions of another ML task get 404."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from analyses.models import Analysis, EpochMetric, MLTask, Project, ScoringJob, Session, SessionLog
from tests.analyses.test_api import create_mltask

pytestmark = pytest.mark.django_db


@pytest.fixture
def mltask(project, dataset, clients) -> MLTask:
    """A multiclass ML task on iris (optimization metric ROC AUC: "Test ROC AUC")."""
    return MLTask.objects.get(pk=create_mltask(clients["owner"], project, dataset).json()["id"])


def make_session(mltask: MLTask, user, status="succeeded", seconds=None, final=None, epochs=(), **design):
    """A session row as the supervisor leaves it, with its epoch rows; ``design`` overrides the
    ML task's design in the snapshot (``training`` merged)."""
    snapshot = mltask.design() | {"version": mltask.version}
    snapshot |= {k: v for k, v in design.items() if k != "training"}
    snapshot["training"] = {**mltask.training, **design.get("training", {})}
    now = timezone.now()
    session = Session.objects.create(
        mltask=mltask,
        design=snapshot,
        created_by=user,
        status=status,
        started_at=now - timedelta(seconds=seconds) if seconds is not None else None,
        ended_at=now if seconds is not None and status not in ("queued", "starting", "running") else None,
        epochs_total=10,
        epochs_done=len(epochs),
        final_metrics=final,
        model_info={"kept": {"epoch": len(epochs), "metric": "Test ROC AUC"}} if epochs else None,
    )
    for number, values in enumerate(epochs, start=1):
        EpochMetric.objects.create(session=session, epoch=number, seconds=0.5, values=values)
    return session


def metrics(auc, loss, accuracy=0.9):
    return {
        "Train ROC AUC": auc + 0.01,
        "Test ROC AUC": auc,
        "Test Log Loss": loss,
        "Test Accuracy": accuracy,
    }


def table(client, mltask, sort=None):
    url = f"/api/mltasks/{mltask.pk}/sessions/table/" + (f"?sort={sort}" if sort else "")
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response.json()


def ids(answer) -> list[int]:
    return [row["id"] for row in answer["sessions"]]


def test_the_sessions_table_shows_each_run_and_sorts_by_any_column(mltask, users, clients):
    owner, editor = users["owner"], users["editor"]
    good = make_session(mltask, owner, seconds=120, final=metrics(0.97, 0.20), epochs=[metrics(0.9, 0.3)] * 4)
    poor = make_session(mltask, editor, seconds=30, final=metrics(0.81, 0.45, accuracy=0.95))
    failed = make_session(mltask, owner, status="failed", seconds=5)
    failed.error = {"phase": "build_model", "message": "build_model returned None"}
    failed.save(update_fields=["error"])
    running = make_session(mltask, editor, status="running", seconds=60)
    queued = make_session(mltask, owner, status="queued")

    answer = table(clients["viewer"], mltask)
    assert answer["metric"] == "Test ROC AUC" and answer["greater_is_better"] is True
    assert answer["sort"] == "-id"
    assert ids(answer) == [queued.pk, running.pk, failed.pk, poor.pk, good.pk]  # newest first
    # The optimization metric first, then the other Test metrics in the metric list's order, then Train.
    assert answer["columns"] == ["Test ROC AUC", "Test Accuracy", "Test Log Loss", "Train ROC AUC"]
    assert answer["higher_is_better"] == {
        "Test ROC AUC": True,
        "Test Log Loss": False,
        "Test Accuracy": True,
        "Train ROC AUC": True,
    }
    row = answer["sessions"][-1]
    assert row["status"] == "succeeded" and row["created_by"] == "owner"
    assert row["duration_seconds"] == pytest.approx(120, abs=0.2)
    assert (row["epochs_done"], row["epochs_total"], row["kept_epoch"]) == (4, 10, 4)
    assert row["metric_value"] == 0.97 and row["final_metrics"]["Test Log Loss"] == 0.20
    assert row["kept_by"] == "Test ROC AUC" and row["design_version"] == mltask.version
    assert row["queued_at"] and row["started_at"] and row["ended_at"]
    by_id = {row["id"]: row for row in answer["sessions"]}
    assert by_id[failed.pk]["error"] == "build_model returned None"
    assert by_id[queued.pk]["duration_seconds"] is None and by_id[queued.pk]["metric_value"] is None
    assert by_id[running.pk]["duration_seconds"] >= 60  # still counting

    # Sessions with no value come last either way; ties keep the newest first.
    assert ids(table(clients["viewer"], mltask, "-metric")) == [
        good.pk,
        poor.pk,
        queued.pk,
        running.pk,
        failed.pk,
    ]
    assert ids(table(clients["viewer"], mltask, "metric")) == [
        poor.pk,
        good.pk,
        queued.pk,
        running.pk,
        failed.pk,
    ]
    assert ids(table(clients["viewer"], mltask, "Test Log Loss"))[:2] == [good.pk, poor.pk]
    assert ids(table(clients["viewer"], mltask, "-Test Accuracy"))[:2] == [poor.pk, good.pk]
    assert ids(table(clients["viewer"], mltask, "-duration"))[:4] == [good.pk, running.pk, poor.pk, failed.pk]
    by_status = ids(table(clients["viewer"], mltask, "status"))  # the life cycle's order
    assert by_status == [queued.pk, running.pk, poor.pk, good.pk, failed.pk]
    assert ids(table(clients["viewer"], mltask, "created_by"))[:3] == [running.pk, poor.pk, queued.pk]
    assert ids(table(clients["viewer"], mltask, "id")) == [good.pk, poor.pk, failed.pk, running.pk, queued.pk]
    assert ids(table(clients["viewer"], mltask, "-started_at"))[-1] == queued.pk

    refused = clients["viewer"].get(f"/api/mltasks/{mltask.pk}/sessions/table/?sort=colour")
    assert refused.status_code == 400 and "'colour' is not a column" in refused.json()["error"]


def test_the_table_follows_the_ml_tasks_optimization_metric(mltask, users, clients):
    first = make_session(mltask, users["owner"], seconds=10, final=metrics(0.97, 0.30))
    second = make_session(mltask, users["owner"], seconds=10, final=metrics(0.90, 0.10))
    MLTask.objects.filter(pk=mltask.pk).update(metric="Log Loss")
    answer = table(clients["owner"], mltask, "-metric")
    assert answer["metric"] == "Test Log Loss" and answer["greater_is_better"] is False
    assert answer["columns"][0] == "Test Log Loss"
    assert [row["metric_value"] for row in answer["sessions"]] == [0.30, 0.10]
    assert ids(answer) == [first.pk, second.pk]


def test_compare_gives_each_sessions_epochs_and_the_best_value_of_every_metric(mltask, users, clients):
    a = make_session(
        mltask,
        users["owner"],
        seconds=20,
        final=metrics(0.95, 0.30, accuracy=0.9),
        epochs=[metrics(0.80, 0.6), metrics(0.90, 0.4), metrics(0.95, 0.3)],
    )
    b = make_session(
        mltask,
        users["editor"],
        seconds=9,
        final=metrics(0.93, 0.25, accuracy=0.9),
        epochs=[metrics(0.93, 0.25)],
    )
    response = clients["viewer"].get(f"/api/mltasks/{mltask.pk}/compare/?sessions={b.pk},{a.pk}")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["metric"] == "Test ROC AUC"
    assert [s["id"] for s in answer["sessions"]] == [b.pk, a.pk]  # in the order asked
    curves = {s["id"]: s["epochs"] for s in answer["sessions"]}
    assert [row["epoch"] for row in curves[a.pk]] == [1, 2, 3]
    assert [row["values"]["Test ROC AUC"] for row in curves[a.pk]] == [0.80, 0.90, 0.95]
    assert len(curves[b.pk]) == 1 and answer["sessions"][0]["created_by"] == "editor"

    rows = {row["name"]: row for row in answer["final_metrics"]}
    assert [row["name"] for row in answer["final_metrics"]][0] == "Test ROC AUC"
    assert rows["Test ROC AUC"]["values"] == {str(b.pk): 0.93, str(a.pk): 0.95}
    assert rows["Test ROC AUC"]["best"] == [a.pk]  # higher is better
    assert rows["Test Log Loss"]["best"] == [b.pk] and rows["Test Log Loss"]["greater_is_better"] is False
    assert sorted(rows["Test Accuracy"]["best"]) == sorted([a.pk, b.pk])  # a tie: both

    url = f"/api/mltasks/{mltask.pk}/compare/?sessions="
    for bad, says in ((f"{a.pk}", "got 1"), ("1,2,3,4,5,6,7,8,9", "got 9"), (f"{a.pk},x", "'x'")):
        refused = clients["viewer"].get(url + bad)
        assert refused.status_code == 400 and says in refused.json()["error"], refused.content


def test_the_diff_shows_code_changes_line_by_line_and_every_changed_setting(mltask, users, clients):
    code = mltask.architecture_code
    a = make_session(mltask, users["owner"], seconds=5)
    features = [dict(f) for f in mltask.features]
    features[0] = features[0] | {"handling": {**features[0].get("handling", {}), "rescaling": "minmax"}}
    b = make_session(
        mltask,
        users["owner"],
        seconds=5,
        architecture_code=code.replace("def build_model", "# wider layers\ndef build_model"),
        training={"epochs": 25, "code": mltask.training["code"] + "\n# tuned\n"},
        metric="Log Loss",
        features=features,
        version=mltask.version + 3,
    )
    response = clients["viewer"].get(f"/api/sessions/{a.pk}/diff/{b.pk}/")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["a"]["id"], answer["b"]["id"], answer["same"]) == (a.pk, b.pk, False)
    code_diffs = {item["name"]: item for item in answer["code"]}
    architecture = code_diffs["architecture_code"]["diff"].splitlines()
    assert architecture[:2] == [f"--- session {a.pk}", f"+++ session {b.pk}"]
    assert "+# wider layers" in architecture and not any(line.startswith("-") for line in architecture[2:])
    assert "+# tuned" in code_diffs["training_code"]["diff"].splitlines()
    assert code_diffs["preprocessing_code"] == {
        "name": "preprocessing_code",
        "label": "Preprocessing",
        "changed": False,
        "diff": "",
    }
    name = features[0]["name"]
    changes = {item["path"]: item for item in answer["settings"]}
    old_rescaling = mltask.features[0].get("handling", {}).get("rescaling")
    assert changes == {
        "metric": {"path": "metric", "before": mltask.metric, "after": "Log Loss", "change": "changed"},
        "training.epochs": {"path": "training.epochs", "before": 10, "after": 25, "change": "changed"},
        "version": {
            "path": "version",
            "before": mltask.version,
            "after": mltask.version + 3,
            "change": "changed",
        },
        f"features[{name}].handling.rescaling": {
            "path": f"features[{name}].handling.rescaling",
            "before": old_rescaling,
            "after": "minmax",
            "change": "changed" if old_rescaling is not None else "added",
        },
    }

    same = clients["viewer"].get(f"/api/sessions/{a.pk}/diff/{a.pk}/").json()
    assert same["same"] is True and same["settings"] == [] and all(not c["diff"] for c in same["code"])


def work_dir(data_dir, name) -> os.PathLike:
    folder = data_dir / "sessions" / str(name)
    (folder / "output").mkdir(parents=True)
    (folder / "output" / "model.keras").write_bytes(b"model")
    (folder / "job.json").write_text("{}")
    return folder


def test_deleting_a_session_removes_its_rows_and_files_and_a_warm_runners_dir(
    mltask, users, clients, settings, tmp_path
):
    settings.DATA_DIR = data_dir = tmp_path / "data"
    outside = tmp_path / "images"  # an image dataset's folder the work dir links to: it stays
    outside.mkdir()
    (outside / "cat.png").write_bytes(b"png")
    plain = make_session(
        mltask, users["owner"], seconds=5, final=metrics(0.9, 0.3), epochs=[metrics(0.9, 0.3)]
    )
    SessionLog.objects.create(session=plain, stream="stdout", text="hello")
    plain_dir = work_dir(data_dir, plain.pk)
    (plain_dir / "images").symlink_to(outside, target_is_directory=True)
    warm = make_session(mltask, users["owner"], status="aborted", seconds=5, epochs=[metrics(0.9, 0.3)])
    warm_dir = work_dir(data_dir, "warm-0123456789ab")
    (data_dir / "sessions" / str(warm.pk)).symlink_to("warm-0123456789ab", target_is_directory=True)
    other = make_session(mltask, users["owner"], seconds=5)
    other_dir = work_dir(data_dir, other.pk)

    assert clients["editor"].get(f"/api/sessions/{plain.pk}/").status_code == 200
    response = clients["editor"].delete(f"/api/sessions/{plain.pk}/")
    assert response.status_code == 204, response.content
    assert not Session.objects.filter(pk=plain.pk).exists()
    assert not EpochMetric.objects.filter(session_id=plain.pk).exists()
    assert not SessionLog.objects.filter(session_id=plain.pk).exists()
    assert not plain_dir.exists() and (outside / "cat.png").read_bytes() == b"png"
    assert clients["editor"].get(f"/api/sessions/{plain.pk}/").status_code == 404

    assert clients["owner"].delete(f"/api/sessions/{warm.pk}/").status_code == 204
    assert not (data_dir / "sessions" / str(warm.pk)).is_symlink() and not warm_dir.exists()
    assert other_dir.is_dir() and Session.objects.filter(pk=other.pk).exists()  # untouched

    # A link that leads out of DATA_DIR/sessions is removed, never followed.
    escaping = make_session(mltask, users["owner"], status="failed", seconds=1)
    (data_dir / "sessions" / str(escaping.pk)).symlink_to(outside, target_is_directory=True)
    assert clients["owner"].delete(f"/api/sessions/{escaping.pk}/").status_code == 204
    assert not (data_dir / "sessions" / str(escaping.pk)).is_symlink()
    assert (outside / "cat.png").exists()


def test_a_session_that_may_still_run_is_not_deleted(mltask, users, clients, settings, tmp_path):
    settings.DATA_DIR = data_dir = tmp_path / "data"
    for status in ("queued", "starting", "running"):
        session = make_session(
            mltask, users["owner"], status=status, seconds=None if status == "queued" else 3
        )
        folder = work_dir(data_dir, session.pk)
        response = clients["owner"].delete(f"/api/sessions/{session.pk}/")
        assert response.status_code == 409, response.content
        assert response.json()["error"] == (
            f"Session {session.pk} is {status}: interrupt or abort it first, then delete it once it "
            "has stopped."
        )
        assert Session.objects.filter(pk=session.pk).exists() and (folder / "output" / "model.keras").exists()

    # Nor one whose model a queued continuation will load when it starts.
    source = make_session(mltask, users["owner"], status="interrupted", seconds=3)
    continuation = make_session(mltask, users["owner"], status="queued", resume={"session_id": source.pk})
    refused = clients["owner"].delete(f"/api/sessions/{source.pk}/")
    assert (
        refused.status_code == 409 and f"session {continuation.pk} continues from" in refused.json()["error"]
    )
    Session.objects.filter(pk=continuation.pk).update(status="running")

    # Nor one whose model a scoring job is applying.
    job = ScoringJob.objects.create(session=source, dataset=mltask.analysis.dataset, status="running")
    refused = clients["owner"].delete(f"/api/sessions/{source.pk}/")
    assert refused.status_code == 409 and "while a scoring job using its model" in refused.json()["error"]
    ScoringJob.objects.filter(pk=job.pk).update(status="succeeded")
    assert clients["owner"].delete(f"/api/sessions/{source.pk}/").status_code == 204
    assert not ScoringJob.objects.filter(pk=job.pk).exists()  # its record goes with the session


def test_viewers_cannot_delete_and_outsiders_see_nothing(mltask, users, clients, project):
    a = make_session(mltask, users["owner"], seconds=5, final=metrics(0.9, 0.3))
    b = make_session(mltask, users["owner"], seconds=5, final=metrics(0.8, 0.3))
    refused = clients["viewer"].delete(f"/api/sessions/{a.pk}/")
    assert refused.status_code == 403 and "editor" in refused.json()["error"]
    assert Session.objects.filter(pk=a.pk).exists()

    urls = (
        f"/api/mltasks/{mltask.pk}/sessions/table/",
        f"/api/mltasks/{mltask.pk}/compare/?sessions={a.pk},{b.pk}",
        f"/api/sessions/{a.pk}/diff/{b.pk}/",
    )
    for url in urls:
        assert clients["viewer"].get(url).status_code == 200
        response = clients["stranger"].get(url)
        assert response.status_code == 404 and response.json() == {"error": "Not found."}
    assert clients["stranger"].delete(f"/api/sessions/{a.pk}/").status_code == 404
    assert Session.objects.filter(pk=a.pk).exists()

    # A session of another ML task, in this project or in one the user cannot see: 404 too.
    sibling = MLTask.objects.create(analysis=mltask.analysis, **_design_fields(mltask))
    elsewhere_project = Project.objects.create(name="theirs", created_by=users["stranger"])
    elsewhere = MLTask.objects.create(
        analysis=Analysis.objects.create(
            project=elsewhere_project, dataset=mltask.analysis.dataset, name="theirs"
        ),
        **_design_fields(mltask),
    )
    for foreign in (make_session(sibling, users["owner"]), make_session(elsewhere, users["stranger"])):
        assert (
            clients["owner"]
            .get(f"/api/mltasks/{mltask.pk}/compare/?sessions={a.pk},{foreign.pk}")
            .status_code
            == 404
        )
        assert clients["owner"].get(f"/api/sessions/{a.pk}/diff/{foreign.pk}/").status_code == 404
        assert clients["owner"].get(f"/api/sessions/{foreign.pk}/diff/{a.pk}/").status_code == 404


def _design_fields(mltask: MLTask) -> dict:
    fields = (
        "target",
        "prediction_type",
        "classes",
        "features",
        "split",
        "architecture_code",
        "training",
        "metric",
    )
    return {name: getattr(mltask, name) for name in fields}
