"""The model report of a session (``GET /api/sessions/{id}/report/``), once trained or interrupted.

Built from what the runner left in the session's ``output/`` (``predictions.csv``, and
``model_graph.json`` / ``provenance.json``, see training_worker.model_graph and
training_worker.provenance) and what the database holds (final and epoch metrics, the kept epoch,
the design snapshot, the dataset). The per-target numbers (:mod:`analyses.report_curves`) are the
slow part on a big test set: they are cached as ``output/report.json``, signed with the secret
key, since the runner (untrusted) could write that folder while it ran.

The runner's files are read without following links and only from inside the session's own work
dir (as analyses.tensorboard does): they are untrusted input, so their JSON is checked and
trimmed here before it is served.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from analyses.models import Session
from analyses.report_curves import binary_report, multiclass_report, regression_report
from analyses.report_sources import is_session_file, model_summary, open_session_file, provenance
from analyses.serializers import epoch_json
from training_worker.events import Status
from training_worker.metrics import DEFAULT_METRICS, greater_is_better, metric_names, parse_metrics_settings

REPORTABLE = (Status.SUCCEEDED, Status.INTERRUPTED)
CACHE_FILE = "report.json"
# Bump when the computed shape changes: reports cached by an older version are computed again.
CACHE_VERSION = 1
CACHE_SALT = "analyses.reports.cache"


class NoReport(Exception):
    """The session has no report (yet); the message says why, for the page and the API."""


def session_report(session: Session) -> dict[str, Any]:
    """The whole report of a trained or interrupted session; NoReport otherwise."""
    predictions = predictions_file(session)
    design = session.design or {}
    targets = _target_specs(design)
    return {
        "session": session.pk,
        "status": session.status,
        "prediction_type": targets[0]["prediction_type"],
        "multi_output": len(targets) > 1,
        "optimization_metric": optimization_metric(design),
        "targets": target_sections(session, predictions),
        "metrics": metrics_table(session),
        "learning_curves": {
            "epochs": [epoch_json(row) for row in session.epoch_metrics.all()],
            "kept": (session.model_info or {}).get("kept"),
        },
        "model": model_summary(session, predictions.parent),
        "provenance": provenance(session, predictions.parent),
    }


def predictions_file(session: Session) -> Path:
    """``output/predictions.csv`` of the session, checked; NoReport saying why when there is none."""
    if session.status not in REPORTABLE:
        raise NoReport(_why_no_report(session))
    relative = (session.artifacts or {}).get("predictions")
    if not relative:
        raise NoReport(
            f"Session {session.pk} has no predictions yet: the report needs the test set's predictions, "
            "which the runner writes when training ends."
        )
    path = Path(settings.DATA_DIR) / relative
    if not is_session_file(session, path):
        raise NoReport(f"Session {session.pk}'s predictions are no longer stored, so it has no report.")
    return path


def _why_no_report(session: Session) -> str:
    if session.status in (Status.FAILED, Status.ABORTED):
        return (
            f"Session {session.pk} {session.status} and kept no model, so it has no predictions and no "
            "report; train again."
        )
    return (
        f"Session {session.pk} has no predictions yet ({session.status}): the report appears once it "
        "has trained or was interrupted."
    )


# ------------------------------------------------------------------ metrics and settings


def optimization_metric(design: dict[str, Any]) -> dict[str, Any]:
    """The ML task's optimization metric as the report names it (first target when multi-output)."""
    targets = _target_specs(design)
    first = targets[0]
    name = design.get("metric") or DEFAULT_METRICS[first["prediction_type"]]
    log_name = f"Test {name}" + (f" ({first['name']})" if len(targets) > 1 else "")
    return {"name": name, "log_name": log_name, "greater_is_better": greater_is_better(name)}


def metrics_table(session: Session) -> dict[str, Any]:
    """Final metrics as rows ``{metric, target, train, test}``, in each target's metric order."""
    final = session.final_metrics or {}
    targets = _target_specs(session.design or {})
    multi = len(targets) > 1
    rows: dict[tuple[str, str | None], dict[str, Any]] = {}
    for key, value in final.items():
        side, _, base = key.partition(" ")
        if side not in ("Train", "Test") or not base:
            continue
        name, target = _split_target(base, targets) if multi else (base, None)
        row = rows.setdefault((name, target), {"metric": name, "target": target, "train": None, "test": None})
        row[side.lower()] = value
    order = {spec["name"]: position for position, spec in enumerate(targets)}
    known = {spec["name"]: metric_names(spec["prediction_type"], with_custom_score=True) for spec in targets}

    def rank(row: dict[str, Any]) -> tuple:
        target = row["target"] if multi else targets[0]["name"]
        names = known.get(target, [])
        position = names.index(row["metric"]) if row["metric"] in names else len(names)
        return (order.get(target, len(order)), position, row["metric"])

    return {"rows": sorted(rows.values(), key=rank), "kept": (session.model_info or {}).get("kept")}


def _split_target(base: str, targets: list[dict[str, Any]]) -> tuple[str, str | None]:
    """A multi-output model's metric name split: "ROC AUC (churn)" -> ("ROC AUC", "churn")."""
    for spec in targets:
        suffix = f" ({spec['name']})"
        if base.endswith(suffix):
            return base[: -len(suffix)], spec["name"]
    return base, None


def _target_specs(design: dict[str, Any]) -> list[dict[str, Any]]:
    targets = design.get("targets") or [
        {"name": design.get("target"), "prediction_type": design.get("prediction_type"), "classes": None}
    ]
    first = {**targets[0]}
    first.setdefault("classes", design.get("classes"))
    return [first, *targets[1:]]


# ------------------------------------------------------------------ per-target sections (cached)


