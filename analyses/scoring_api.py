"""Scoring and export in the JSON API: batch scoring jobs, predict, the export bundle, CSV downloads.

Registered on the API by analyses/api.py (``api.add_router("", scoring_router)``). Editors start
scoring jobs (they create datasets); viewers read jobs, predict, export and download. Outsiders
get 404 for all of it (analyses.access).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from ninja import Router, Schema, Status
from ninja.errors import HttpError

from analyses import access, activity
from analyses.dataset_csv import csv_chunks, csv_filename
from analyses.export import export_bundle
from analyses.models import Role, ScoringJob
from analyses.scoring import (
    MAX_ROWS,
    ScoringRequestError,
    example_row,
    job_json,
    predict,
    start_scoring_job,
)
from training_worker.scoring_runs import NoModel, ScoringFailed, input_features, model_files, session_targets

router = Router(tags=["scoring"])


def _refused(exc: ScoringRequestError | NoModel) -> JsonResponse:
    details = getattr(exc, "details", {})
    return JsonResponse({"error": str(exc), **details}, status=400)


class ScoreRequest(Schema):
    dataset: int


@router.post("/sessions/{session_id}/score/", response={201: dict, 400: dict})
def score_dataset(request, session_id: int, payload: ScoreRequest):
    """Apply the session's model to another dataset of its project, as a job on a worker: the result
    is a new dataset (the input's columns, then `prediction` and `proba_<label>` per class). 400
    listing `missing_columns` when the dataset lacks input columns of the model."""
    session = access.get_session_for(request.user, session_id, Role.EDITOR)
    dataset = session.mltask.analysis.project.datasets.filter(pk=payload.dataset).first()
    if dataset is None:
        raise HttpError(400, f"Dataset {payload.dataset} is not in this session's project.")
    try:
        job = start_scoring_job(session, dataset, request.user)
    except (ScoringRequestError, NoModel) as exc:
        return _refused(exc)
    activity.session_action(request.user, "scored", session, dataset=dataset.name, job=job.pk)
    return Status(201, job_json(job))


@router.get("/sessions/{session_id}/scoring/")
def scoring_overview(request, session_id: int):
    """What using the model needs: its input columns, whether it has a saved model (`reason` when
    not), and its scoring jobs, latest first."""
    session = access.get_session_for(request.user, session_id)
    try:
        model_files(session)
        reason = None
    except NoModel as exc:
        reason = str(exc)
    jobs = session.scoring_jobs.select_related(
        "dataset", "result_dataset", "created_by", "session__mltask__analysis"
    )
    return {
        "session": session.pk,
        "status": session.status,
        "available": reason is None,
        "reason": reason,
        "inputs": [{"name": f["name"], "type": f.get("type")} for f in input_features(session)],
        "targets": [{"name": name, "classes": classes} for name, classes in session_targets(session)],
        "max_rows": MAX_ROWS,
        "example": example_row(session) if reason is None else None,
        "jobs": [job_json(job) for job in jobs[:20]],
    }


@router.get("/scoring/{job_id}/")
def get_scoring_job(request, job_id: int):
    """A scoring job: status (queued, running, succeeded, failed), rows done of total, error, and
    the result dataset with its CSV download once it succeeded."""
    job = ScoringJob.objects.select_related(
        "session__mltask__analysis", "dataset", "result_dataset", "created_by"
    ).filter(pk=job_id)
    found = job.first()
    if found is None:
        raise Http404
    access.get_session_for(request.user, found.session_id)  # 404 for outsiders
    return job_json(found)


# Read here rather than by the framework: 10,000 wide rows are well past Django's 2.5 MB cap on
# request bodies (DATA_UPLOAD_MAX_MEMORY_SIZE), which would answer with an HTML page.
MAX_PREDICT_BYTES = 64 * 1024**2
PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["rows"],
                "properties": {
                    "rows": {
                        "type": "array",
                        "maxItems": MAX_ROWS,
                        "items": {"type": "object", "additionalProperties": True},
                        "description": "One object per row: {column: value}; null for a missing value.",
                    }
                },
            }
        }
    },
}


def _json_body(request) -> Any:
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if (int(declared) if declared.isdigit() else 0) > MAX_PREDICT_BYTES:
        raise ScoringRequestError(_too_large())
    raw = request.read(MAX_PREDICT_BYTES + 1)
    if len(raw) > MAX_PREDICT_BYTES:
        raise ScoringRequestError(_too_large())
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise ScoringRequestError(f"The request body is not JSON ({exc}).") from None


def _too_large() -> str:
    return f"The request body is larger than {MAX_PREDICT_BYTES // 1024**2} MB; score a dataset instead."


@router.post(
    "/sessions/{session_id}/predict/",
    response={200: dict, 400: dict},
    openapi_extra={"requestBody": PREDICT_BODY},
)
def predict_rows(request, session_id: int):
    """`{rows: [{column: value, ...}]}` → `{predictions: [{prediction, probabilities?}]}` (probabilities
    by class label for a classifier), by the session's model in the sandbox. At most 10,000 rows;
    a missing, unknown or mistyped column is a 400 naming it (and the row)."""
    session = access.get_session_for(request.user, session_id)
    try:
        payload = _json_body(request)
        if not isinstance(payload, dict) or "rows" not in payload:
            raise ScoringRequestError('Send {"rows": [{"<column>": <value>, ...}, ...]}.')
        return predict(session, payload["rows"])
    except (ScoringRequestError, NoModel) as exc:
        return _refused(exc)
    except ScoringFailed as exc:
        return JsonResponse({"error": str(exc), "detail": exc.error}, status=400)


@router.get("/sessions/{session_id}/export/")
def export_model(request, session_id: int):
    """A zip: `model.keras`, `preprocessing.joblib`, `architecture.py`, the DL Studio modules the
    preprocessing needs, `predict.py` (`predict(frame) -> DataFrame`), `requirements.txt`,
    `README.txt`. 404 with the reason when the session has no saved model."""
    session = access.get_session_for(request.user, session_id)
    try:
        archive = export_bundle(session)
    except NoModel as exc:
        raise HttpError(404, str(exc)) from None
    return FileResponse(
        archive,
        as_attachment=True,
        filename=f"session-{session.pk}-model.zip",
        content_type="application/zip",
    )


@router.get("/datasets/{dataset_id}/download/", tags=["datasets"])
def download_dataset(request, dataset_id: int):
    """The dataset as CSV (a header row, then every row), streamed."""
    dataset = access.get_dataset_for(request.user, dataset_id)
    response = StreamingHttpResponse(csv_chunks(dataset), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{csv_filename(dataset)}"'
    return response
