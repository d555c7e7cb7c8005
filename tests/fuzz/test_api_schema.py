"""Every operation of the JSON API, fuzzed by schemathesis from the app's own `/api/schema/`.

The schema is fetched from the running Django application (in process, through its WSGI handler,
so the test database applies) and every operation gets schema-shaped requests (valid and invalid
bodies, query strings and path parameters) as a member with each role, an outsider, and nobody.
Path parameters are either the ids of real objects (a project with a dataset, an ML task, a
trained session with predictions, a queued one, a scoring job) or whatever schemathesis draws.

The verdict for each request: never a 5xx; every 4xx is the API's error shape, a JSON object with
a human `error` message. Validate's dry run is replaced by a stub (it would start the sandboxed
runner, tested elsewhere); nothing here is dispatched to a worker (no transaction commits).
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from analyses.design import default_design
from analyses.models import Analysis, ApiToken, EpochMetric, MLTask, ScoringJob, Session
from tests.fuzz.conftest import examples

pytestmark = pytest.mark.django_db

CLASSES = ["setosa", "versicolor", "virginica"]


def _operations() -> list[str]:
    """``METHOD /path`` of every operation the API declares, read at collection time."""
    from analyses.api import api

    paths = api.get_openapi_schema()["paths"]
    return [f"{method.upper()} {path}" for path, methods in paths.items() for method in methods]


@pytest.fixture
def app():
    """Django's WSGI handler, keeping the test's database connection between requests (as the test
    client does: the request signals would close it, and with it the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    errors: list[str] = []

    def record(sender, request=None, **kwargs):
        errors.append(traceback.format_exc())

    got_request_exception.connect(record)
    handler = WSGIHandler()
    handler.errors = errors
    yield handler
    got_request_exception.disconnect(record)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(project, dataset, users, settings, tmp_path) -> dict:
    """Real objects for the path parameters, and a token per identity."""
    settings.DATA_DIR = tmp_path / "data"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    users["owner"].is_staff = True  # POST /api/users/ past its 403
    users["owner"].save()
    analysis = Analysis.objects.create(project=project, dataset=dataset, name="fuzzed")
    mltask = MLTask.objects.create(
        analysis=analysis,
        target="species",
        prediction_type="multiclass",
        classes=CLASSES,
        updated_by=users["owner"],
        **default_design(dataset, "species", "multiclass"),
    )
    trained = Session.objects.create(
        mltask=mltask,
        design=mltask.design() | {"version": 1, "project_variables": {}},
        created_by=users["owner"],
        status="succeeded",
        epochs_total=2,
        epochs_done=2,
        final_metrics={"Train Accuracy": 0.9, "Test Accuracy": 0.8},
        model_info={"kept": {"epoch": 2, "metric": "Test Accuracy"}},
    )
    for epoch in (1, 2):
        EpochMetric.objects.create(
            session=trained, epoch=epoch, seconds=0.1, values={"Test Accuracy": 0.4 * epoch}
        )
    output = Path(settings.DATA_DIR) / "sessions" / str(trained.pk) / "output"
    output.mkdir(parents=True)
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(3), size=30)
    labels = np.asarray(CLASSES, dtype=object)
    frame = pd.DataFrame(
        {
            "row": range(30),
            "actual": labels[rng.integers(0, 3, 30)],
            "prediction": labels[probabilities.argmax(1)],
        }
    )
    for index, label in enumerate(CLASSES):
        frame[f"proba_{label}"] = probabilities[:, index]
    frame.to_csv(output / "predictions.csv", index=False)
    trained.artifacts = {"predictions": f"sessions/{trained.pk}/output/predictions.csv"}
    trained.save(update_fields=["artifacts"])
    queued = Session.objects.create(
        mltask=mltask, design=mltask.design(), created_by=users["editor"], epochs_total=3
    )
    job = ScoringJob.objects.create(session=trained, dataset=dataset, created_by=users["owner"])
    return {
        "path": {
            "project_id": project.pk,
            "dataset_id": dataset.pk,
            "analysis_id": analysis.pk,
            "mltask_id": mltask.pk,
            "session_id": trained.pk,
            "session_a": trained.pk,
            "session_b": queued.pk,
            "job_id": job.pk,
            "username": "viewer",
        },
        "tokens": {name: ApiToken.issue(user).key for name, user in users.items()},
    }


@pytest.fixture
def no_dry_run(monkeypatch):
    """Validate's verdict without starting the sandboxed runner (the runner is tested elsewhere)."""

    def stub(mltask, user):
        return {"ok": True, "errors": [], "input_shapes": {}, "params": 0, "summary": "", "warm": False}

    monkeypatch.setattr("analyses.api.validate_design", stub)


def check_response(case, response, errors: list[str]) -> None:
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, (
        f"{where} answered {response.status_code}:\n{response.text[:2000]}\n" + "\n".join(errors[-1:])
    )
    if 400 <= response.status_code < 500:
        try:
            body = json.loads(response.text)
        except ValueError:
            pytest.fail(f"{where} answered {response.status_code} without JSON: {response.text[:500]!r}")
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], (
            f"{where} answered {response.status_code} without an error message: {body!r}"
        )


@pytest.mark.parametrize("operation", _operations())
def test_no_operation_answers_a_server_error(operation, app, world, no_dry_run) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/schema/", app)
    method, path = operation.split(" ", 1)
    found = schema[path][method]
    real = {name: value for name, value in world["path"].items() if "{" + name + "}" in path}
    strategies = [
        found.as_strategy(GenerationMode.POSITIVE, path_parameters=real or None),
        found.as_strategy(GenerationMode.NEGATIVE, path_parameters=real or None),
    ]
    if real:  # and made-up ids (and usernames): 404s, or 422 for what is not an integer
        strategies.append(found.as_strategy(GenerationMode.POSITIVE))
    identities = [*world["tokens"], None]

    @settings(max_examples=examples(20))
    @given(case=st.one_of(strategies), identity=st.sampled_from(identities))
    def fuzz(case, identity) -> None:
        headers = {"Authorization": f"Token {world['tokens'][identity]}"} if identity else {}
        response = case.call(headers=headers)
        check_response(case, response, app.errors)

    fuzz()


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "message"),
    [
        # Found beside the fuzzer: each was Django's HTML "Bad Request (400)" page.
        ("projects", b'{"name": "' + b"x" * 3_000_000 + b'"}', "application/json", 413, "larger than 2.5 MB"),
        ("datasets", b"--x\r\nbroken", "multipart/form-data", 400, "Invalid boundary"),
        (
            "datasets",
            b"&".join(b"f%d=1" % i for i in range(1200)),
            "application/x-www-form-urlencoded",
            400,
            "exceeded",
        ),
        ("projects", b"{not json", "application/json", 400, "Cannot parse"),
        ("projects", b"\xff\xfe\x00", "application/json", 400, "Cannot parse"),
    ],
)
def test_bodies_django_refuses_to_read_get_the_api_error_shape(
    clients, project, path, body, content_type, status, message
):
    url = "/api/projects/" if path == "projects" else f"/api/projects/{project.pk}/datasets/"
    response = clients["owner"].generic("POST", url, body, content_type=content_type)
    assert response.status_code == status and response["Content-Type"].startswith("application/json")
    assert message in response.json()["error"]
