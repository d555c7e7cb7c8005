"""Using a trained session's model from the web: batch scoring jobs and the predict endpoint.

Nothing here loads the model or the fitted preprocessing (that runs user code): a scoring job is
dispatched to a worker (training_worker.scoring_jobs), and a predict request runs the sandboxed
scorer on its rows (training_worker.scoring_runs), as the Validate button runs its dry run.
What can be checked without the model is checked here, so mistakes get a 400 naming the column:
the dataset's columns against the session's input features, and each JSON row's keys and types.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from django.db import transaction
from django.urls import reverse

from analyses.models import Dataset, ScoringJob, Session
from analyses.serializers import iso
from training_worker import dispatch
from training_worker.dataset_files import dataset_format
from training_worker.events import clean_number
from training_worker.scoring_runs import (
    check_outcome,
    checked_batch,
    input_features,
    model_files,
    open_output,
    run,
    session_targets,
    workspace,
    write_job,
)

MAX_ROWS = 10_000
PREDICT_TIMEOUT_SECONDS = 120  # TensorFlow's import alone takes ~10 s cold here


class ScoringRequestError(ValueError):
    """A request the model cannot serve; the message names the column (and row) to fix."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


# ---------------------------------------------------------------- batch scoring


def missing_columns(session: Session, dataset: Dataset) -> list[str]:
    """The session's input columns the dataset lacks (read from its Parquet schema, not its rows)."""
    present = set(pq.read_schema(dataset.file.path).names)
    return [f["name"] for f in input_features(session) if f["name"] not in present]


def start_scoring_job(session: Session, dataset: Dataset, user: Any) -> ScoringJob:
    """Check the request, then queue a job and dispatch it once the row is committed."""
    model_files(session)  # NoModel: said before anything is queued
    if dataset.project_id != session.mltask.analysis.project_id:
        raise ScoringRequestError(f"Dataset {dataset.pk} is not in this session's project.")
    if dataset_format(dataset.file.path) != "parquet":
        raise ScoringRequestError(
            f"Dataset {dataset.name!r} was uploaded before datasets were stored as Parquet; upload it again "
            "to score it."
        )
    missing = missing_columns(session, dataset)
    if missing:
        raise ScoringRequestError(
            f"Dataset {dataset.name!r} lacks the input column(s) {', '.join(map(repr, missing))} that "
            f"session {session.pk}'s model was trained with. Add them, or score a dataset that has them.",
            missing_columns=missing,
        )
    with transaction.atomic():
        job = ScoringJob.objects.create(
            session=session, dataset=dataset, rows_total=dataset.rows, created_by=user
        )
        transaction.on_commit(lambda: dispatch.dispatch_scoring(job.pk))
    return job


def job_json(job: ScoringJob) -> dict[str, Any]:
    result = job.result_dataset
    project_id = job.session.mltask.analysis.project_id
    return {
        "id": job.pk,
        "session": job.session_id,
        "dataset": job.dataset_id,
        "dataset_name": job.dataset.name if job.dataset else None,
        "status": job.status,
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "error": job.error,
        "result_dataset": result.pk if result else None,
        "result_dataset_name": result.name if result else None,
        "result_url": reverse("dataset", args=[project_id, result.pk]) if result else None,
        "download_url": f"/api/datasets/{result.pk}/download/" if result else None,
        "worker": job.worker,
        "isolation": job.isolation or {},
        "created_by": job.created_by.username if job.created_by else None,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "ended_at": iso(job.ended_at),
    }


# ---------------------------------------------------------------- predict


def check_rows(session: Session, rows: Any) -> dict[str, list[Any]]:
    """The rows' input columns, column by column, checked: every row an object holding every input
    column (null for a missing value), no column the model does not know, values of the column's type."""
    if not isinstance(rows, list) or not rows:
        raise ScoringRequestError('Send {"rows": [{"<column>": <value>, ...}, ...]} with at least one row.')
    if len(rows) > MAX_ROWS:
        raise ScoringRequestError(
            f"{len(rows):,} rows is more than the {MAX_ROWS:,} one request may hold; score a dataset instead."
        )
    features = input_features(session)
    images = [f["name"] for f in features if f.get("type") == "image"]
    if images:
        raise ScoringRequestError(
            f"Column {images[0]!r} holds images, which JSON rows cannot carry; score a dataset with its "
            "images instead.",
            column=images[0],
        )
    design = session.design or {}
    known = {f["name"] for f in design.get("features") or []} | {name for name, _ in session_targets(session)}
    names = [f["name"] for f in features]
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ScoringRequestError(f"rows[{index}] must be an object of column: value.", row=index)
        for key in row:
            if key not in known:
                raise ScoringRequestError(
                    f"rows[{index}]: column {key!r} is unknown to this model; its input columns are "
                    f"{', '.join(map(repr, names))}.",
                    column=key,
                    row=index,
                )
        for feature in features:
            name = feature["name"]
            if name not in row:
                raise ScoringRequestError(
                    f"rows[{index}]: column {name!r} is missing; every row needs each input column "
                    "(null for a missing value).",
                    column=name,
                    row=index,
                )
            columns[name].append(_checked_value(row[name], feature.get("type"), name, index))
    return columns


