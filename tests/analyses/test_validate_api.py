"""POST /api/mltasks/{id}/validate/: a dry run of the saved design by the real runner in the real
sandbox (preprocessing on the first rows, build_model, compile_model), and Train refusing a design
whose current version failed it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from analyses.models import MLTask, Session
from tests.analyses.test_api import create_mltask
from training_worker.defaults import DEFAULT_TRAINING_CODE, default_architecture_code

pytestmark = pytest.mark.django_db(transaction=True)  # the dry runs' threads need committed rows

BROKEN_CODE = default_architecture_code("multiclass").replace("keras.layers.Dense(", "keras.layers.Dens(", 1)


def validate(client, mltask: dict):
    return client.post(f"/api/mltasks/{mltask['id']}/validate/")


def patch(client, mltask: dict, **body) -> dict:
    response = client.patch(
        f"/api/mltasks/{mltask['id']}/",
        {"version": mltask["version"], **body},
        content_type="application/json",
    )
    assert response.status_code == 200, response.json()
    return response.json()


def train_then_abort(client, mltask: dict) -> None:
    """Train is accepted; the session is then aborted and waited for, so no training outlives the test."""
    response = client.post(f"/api/mltasks/{mltask['id']}/sessions/")
    assert response.status_code == 201, response.json()
    session_id = response.json()["id"]
    assert client.post(f"/api/sessions/{session_id}/abort/").status_code in (200, 202)
    deadline = time.monotonic() + 60
    while Session.objects.get(pk=session_id).status not in ("aborted", "failed", "succeeded", "interrupted"):
        assert time.monotonic() < deadline, "the aborted session never ended"
        time.sleep(0.2)


def test_dry_runs_report_shapes_or_the_line_to_fix_and_train_follows_the_verdict(project, dataset, clients):
    editor = clients["editor"]
    good = create_mltask(editor, project, dataset).json()
    broken = patch(editor, create_mltask(editor, project, dataset).json(), architecture_code=BROKEN_CODE)
    advanced = patch(
        editor,
        create_mltask(editor, project, dataset).json(),
        training={
            "mode": "advanced",
            "code": DEFAULT_TRAINING_CODE.replace("return train_sequence, ", "return "),
        },
    )
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda m: validate(editor, m), [good, broken, advanced]))
    ok, failed, not_a_pair = (response.json() for response in results)
    assert all(response.status_code == 200 for response in results)

    assert ok["ok"] is True and ok["errors"] == []
    # sepal length and width, and the note as dummies of the 3 levels the train split holds
    assert ok["input_shapes"] == {"main": [5]} and ok["n_classes"] == 3
    assert ok["params"] > 0 and "Total params" in ok["summary"] and ok["version"] == good["version"]

    assert failed["ok"] is False
    (error,) = failed["errors"]
    line = next(n for n, text in enumerate(BROKEN_CODE.splitlines(), 1) if "Dens(" in text)
    assert (error["phase"], error["tab"], error["line"]) == ("build_model", "architecture", line)
    assert "Dens" in error["message"]

    (error,) = not_a_pair["errors"]
    assert (error["phase"], error["tab"]) == ("build_sequence", "training")
    assert "must return a pair (train_sequence, validation_sequence)" in error["message"]

    # Train follows the verdict on the version validated; a save (a new version) lifts the refusal.
    refused = editor.post(f"/api/mltasks/{broken['id']}/sessions/")
    assert refused.status_code == 400 and "failed validation" in refused.json()["error"]
    assert "Dens" in refused.json()["error"] and not Session.objects.filter(mltask_id=broken["id"]).exists()
    train_then_abort(editor, good)
    fixed = patch(editor, broken, architecture_code=default_architecture_code("multiclass"))
    train_then_abort(editor, fixed)
    stored = MLTask.objects.get(pk=broken["id"]).validation
    assert stored["ok"] is False and stored["version"] == broken["version"]


def test_only_editors_validate_and_outsiders_learn_nothing(project, dataset, clients):
    mltask = create_mltask(clients["owner"], project, dataset).json()
    assert validate(clients["viewer"], mltask).status_code == 403
    assert validate(clients["stranger"], mltask).status_code == 404
    assert MLTask.objects.get(pk=mltask["id"]).validation is None


def test_a_warm_runner_answers_the_next_check(project, dataset, clients, settings, tmp_path):
    settings.WARM_RUNNER = True
    settings.DATA_DIR = tmp_path  # the spare's work dir goes there
    from training_worker import warm

    editor = clients["editor"]
    mltask = create_mltask(editor, project, dataset).json()
    try:
        first = validate(editor, mltask).json()  # no spare yet: a runner of its own, then a spare
        second = validate(editor, mltask).json()
    finally:
        warm.shutdown()
    assert first["ok"] and first["warm"] is False
    assert second["ok"] and second["warm"] is True
    assert second["input_shapes"] == first["input_shapes"] and second["params"] == first["params"]
    assert not any((tmp_path / "sessions").glob("warm-*"))  # the spare is gone with it
