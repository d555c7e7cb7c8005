"""Comparing the sessions of one ML task: the sessions table, several sessions side by side
(learning curves, final metrics) and what changed between two sessions' design snapshots.

Every session keeps the design it trained with (``Session.design``), so a comparison shows what
each run really was, whatever the ML task's design says today.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from analyses.models import MLTask, Session
from analyses.serializers import iso
from training_worker.events import Status
from training_worker.metrics import DEFAULT_METRICS, custom_score_enabled, greater_is_better, metric_names

MIN_COMPARED, MAX_COMPARED = 2, 8
STATUS_ORDER = {status.value: index for index, status in enumerate(Status)}
# Columns of the sessions table that sort; any final metric's name ("Test Accuracy") sorts too.
SORT_KEYS = (
    "id",
    "status",
    "created_by",
    "queued_at",
    "started_at",
    "ended_at",
    "duration",
    "epochs",
    "metric",
)
# The design's code, shown as unified diffs rather than as changed settings.
CODE_FIELDS = (
    ("architecture_code", "Architecture", ("architecture_code",)),
    ("training_code", "Training", ("training", "code")),
    ("preprocessing_code", "Preprocessing", ("preprocessing_code",)),
)


class CompareError(ValueError):
    """A comparison that cannot be made as asked; the message says how to ask."""


# ---------------------------------------------------------------- the optimization metric


def optimization_metric(design: dict[str, Any]) -> str:
    """The design's optimization metric as the epoch logs name it ("Test ROC AUC", "Test R2 Score
    (price)"): the runner's rule (training_worker.runner ``_monitor``), so the value shown is the
    one it kept the model by."""
    targets = design.get("targets") or [
        {"name": design.get("target"), "prediction_type": design.get("prediction_type")}
    ]
    first = targets[0]
    prediction_type = first.get("prediction_type")
    if prediction_type not in DEFAULT_METRICS:
        return ""
    metric = design.get("metric")
    custom = custom_score_enabled(design.get("training"))
    if metric not in metric_names(prediction_type, with_custom_score=custom):
        metric = DEFAULT_METRICS[prediction_type]
    return f"Test {metric}" + (f" ({first.get('name')})" if len(targets) > 1 else "")


def _kept_epoch(session: Session) -> int | None:
    kept = (session.model_info or {}).get("kept") or {}
    return kept.get("epoch") if isinstance(kept.get("epoch"), int) else None


def _kept_by(session: Session) -> str:
    kept = (session.model_info or {}).get("kept") or {}
    return kept.get("metric") or optimization_metric(session.design or {})


def _duration(session: Session) -> float | None:
    """Seconds from start to end; to now while it still runs; None before it started."""
    if session.started_at is None:
        return None
    end = session.ended_at or (None if session.is_final else timezone.now())
    return None if end is None else round((end - session.started_at).total_seconds(), 1)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# ---------------------------------------------------------------- the sessions table


def session_row(session: Session, metric: str) -> dict[str, Any]:
    """One row of the sessions table; ``metric`` is the column the ML task optimizes."""
    final = session.final_metrics or {}
    return {
        "id": session.pk,
        "status": session.status,
        "created_by": session.created_by.username if session.created_by else None,
        "queued_at": iso(session.queued_at),
        "started_at": iso(session.started_at),
        "ended_at": iso(session.ended_at),
        "duration_seconds": _duration(session),
        "epochs_done": session.epochs_done,
        "epochs_total": session.epochs_total,
        "kept_epoch": _kept_epoch(session),
        # What this session kept its model by (its own design's metric, maybe not the ML task's now).
        "kept_by": _kept_by(session),
        "design_version": (session.design or {}).get("version"),
        "metric_value": _number(final.get(metric)),
        "final_metrics": final,
        "error": ((session.error or {}).get("message") or None) if session.status == Status.FAILED else None,
    }


# Every metric name in the order the metric lists show them (binary first, then what only the
# others have); a name none of them knows goes last.
DISPLAY_ORDER = {
    name: position
    for position, name in enumerate(
        dict.fromkeys(
            [
                *metric_names("binary", True),
                *metric_names("multiclass", True),
                *metric_names("regression", True),
            ]
        )
    )
}


def metric_columns(metric: str, rows: Iterable[dict[str, Any]]) -> list[str]:
    """Test metrics (then Train) found in the rows' final metrics, the optimization metric first."""
    seen: dict[str, None] = {}
    for row in rows:
        for name in row["final_metrics"]:
            seen.setdefault(name, None)
    rank = {"Test": 0, "Train": 1}

    def order(name: str) -> tuple:
        prefix, _, base = name.partition(" ")
        head, _, output = base.partition(" (")  # "ROC AUC (churn)": a multi-output model's output
        # The display order of the metric lists, not the stored order: PostgreSQL's jsonb keeps
        # keys sorted its own way, so two databases would show the columns differently.
        return (
            name != metric,
            rank.get(prefix, 2),
            output,
            DISPLAY_ORDER.get(head, len(DISPLAY_ORDER)),
            name,
        )

    return sorted(seen, key=order)