def _checked_value(value: Any, kind: str | None, name: str, index: int) -> Any:
    def wrong(expected: str) -> ScoringRequestError:
        shown = json.dumps(value)[:80]
        return ScoringRequestError(
            f"rows[{index}]: column {name!r} needs {expected}; got {shown}.", column=name, row=index
        )

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None  # a missing value: imputed as in training
    if isinstance(value, list | dict):
        raise wrong("a single value")
    if kind == "numeric":
        if isinstance(value, bool):
            raise wrong("a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise wrong("a number") from None
        if not math.isfinite(number):
            raise wrong("a finite number")
        return number
    if kind == "date":
        if not isinstance(value, str) or pd.isna(pd.to_datetime(value, errors="coerce", format="mixed")):
            raise wrong("a date such as 2024-01-31")
        return value
    return value  # categorical and text: read as text, as in training


def example_row(session: Session) -> dict[str, Any] | None:
    """The first row of the session's training dataset, input columns only: a starting point for
    the predict form (None when that dataset is gone or unreadable)."""
    features = input_features(session)
    path = session.mltask.analysis.dataset.file.path
    try:
        batch = next(pq.ParquetFile(path).iter_batches(batch_size=1, columns=[f["name"] for f in features]))
    except (OSError, StopIteration, ValueError, KeyError):
        return None
    values = batch.to_pylist()[0]
    return {f["name"]: clean_value(values.get(f["name"])) for f in features}


def clean_value(value: Any) -> Any:
    """A JSON-safe value: NaN and infinities are null, dates their ISO text."""
    if isinstance(value, float):
        return clean_number(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def predict(session: Session, rows: Any) -> dict[str, Any]:
    """``{predictions: [{prediction, probabilities?}, ...], ...}`` for JSON rows, by the sandboxed scorer."""
    model_files(session)  # NoModel before any check of the rows
    columns = check_rows(session, rows)
    targets = session_targets(session)
    started = time.monotonic()
    with workspace(f"predict-{session.pk}", use_spare=True) as space:
        (space.workdir / "rows.json").write_text(json.dumps({"columns": columns}))
        write_job(space, session, {"kind": "rows", "path": "rows.json"})
        outcome = run(space, timeout=PREDICT_TIMEOUT_SECONDS)
        check_outcome(outcome, f"{PREDICT_TIMEOUT_SECONDS} s")
        output = open_output(space)
        try:
            table = checked_batch(output.read(), targets)
        finally:
            output.close()
        warm = space.warm
    if table.num_rows != len(rows):
        raise ScoringRequestError(f"The scorer answered {table.num_rows} rows for {len(rows)}.")
    return {
        "session": session.pk,
        "target": targets[0][0],
        "prediction_type": (session.design or {}).get("prediction_type"),
        "classes": targets[0][1],
        "predictions": prediction_rows(table.to_pydict(), targets, table.num_rows),
        "seconds": round(time.monotonic() - started, 2),
        "warm": warm,  # a runner with TensorFlow already imported served it
    }


def prediction_rows(
    data: dict[str, list], targets: list[tuple[str, list[str] | None]], count: int
) -> list[dict]:
    """Per row: ``prediction`` and, for classification, ``probabilities: {label: p}``; a multi-output
    model's rows hold the first target's and ``outputs: {target: {prediction, probabilities?}}``."""
    multi = len(targets) > 1
    rows = []
    for index in range(count):
        heads = {}
        for target, classes in targets:
            suffix = f" ({target})" if multi else ""
            value = data[f"prediction{suffix}"][index]
            head: dict[str, Any] = {"prediction": value if classes is not None else clean_number(value)}
            if classes is not None:
                head["probabilities"] = {
                    label: clean_number(data[f"proba_{label}{suffix}"][index]) for label in classes
                }
            heads[target] = head
        row = dict(heads[targets[0][0]])
        if multi:
            row["outputs"] = heads
        rows.append(row)
    return rows
