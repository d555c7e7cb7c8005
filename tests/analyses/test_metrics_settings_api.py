"""The Metrics settings (cost matrix, lift fraction, custom score) and a session's TensorBoard logs
through the API."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from django.test import Client

from analyses.models import MLTask, Session
from tests.analyses.test_multi_output_api import create, patch

pytestmark = pytest.mark.django_db

DEFAULT_METRICS_SETTINGS = {
    "cost_matrix": {"tp": 1.0, "tn": 0.0, "fp": -0.3, "fn": 0.0},
    "lift_fraction": 0.4,
    "custom_score": False,
}


@pytest.fixture
def mltask(clients, project, dataset) -> dict:
    response = create(clients["editor"], project, dataset, target="species")
    assert response.status_code == 201, response.json()
    return response.json()


def test_a_new_ml_task_has_the_default_metrics_settings(mltask) -> None:
    assert mltask["training"]["metrics"] == DEFAULT_METRICS_SETTINGS


def test_metrics_settings_are_saved_and_a_partial_edit_keeps_the_rest(clients, mltask) -> None:
    client = clients["editor"]
    sent = {
        "cost_matrix": {"tp": 2, "tn": 0.5, "fp": -1, "fn": -3},
        "lift_fraction": 0.2,
        "custom_score": True,
    }
    response = patch(client, mltask, training={"metrics": sent})
    assert response.status_code == 200, response.json()
    saved = response.json()
    assert saved["training"]["metrics"] == {
        "cost_matrix": {"tp": 2.0, "tn": 0.5, "fp": -1.0, "fn": -3.0},
        "lift_fraction": 0.2,
        "custom_score": True,
    }
    assert saved["training"]["epochs"] == mltask["training"]["epochs"]  # the other settings stay

    # One cell, and a training edit that does not mention metrics: the rest is kept.
    response = patch(client, saved, training={"metrics": {"cost_matrix": {"fp": -0.5}}})
    assert response.status_code == 200, response.json()
    assert response.json()["training"]["metrics"]["cost_matrix"] == {
        "tp": 2.0,
        "tn": 0.5,
        "fp": -0.5,
        "fn": -3.0,
    }
    response = patch(client, response.json(), training={"epochs": 3})
    metrics = response.json()["training"]["metrics"]
    assert metrics["lift_fraction"] == 0.2 and metrics["custom_score"] is True
    assert MLTask.objects.get(pk=mltask["id"]).design()["training"]["metrics"] == metrics


def test_custom_score_can_be_the_optimization_metric(clients, mltask) -> None:
    response = patch(
        clients["editor"], mltask, training={"metrics": {"custom_score": True}}, metric="Custom Score"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["metric"] == "Custom Score"
    assert MLTask.objects.get(pk=mltask["id"]).design()["metric"] == "Custom Score"


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ("strict", "training.metrics must be an object"),
        ({"threshold": 0.3}, "training.metrics has no setting 'threshold'; the settings are cost_matrix"),
        ({"cost_matrix": [1, 0, -0.3, 0]}, "training.metrics.cost_matrix must be an object"),
        ({"cost_matrix": {"true_positive": 1}}, "training.metrics.cost_matrix has no cell 'true_positive'"),
        ({"cost_matrix": {"fp": "-0.3"}}, "training.metrics.cost_matrix.fp must be a number"),
        ({"cost_matrix": {"tp": False}}, "training.metrics.cost_matrix.tp must be a number"),
        ({"lift_fraction": 0}, "training.metrics.lift_fraction must be a number above 0 and at most 1"),
        ({"lift_fraction": 40}, "training.metrics.lift_fraction must be a number above 0 and at most 1"),
        ({"custom_score": "on"}, "training.metrics.custom_score must be true"),
    ],
)
def test_bad_metrics_settings_are_refused_and_nothing_is_saved(clients, mltask, metrics, message) -> None:
    client = clients["editor"]
    response = patch(client, mltask, training={"metrics": metrics})
    assert response.status_code == 400, response.json()
    assert message in response.json()["error"]
    current = client.get(f"/api/mltasks/{mltask['id']}/").json()
    assert current["training"] == mltask["training"] and current["version"] == mltask["version"]


# ------------------------------------------------------------------ TensorBoard logs


@pytest.fixture
def data_dir(settings, tmp_path) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def finished_session(mltask: dict, users, data_dir: Path, with_logs: bool = True) -> Session:
    task = MLTask.objects.get(pk=mltask["id"])
    session = Session.objects.create(
        mltask=task, design=task.design(), created_by=users["editor"], status="succeeded"
    )
    logs = data_dir / "sessions" / str(session.pk) / "output" / "tensorboard"
    if with_logs:
        (logs / "train").mkdir(parents=True)
        (logs / "test").mkdir()
        (logs / "train" / "events.out.tfevents.1.host.1.0.v2").write_bytes(b"train events")
        (logs / "test" / "events.out.tfevents.1.host.1.1.v2").write_bytes(b"test events")
        session.artifacts = {"tensorboard": f"sessions/{session.pk}/output/tensorboard"}
        session.save(update_fields=["artifacts"])
    return session


def test_a_viewer_downloads_the_event_files_as_a_zip(clients, mltask, users, data_dir) -> None:
    session = finished_session(mltask, users, data_dir)
    response = clients["viewer"].get(f"/api/sessions/{session.pk}/tensorboard/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f'filename="session-{session.pk}-tensorboard.zip"' in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as bundle:
        assert {name: bundle.read(name) for name in bundle.namelist()} == {
            f"session-{session.pk}/test/events.out.tfevents.1.host.1.1.v2": b"test events",
            f"session-{session.pk}/train/events.out.tfevents.1.host.1.0.v2": b"train events",
        }


def test_outsiders_get_404_for_the_tensorboard_logs(clients, mltask, users, data_dir) -> None:
    session = finished_session(mltask, users, data_dir)
    response = clients["stranger"].get(f"/api/sessions/{session.pk}/tensorboard/")
    assert response.status_code == 404 and response.json() == {"error": "Not found."}


def test_a_session_without_logs_answers_404_with_the_reason(clients, mltask, users, data_dir) -> None:
    session = finished_session(mltask, users, data_dir, with_logs=False)
    response = clients["viewer"].get(f"/api/sessions/{session.pk}/tensorboard/")
    assert response.status_code == 404
    assert "no TensorBoard logs" in response.json()["error"]


def test_links_the_runner_left_are_not_followed(clients, mltask, users, data_dir, tmp_path) -> None:
    secret = tmp_path / "secret_key"
    secret.write_text("do not ship")
    session = finished_session(mltask, users, data_dir)
    logs = data_dir / "sessions" / str(session.pk) / "output" / "tensorboard"
    os.symlink(secret, logs / "train" / "events.out.tfevents.2.host.2.0.v2")
    os.symlink(tmp_path, logs / "elsewhere", target_is_directory=True)
    response = clients["viewer"].get(f"/api/sessions/{session.pk}/tensorboard/")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as bundle:
        assert sorted(bundle.namelist()) == [
            f"session-{session.pk}/test/events.out.tfevents.1.host.1.1.v2",
            f"session-{session.pk}/train/events.out.tfevents.1.host.1.0.v2",
        ]
        assert all(b"do not ship" not in bundle.read(name) for name in bundle.namelist())

    # The artifact itself pointing outside the session's work dir: refused.
    session.artifacts = {"tensorboard": "../secret_key"}
    session.save(update_fields=["artifacts"])
    assert clients["viewer"].get(f"/api/sessions/{session.pk}/tensorboard/").status_code == 404


def test_the_session_page_links_the_logs(project, mltask, users, data_dir) -> None:
    session = finished_session(mltask, users, data_dir)
    browser = Client()
    browser.force_login(users["viewer"])
    page = browser.get(f"/projects/{project.pk}/sessions/{session.pk}/").content.decode()
    assert f'href="/api/sessions/{session.pk}/tensorboard/"' in page
    assert "TensorBoard logs (zip)" in page and "tensorboard --logdir" in page
    without = finished_session(mltask, users, data_dir, with_logs=False)
    assert (
        "TensorBoard logs (zip)"
        not in browser.get(f"/projects/{project.pk}/sessions/{without.pk}/").content.decode()
    )