def _sort_value(key: str, metric: str) -> Callable[[dict[str, Any]], Any]:
    if key == "status":
        return lambda row: STATUS_ORDER.get(row["status"], len(STATUS_ORDER))
    if key == "created_by":
        return lambda row: (row["created_by"] or "").lower() or None
    if key == "duration":
        return lambda row: row["duration_seconds"]
    if key == "epochs":
        return lambda row: row["epochs_done"]
    if key == "metric":
        return lambda row: row["metric_value"]
    if key == "id":
        return lambda row: row["id"]
    if key in ("queued_at", "started_at", "ended_at"):
        return lambda row: datetime.fromisoformat(row[key]) if row[key] else None
    return lambda row: _number(row["final_metrics"].get(key))


def sort_rows(rows: list[dict[str, Any]], sort: str, metric: str) -> list[dict[str, Any]]:
    """``sort`` is a key of SORT_KEYS or a final metric's name, "-" first for descending. Rows
    without a value (a session that never reached the metric) come last either way; ties keep
    the newest session first."""
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    known = {name for row in rows for name in row["final_metrics"]}
    if key not in SORT_KEYS and key not in known and not key.startswith(("Test ", "Train ")):
        raise CompareError(
            f"sort {key!r} is not a column; use one of {', '.join(SORT_KEYS)} or a metric name "
            '("Test Accuracy"), with "-" in front for descending.'
        )
    value = _sort_value(key, metric)
    newest_first = sorted(rows, key=lambda row: -row["id"])
    present = [row for row in newest_first if value(row) is not None]
    missing = [row for row in newest_first if value(row) is None]
    present.sort(key=value, reverse=descending)  # stable either way: ties stay newest first
    return present + missing


def sessions_table(mltask: MLTask, sort: str = "-id") -> dict[str, Any]:
    """Every session of ``mltask``: the rows, their metric columns and the sort applied."""
    metric = optimization_metric(mltask.design())
    sessions = mltask.sessions.select_related("created_by").defer("progress", "isolation")
    rows = [session_row(session, metric) for session in sessions]
    columns = metric_columns(metric, rows)
    return {
        "mltask": mltask.pk,
        "metric": metric,
        "greater_is_better": greater_is_better(metric) if metric else True,
        "columns": columns,
        # Which way each metric column is better: the page sorts best first on a first click.
        "higher_is_better": {name: greater_is_better(name) for name in columns},
        "sort": sort,
        "sort_keys": list(SORT_KEYS),
        "sessions": sort_rows(rows, sort, metric),
    }


# ---------------------------------------------------------------- several sessions side by side


def parse_ids(text: str) -> list[int]:
    """ "3,1,2" → [3, 1, 2]: the sessions to compare, in the order asked, each once."""
    ids: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit():
            raise CompareError(
                f"sessions must be session ids separated by commas (e.g. 12,15); got {part!r}."
            )
        if int(part) not in ids:
            ids.append(int(part))
    if not MIN_COMPARED <= len(ids) <= MAX_COMPARED:
        raise CompareError(
            f"Compare {MIN_COMPARED} to {MAX_COMPARED} sessions (sessions=12,15,...); got {len(ids)}."
        )
    return ids


def sessions_of(mltask: MLTask, ids: list[int]) -> list[Session] | None:
    """The sessions ``ids`` of ``mltask`` in that order; None when any is not one of its sessions
    (the caller answers 404: the id may belong to a project the user cannot see)."""
    found: QuerySet[Session] = mltask.sessions.select_related("created_by").filter(pk__in=ids)
    by_id = {session.pk: session for session in found}
    return [by_id[pk] for pk in ids] if len(by_id) == len(ids) else None


def _best(values: dict[int, float | None], name: str) -> list[int]:
    numbers = {pk: value for pk, value in values.items() if value is not None}
    if not numbers:
        return []
    best = max(numbers.values()) if greater_is_better(name) else min(numbers.values())
    return [pk for pk, value in numbers.items() if value == best]


