"""The activity feed in the JSON API: ``GET /api/projects/{id}/activity/`` (viewers), newest first.

Registered on the API by analyses/api.py (``api.add_router("", activity_router)``). Pages go back
in time by id: ``?before=<the last id shown>``; ``next_before`` is that id for the next page, or
null at the beginning of the project.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from ninja import Router
from ninja.errors import HttpError

from analyses import access
from analyses.activity import VERBS
from analyses.models import Activity, Analysis, Dataset, MLTask, Session
from analyses.serializers import iso

router = Router(tags=["projects"])

MAX_LIMIT = 200

# The objects an entry links to: model, and its page's URL name (args: project id, object id).
PAGES: dict[str, tuple[type, str]] = {
    "dataset": (Dataset, "dataset"),
    "analysis": (Analysis, "analysis"),
    "mltask": (MLTask, "mltask"),
    "session": (Session, "session"),
}
PROJECT_OF = {
    "dataset": "project_id",
    "analysis": "project_id",
    "mltask": "analysis__project_id",
    "session": "mltask__analysis__project_id",
}


@router.get("/projects/{project_id}/activity/")
def project_activity(
    request: HttpRequest, project_id: int, before: int | None = None, limit: int = 50
) -> dict[str, Any]:
    """Who uploaded, edited, trained, interrupted, scored, duplicated… in the project, newest first:
    `{entries: [{id, created_at, verb, actor, action, object: {type, id, label, url}, note,
    details}], next_before}`. `actor` null: the platform (a session that ended). `object.url`: its
    page, null once it was deleted. `limit` 1–200 (default 50); `before`: only entries older than
    that id (the previous page's `next_before`)."""
    project = access.get_project_for(request.user, project_id)
    if not 1 <= limit <= MAX_LIMIT:
        raise HttpError(400, f"limit must be between 1 and {MAX_LIMIT}.")
    entries = Activity.objects.filter(project=project).select_related("actor").order_by("-id")
    if before is not None:
        entries = entries.filter(id__lt=before)
    page = list(entries[: limit + 1])  # one more tells whether an older page exists
    more, page = len(page) > limit, page[:limit]
    urls = _object_urls(project.pk, page)
    return {
        "entries": [activity_json(entry, urls.get((entry.object_type, entry.object_id))) for entry in page],
        "next_before": page[-1].pk if more else None,
    }


def activity_json(entry: Activity, url: str | None) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "created_at": iso(entry.created_at),
        "verb": entry.verb,
        "actor": entry.actor.username if entry.actor else None,
        "action": VERBS.get(entry.verb, entry.verb.replace("_", " ")),
        "object": {"type": entry.object_type, "id": entry.object_id, "label": entry.label, "url": url},
        "note": note(entry.verb, entry.details or {}),
        "details": entry.details or {},
    }


def _object_urls(project_id: int, entries: list[Activity]) -> dict[tuple[str, int], str]:
    """The page of each object that still exists in this project (one query per object type)."""
    wanted: dict[str, set[int]] = {}
    for entry in entries:
        if entry.object_type in PAGES and entry.object_id is not None:
            wanted.setdefault(entry.object_type, set()).add(entry.object_id)
    urls = {}
    for kind, ids in wanted.items():
        model, page = PAGES[kind]
        alive = model.objects.filter(pk__in=ids, **{PROJECT_OF[kind]: project_id}).values_list(
            "pk", flat=True
        )
        urls |= {(kind, pk): reverse(page, args=[project_id, pk]) for pk in alive}
    return urls


def note(verb: str, details: dict[str, Any]) -> str:
    """The details in a few words: "session 12 succeeded — Test ROC AUC 0.97", "viewer → editor"."""
    session = f"session {details['session']}" if details.get("session") else ""
    if verb.startswith("session_"):
        text = f"{session} {details.get('status', verb[8:])}"
        if "value" in details:
            text += f" — {details.get('metric')} {_number(details['value'])}"
        if details.get("message"):
            text += f" in {details.get('phase') or 'training'}: {details['message']}"
        return text
    if verb == "continued" and details.get("from_session"):
        return f"{session}, from session {details['from_session']}"
    if verb == "scored":
        return f"{session} → {details.get('dataset', 'a dataset')}".strip()
    if verb in ("member_added", "member_removed") and details.get("role"):
        return f"as {details['role']}"
    if verb == "role_changed":
        return f"{details.get('previous')} → {details.get('role')}"
    if verb == "variables_changed":
        return ", ".join(details.get("names") or []) or "all removed"
    if verb == "edited_mltask":
        fields = ", ".join(details.get("fields") or [])
        return f"version {details.get('version')}" + (f": {fields}" if fields else "")
    if verb == "edited_dataset":
        return ", ".join(f"{name} → {kind}" for name, kind in (details.get("columns") or {}).items())
    if verb == "uploaded" and "rows" in details:
        return f"{details['rows']} rows"
    if verb == "duplicated":
        if details.get("to_project"):
            return f"into project {details['to_project']}"
        where = f" of project {details['from_project']}" if details.get("from_project") else ""
        return f"from {details.get('from', 'a copy')}{where}"
    return session


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
