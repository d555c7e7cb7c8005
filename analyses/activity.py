"""The project activity feed: recording who did what (the API endpoints, the supervisor).

``record`` is called after an action succeeded, one line per endpoint. Recording is a side note:
a failure to record (database error, unserializable details) is logged and never breaks the action,
and runs in a savepoint so it cannot spoil the caller's transaction either.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import Model

from analyses.models import Activity, Analysis, Dataset, MLTask, Project, Session

log = logging.getLogger(__name__)

# Each verb as the feed writes it: "<actor> <phrase> <label>".
VERBS: dict[str, str] = {
    "uploaded": "uploaded",
    "edited_dataset": "changed column types of",
    "created_analysis": "created",
    "created_mltask": "created",
    "edited_mltask": "edited",
    "trained": "trained",
    "continued": "continued training",
    "interrupted": "interrupted",
    "aborted": "aborted",
    "session_succeeded": "finished training",
    "session_failed": "failed training",
    "session_interrupted": "stopped training",
    "session_aborted": "stopped training",
    "scored": "scored a dataset with",
    "deleted_session": "deleted a session of",
    "member_added": "added member",
    "member_removed": "removed member",
    "role_changed": "changed the role of",
    "variables_changed": "changed the project variables",
    "duplicated": "duplicated",
}
MAX_TEXT = 300  # a details string longer than this (an error message) is cut


def record(
    project: Project | int, actor: Any, verb: str, obj: Model | None = None, label: str = "", **details: Any
) -> Activity | None:
    """One entry in ``project``'s feed; None (and a logged error) when it could not be stored.

    ``actor``: the user who acted (None or anonymous: the platform). ``obj``: what it was done to
    (its type, id and, unless ``label`` is given, a label such as "ML task target (binary)").
    """
    try:
        if verb not in VERBS:
            raise ValueError(f"unknown activity verb {verb!r}")
        with transaction.atomic():  # a savepoint: a failed insert leaves the action's transaction usable
            return Activity.objects.create(
                project_id=project.pk if isinstance(project, Project) else project,
                actor=actor if getattr(actor, "is_authenticated", False) else None,
                verb=verb,
                object_type=obj._meta.model_name if obj is not None else "",
                object_id=obj.pk if obj is not None else None,
                label=(label or label_for(obj))[:255],
                details={key: _small(value) for key, value in details.items() if value is not None},
            )
    except Exception:
        log.exception("activity: could not record %r in project %s", verb, getattr(project, "pk", project))
        return None


def label_for(obj: Model | None) -> str:
    """How the feed names an object: "dataset iris", "ML task species (multiclass)", "alice"."""
    if obj is None:
        return ""
    if isinstance(obj, Dataset):
        return f"dataset {obj.name}"
    if isinstance(obj, Analysis):
        return f"analysis {obj.name}"
    if isinstance(obj, MLTask):
        return mltask_label(obj)
    if isinstance(obj, Session):
        return mltask_label(obj.mltask)
    if isinstance(obj, Project):
        return f"project {obj.name}"
    return str(getattr(obj, "username", None) or getattr(obj, "name", None) or obj.pk)


def mltask_label(mltask: MLTask) -> str:
    names = ", ".join(t["name"] for t in mltask.targets)
    kind = mltask.prediction_type if not mltask.extra_targets else "multi-output"
    return f"ML task {names} ({kind})"


def session_action(actor: Any, verb: str, session: Session, **details: Any) -> Activity | None:
    """An entry about a session (trained, interrupted, scored, deleted…) in its project's feed."""
    try:
        project_id = session.mltask.analysis.project_id
    except Exception:
        log.exception("activity: session %s has no project to record %r in", session.pk, verb)
        return None
    return record(project_id, actor, verb, session, session=session.pk, **details)


def session_ended(session: Session) -> Activity | None:
    """The platform's entry when a session reaches its final status: "session 12 succeeded — Test
    ROC AUC 0.97", or the phase and message of a failure."""
    try:
        details: dict[str, Any] = {"session": session.pk, "status": session.status}
        metric = _optimization_metric(session)
        value = (session.final_metrics or {}).get(metric)
        if isinstance(value, int | float) and not isinstance(value, bool):
            details |= {"metric": metric, "value": value}
        error = session.error or {}
        if session.status == "failed":
            details |= {"phase": error.get("phase"), "message": error.get("message")}
        project_id = session.mltask.analysis.project_id
    except Exception:
        log.exception("activity: could not describe the end of session %s", session.pk)
        return None
    return record(project_id, None, f"session_{session.status}", session, **details)


def member_role(project: Project, username: str | None, group: str | None = None) -> str | None:
    """The role a user or group has in the project by its own membership (None: not a member),
    read before a change so the feed can say "added" or "viewer → editor"."""
    try:
        who = {"user__username": username} if username else {"group__name": group}
        return project.memberships.filter(**who).values_list("role", flat=True).first()
    except Exception:
        log.exception("activity: could not read the role of %s in project %s", username or group, project.pk)
        return None


def member_set(project: Project, actor: Any, member: dict[str, Any], previous: str | None) -> None:
    """member_added, or role_changed when the role differs from ``previous`` (nothing if the same)."""
    role = str(member.get("role") or "")
    name = member.get("username") or f"group {member.get('group')}"
    if previous is None:
        record(project, actor, "member_added", label=name, role=role)
    elif str(previous) != role:
        record(project, actor, "role_changed", label=name, role=role, previous=str(previous))


def changed_keys(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """The names added, removed or given another value (project variables)."""
    before, after = before or {}, after or {}
    return sorted(
        k
        for k in before.keys() | after.keys()
        if before.get(k, None) != after.get(k, None) or (k in before) != (k in after)
    )


def _optimization_metric(session: Session) -> str:
    from analyses.compare import optimization_metric  # the sessions table's rule, same value shown

    return optimization_metric(session.design or {})


def _small(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[: MAX_TEXT - 1] + "…"
    return value