def compare_sessions(mltask: MLTask, sessions: list[Session]) -> dict[str, Any]:
    """Sessions of one ML task side by side: each one's epochs (for overlaid curves) and a final
    metrics table whose rows name the best session(s) (``best``, by the metric's direction)."""
    metric = optimization_metric(mltask.design())
    rows = [session_row(session, metric) for session in sessions]
    epochs = {
        session.pk: [
            {"epoch": row.epoch, "seconds": row.seconds, "values": row.values, "partial": row.partial}
            for row in session.epoch_metrics.all()
        ]
        for session in sessions
    }
    table = []
    for name in metric_columns(metric, rows):
        values = {row["id"]: _number(row["final_metrics"].get(name)) for row in rows}
        table.append(
            {
                "name": name,
                "greater_is_better": greater_is_better(name),
                "values": {str(pk): value for pk, value in values.items()},
                "best": _best(values, name),
            }
        )
    return {
        "mltask": mltask.pk,
        "metric": metric,
        "greater_is_better": greater_is_better(metric) if metric else True,
        "sessions": [
            row | {"epochs": epochs[session.pk]} for row, session in zip(rows, sessions, strict=True)
        ],
        "final_metrics": table,
    }


# ---------------------------------------------------------------- what changed between two sessions


def _get(design: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = design
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _code_diff(before: str, after: str, label_a: str, label_b: str) -> str:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), label_a, label_b, lineterm="", n=3)
    return "\n".join(lines)


def _settings(design: dict[str, Any]) -> dict[str, Any]:
    """The design without its code; the targets in one list (older snapshots have only ``target``)."""
    settings = {k: v for k, v in design.items() if k not in ("architecture_code", "preprocessing_code")}
    settings["training"] = {k: v for k, v in (design.get("training") or {}).items() if k != "code"}
    if not settings.get("targets") and settings.get("target"):
        settings["targets"] = [
            {
                "name": design["target"],
                "prediction_type": design.get("prediction_type"),
                "classes": design.get("classes"),
            }
        ]
    for duplicate in ("target", "prediction_type", "classes"):  # the first of `targets`
        settings.pop(duplicate, None)
    return settings


def _named(items: list[Any]) -> bool:
    names = [item.get("name") for item in items if isinstance(item, dict)]
    return (
        len(names) == len(items) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
    )


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Leaf settings by path: ``training.epochs``, ``features[age].handling.rescaling`` (lists of
    named items, such as features and targets, are keyed by name so a reordering is no change)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for key, item in value.items():
            out |= flatten(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value and _named(value):
        for item in value:
            rest = {k: v for k, v in item.items() if k != "name"}
            out |= flatten(rest, f"{path}[{item['name']}]") if rest else {f"{path}[{item['name']}]": {}}
    else:
        out[path] = value
    return out


def changed_settings(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """[{path, before, after, change}] with change "changed" | "added" | "removed", in path order."""
    old, new = flatten(_settings(before)), flatten(_settings(after))
    changes = []
    for path in sorted(old.keys() | new.keys()):
        if path not in new:
            changes.append({"path": path, "before": old[path], "after": None, "change": "removed"})
        elif path not in old:
            changes.append({"path": path, "before": None, "after": new[path], "change": "added"})
        elif json.dumps(old[path], sort_keys=True) != json.dumps(new[path], sort_keys=True):
            changes.append({"path": path, "before": old[path], "after": new[path], "change": "changed"})
    return changes


def diff_sessions(a: Session, b: Session) -> dict[str, Any]:
    """What changed from session ``a``'s design to ``b``'s: unified diffs of each code tab and
    the settings that differ."""
    before, after = a.design or {}, b.design or {}
    return {
        "a": {"id": a.pk, "status": a.status, "design_version": before.get("version")},
        "b": {"id": b.pk, "status": b.status, "design_version": after.get("version")},
        **diff_designs(before, after, f"session {a.pk}", f"session {b.pk}"),
    }


def diff_designs(before: dict[str, Any], after: dict[str, Any], label_a: str, label_b: str) -> dict[str, Any]:
    """What changed from design ``before`` to ``after`` (two sessions' snapshots, or two revisions
    of an ML task): `code`, a unified diff per code tab whose headers are the labels, `settings`,
    each changed setting, and `same`."""
    code = []
    for name, label, path in CODE_FIELDS:
        old, new = _get(before, path) or "", _get(after, path) or ""
        diff = _code_diff(old, new, label_a, label_b)
        code.append({"name": name, "label": label, "changed": old != new, "diff": diff})
    settings = changed_settings(before, after)
    return {"code": code, "settings": settings, "same": not settings and not any(i["changed"] for i in code)}
