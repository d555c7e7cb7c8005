"""An ML task's revision history in the JSON API: the list (also the editor's cheap "did a
teammate save?" check), one revision with its design, the diff of any two, and restore.

Access as everywhere (analyses.access): viewers read the history, editors restore; someone outside
the project gets 404, and so does a revision number the ML task does not have.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError

from analyses import access, activity
from analyses.models import MLTask, MLTaskRevision, Role
from analyses.revisions import (
    MAX_MESSAGE,
    conflict_details,
    diff_revisions,
    restore_revision,
    revision_json,
)
from analyses.serializers import mltask_json

router = Router(tags=["revisions"])

MAX_LIMIT = 200


def _revision(mltask: MLTask, number: int) -> MLTaskRevision:
    found = mltask.revisions.select_related("author").filter(number=number).first()
    if found is None:
        raise Http404("Not found")
    return found


@router.get("/mltasks/{mltask_id}/revisions/")
def list_revisions(request: HttpRequest, mltask_id: int, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Newest first: `{mltask, version, updated_by, updated_at, total, revisions: [{number, author,
    created_at, message, summary, restored_from}]}`; `summary` says what changed from the revision
    before. `?limit=1` is the editor's cheap check for a teammate's save (`version` is the ML
    task's current one)."""
    mltask = access.get_mltask_for(request.user, mltask_id)
    if offset < 0 or not 1 <= limit <= MAX_LIMIT:
        raise HttpError(400, f"offset must be ≥ 0 and limit between 1 and {MAX_LIMIT}.")
    revisions = mltask.revisions.select_related("author").defer("design")
    return {
        "mltask": mltask.pk,
        "version": mltask.version,
        "updated_by": mltask.updated_by.username if mltask.updated_by else None,
        "updated_at": mltask.updated_at.isoformat(),
        "total": revisions.count(),
        "revisions": [revision_json(r) for r in revisions[offset : offset + limit]],
    }


@router.get("/mltasks/{mltask_id}/revisions/{number}/")
def get_revision(request: HttpRequest, mltask_id: int, number: int) -> dict[str, Any]:
    """One revision with its `design` (as `GET /api/mltasks/{id}/` shows a design)."""
    mltask = access.get_mltask_for(request.user, mltask_id)
    return revision_json(_revision(mltask, number), with_design=True)


@router.get("/mltasks/{mltask_id}/revisions/{a}/diff/{b}/")
def diff(request: HttpRequest, mltask_id: int, a: int, b: int) -> dict[str, Any]:
    """What changed from revision a to revision b (either order): `a` and `b` (each revision
    without its design), `code`, a unified diff per code tab (`architecture_code`,
    `training_code`, `preprocessing_code`), `settings`, each changed setting as `{path, before,
    after, change}`, and `same`."""
    mltask = access.get_mltask_for(request.user, mltask_id)
    return diff_revisions(_revision(mltask, a), _revision(mltask, b))


class RestoreRequest(Schema):
    version: int  # the ML task's version the client read: stale → 409, as for PATCH
    message: str | None = Field(None, max_length=MAX_MESSAGE)


@router.post("/mltasks/{mltask_id}/revisions/{number}/restore/", response={200: dict, 409: dict})
def restore(request: HttpRequest, mltask_id: int, number: int, payload: RestoreRequest):
    """Editors: make revision `number`'s design current again, as a new revision ("Restored
    revision n"); history is never rewritten. Answers the ML task (as `GET /api/mltasks/{id}/`)
    with `revision`, the new one. A stale `version` is refused with 409 carrying `current` and
    `conflict` (the revisions saved since and their diff), as a stale PATCH is."""
    mltask = access.get_mltask_for(request.user, mltask_id, Role.EDITOR)
    revision = _revision(mltask, number)
    restored = restore_revision(mltask, revision, payload.version, request.user, payload.message)
    if restored is None:
        mltask.refresh_from_db()
        who = mltask.updated_by.username if mltask.updated_by else "someone"
        body = {
            "error": f"This ML task was saved by {who} since you opened it (you have version "
            f"{payload.version}, the latest is {mltask.version}). Nothing was restored; reload and "
            "restore again if you still want to.",
            "current": mltask_json(mltask),
            "conflict": conflict_details(mltask, payload.version),
        }
        return Status(409, body)
    # The project's feed shows a restore as the edit it is.
    activity.record(
        mltask.project, request.user, "edited_mltask", mltask, version=mltask.version, restored_from=number
    )
    return mltask_json(mltask) | {"revision": revision_json(restored)}
