"""Comparing and deleting sessions in the JSON API: the sessions table of an ML task, several of
its sessions side by side, what changed between two, and deleting one (editors).

Access as everywhere (analyses.access): viewers read, editors delete; someone outside the project
gets 404, and so does a comparison naming any session that is not of that ML task.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from ninja import Router
from ninja.errors import HttpError

from analyses import access, activity
from analyses.compare import (
    CompareError,
    compare_sessions,
    diff_sessions,
    parse_ids,
    sessions_of,
    sessions_table,
)
from analyses.deletion import delete_session
from analyses.models import Role
from analyses.sessions import SessionStateError

router = Router(tags=["compare"])


@router.get("/mltasks/{mltask_id}/sessions/table/")
def get_sessions_table(request: HttpRequest, mltask_id: int, sort: str = "-id") -> dict:
    """Every session of the ML task: `{metric, greater_is_better, columns, sort, sessions: [{id,
    status, created_by, queued_at, started_at, ended_at, duration_seconds, epochs_done, epochs_total,
    kept_epoch, kept_by, metric_value, final_metrics, error}]}`. `metric` is the ML task's
    optimization metric ("Test ROC AUC"), `metric_value` each session's final value of it.
    `sort`: id, status, created_by, queued_at, started_at, ended_at, duration, epochs, metric or a
    final metric's name, "-" first for descending (default `-id`, newest first); sessions without
    a value come last."""
    mltask = access.get_mltask_for(request.user, mltask_id)
    try:
        return sessions_table(mltask, sort)
    except CompareError as exc:
        raise HttpError(400, str(exc)) from None


@router.get("/mltasks/{mltask_id}/compare/")
def compare(request: HttpRequest, mltask_id: int, sessions: str = "") -> dict:
    """2 to 8 sessions of the ML task (`?sessions=12,15,16`) side by side: each one's row of the
    sessions table with its `epochs` (for overlaid learning curves), and `final_metrics`: one row
    per metric with each session's value and `best`, the session(s) holding the best value."""
    mltask = access.get_mltask_for(request.user, mltask_id)
    try:
        ids = parse_ids(sessions)
    except CompareError as exc:
        raise HttpError(400, str(exc)) from None
    chosen = sessions_of(mltask, ids)
    if chosen is None:
        raise Http404("Not found")
    return compare_sessions(mltask, chosen)


@router.get("/sessions/{session_a}/diff/{session_b}/")
def diff(request: HttpRequest, session_a: int, session_b: int) -> dict:
    """What changed from session a's design to session b's (both of one ML task): `code`, a
    unified diff per code tab (`architecture_code`, `training_code`, `preprocessing_code`), and
    `settings`, each changed setting as `{path, before, after, change}`."""
    a = access.get_session_for(request.user, session_a)
    b = access.get_session_for(request.user, session_b)
    if a.mltask_id != b.mltask_id:
        raise Http404("Not found")
    return diff_sessions(a, b)


def delete(request: HttpRequest, session_id: int) -> HttpResponse:
    """Delete a finished session with its epochs, logs and files (model, predictions, TensorBoard
    logs): editors. 409 while it is queued, starting or running (interrupt or abort it first)."""
    session = access.get_session_for(request.user, session_id, Role.EDITOR)
    try:
        delete_session(session)
    except SessionStateError as exc:
        raise HttpError(409, str(exc)) from None
    activity.session_action(request.user, "deleted_session", session)
    return HttpResponse(status=204)


# django-ninja answers a path from the first router that declares it (405 for its other methods),
# and GET /sessions/{id}/ is the main router's: DELETE must join that path there. analyses.api
# imports this module at its very end, when `api` exists, and mounts `router` right after.
from analyses.api import api  # noqa: E402

api.delete("/sessions/{session_id}/", response={204: None}, tags=["sessions"])(delete)