def target_sections(session: Session, predictions: Path) -> list[dict[str, Any]]:
    """One section per target, from the cache when it was computed from these very predictions."""
    info = os.lstat(predictions)
    design = session.design or {}
    key = {
        "version": CACHE_VERSION,
        "predictions": [info.st_size, info.st_mtime_ns],
        "targets": _target_specs(design),
        "metric": design.get("metric"),
        "metrics_settings": (design.get("training") or {}).get("metrics"),
    }
    cache = predictions.parent / CACHE_FILE
    cached = _read_cache(session, cache, key)
    if cached is not None:
        return cached
    with open_session_file(session, predictions) as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    sections = compute_sections(frame, design)
    _write_cache(cache, key, sections)
    return sections


def compute_sections(frame: pd.DataFrame, design: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-target report numbers from predictions.csv read as text (``dtype=str``)."""
    targets = _target_specs(design)
    multi = len(targets) > 1
    try:
        scoring = parse_metrics_settings((design.get("training") or {}).get("metrics"))
    except ValueError:  # a snapshot the runner refused too: the defaults still draw the curves
        scoring = parse_metrics_settings(None)
    sections = []
    for position, spec in enumerate(targets):
        suffix = f" ({spec['name']})" if multi else ""
        section = {"target": spec["name"], "prediction_type": spec["prediction_type"]}
        try:
            metric = (
                (design.get("metric") or DEFAULT_METRICS[spec["prediction_type"]]) if position == 0 else None
            )
            section |= _section(frame, spec, suffix, metric, scoring)
        except ReportDataError as exc:
            section["error"] = str(exc)
        sections.append(section)
    return sections


class ReportDataError(ValueError):
    """predictions.csv does not hold what this target's report needs; the message says what."""


def _section(
    frame: pd.DataFrame, spec: dict[str, Any], suffix: str, metric: str | None, scoring: Any
) -> dict:
    actual_column, predicted_column = f"actual{suffix}", f"prediction{suffix}"
    _require(frame, [actual_column, predicted_column])
    kind = spec["prediction_type"]
    if kind == "regression":
        actual = pd.to_numeric(frame[actual_column], errors="coerce").to_numpy(dtype=np.float64)
        predicted = pd.to_numeric(frame[predicted_column], errors="coerce").to_numpy(dtype=np.float64)
        usable = np.isfinite(actual) & np.isfinite(predicted)
        return {
            "dropped_rows": int((~usable).sum()),
            "regression": regression_report(actual[usable], predicted[usable]),
        }
    classes = [str(label) for label in spec.get("classes") or []] or _classes_from_columns(frame, suffix)
    proba_columns = [f"proba_{label}{suffix}" for label in classes]
    _require(frame, proba_columns)
    index = {_label_key(label): position for position, label in enumerate(classes)}
    y = np.asarray([index.get(_label_key(v), -1) for v in frame[actual_column]], dtype=np.int64)
    probabilities = np.column_stack(
        [pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64) for column in proba_columns]
    )
    usable = (y >= 0) & np.all(np.isfinite(probabilities), axis=1)
    dropped = int((~usable).sum())
    y, probabilities = y[usable], probabilities[usable]
    if kind == "binary":
        if len(classes) != 2:
            raise ReportDataError(
                f"binary target {spec['name']!r} needs 2 classes; predictions.csv has {classes}"
            )
        report = binary_report(
            y, probabilities[:, 1], classes, metric, scoring.cost_matrix, scoring.lift_fraction
        )
        return {"dropped_rows": dropped, "binary": report}
    predicted = np.asarray(
        [index.get(_label_key(v), -1) for v in frame[predicted_column][usable]], dtype=np.int64
    )
    # A prediction that names no class (never written by the runner): the highest probability.
    predicted = np.where(predicted >= 0, predicted, np.argmax(probabilities, axis=1)) if len(y) else predicted
    return {"dropped_rows": dropped, "multiclass": multiclass_report(y, predicted, probabilities, classes)}


def _require(frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ReportDataError(f"predictions.csv lacks the column(s) {', '.join(map(repr, missing))}")


def _classes_from_columns(frame: pd.DataFrame, suffix: str) -> list[str]:
    """Class labels from the ``proba_<label>`` columns, for a snapshot that kept no classes."""
    return [
        column[len("proba_") : len(column) - len(suffix)]
        for column in frame.columns
        if column.startswith("proba_") and column.endswith(suffix)
    ]


def _label_key(label: Any) -> str:
    """As the runner matches labels (training_worker.preprocessing): "1", 1 and "1.0" are one class."""
    text = str(label).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return repr(number) if np.isfinite(number) else text


def _signature(body: str) -> str:
    return salted_hmac(CACHE_SALT, body).hexdigest()


def _read_cache(session: Session, path: Path, key: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The cached sections when the file is ours (signed) and was computed for ``key``."""
    try:
        with open_session_file(session, path) as handle:
            cached = json.loads(handle.read())
        body = json.dumps({"key": cached["key"], "sections": cached["sections"]}, sort_keys=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    key_body = json.dumps(key, sort_keys=True, default=str)
    if not constant_time_compare(_signature(body), str(cached.get("signature", ""))):
        return None
    if json.dumps(cached["key"], sort_keys=True, default=str) != key_body:
        return None
    return cached["sections"]


def _write_cache(path: Path, key: dict[str, Any], sections: list[dict[str, Any]]) -> None:
    """Written beside the outputs through a new file renamed over the old (a link the runner may
    have left there is replaced, never followed); a read-only folder only costs the cache."""
    key = json.loads(json.dumps(key, default=str))
    body = json.dumps({"key": key, "sections": sections}, sort_keys=True)
    temporary = None
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".report-", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump({"key": key, "sections": sections, "signature": _signature(body)}, handle)
        os.replace(temporary, path)
    except OSError:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
