"""Duplicating analyses and ML tasks in the JSON API (analyses.duplicate).

Registered on the API by analyses/api.py (``api.add_router("", duplicate_router)``). Anyone who can
read the source may copy it, into a project where they are editor: a target project they cannot see
is a 404, one where they are viewer a 403 (analyses.access). A duplicate is in the activity of both
projects.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from ninja import Router, Schema, Status

from analyses import access, activity
from analyses.duplicate import DuplicateError, duplicate_analysis, duplicate_mltask
from analyses.models import Analysis, MLTask, Role
from analyses.serializers import analysis_json, mltask_json

router = Router(tags=["analyses"])


class AnalysisCopy(Schema):
    project: int | None = None  # default: the analysis' own project
    name: str = ""  # default: "Copy of <name>" (the same name in another project)


class MLTaskCopy(Schema):
    analysis: int | None = None  # default: the ML task's own analysis


@router.post("/analyses/{analysis_id}/duplicate/", response={201: dict, 400: dict})
def duplicate_analysis_endpoint(request: HttpRequest, analysis_id: int, payload: AnalysisCopy | None = None):
    """A new analysis with copies of all the analysis' ML tasks (designs, code, targets; not
    sessions), in `project` (default: the same). In another project, its dataset (and any explicit
    test dataset) is copied there, files included, so that project is self-contained."""
    payload = payload or AnalysisCopy()
    source = access.get_analysis_for(request.user, analysis_id)
    project = access.get_project_for(request.user, payload.project or source.project_id, Role.EDITOR)
    try:
        analysis, copied = duplicate_analysis(source, project, payload.name, request.user)
    except DuplicateError as exc:
        return JsonResponse({"error": str(exc), **exc.details}, status=400)
    _record(request, source, analysis, copied)
    return Status(201, analysis_json(analysis))


@router.post("/mltasks/{mltask_id}/duplicate/", response={201: dict, 400: dict})
def duplicate_mltask_endpoint(request: HttpRequest, mltask_id: int, payload: MLTaskCopy | None = None):
    """A copy of the ML task (design, code, targets; not sessions) in `analysis` (default: the same).
    Another analysis' dataset must have the columns the ML task uses: 400 with `missing_columns`."""
    payload = payload or MLTaskCopy()
    source = access.get_mltask_for(request.user, mltask_id)
    analysis = access.get_analysis_for(request.user, payload.analysis or source.analysis_id, Role.EDITOR)
    try:
        mltask, copied = duplicate_mltask(source, analysis, request.user)
    except DuplicateError as exc:
        return JsonResponse({"error": str(exc), **exc.details}, status=400)
    _record(request, source, mltask, copied)
    return Status(201, mltask_json(mltask))


def _record(
    request: HttpRequest, source: Analysis | MLTask, copy: Analysis | MLTask, copied: list[str]
) -> None:
    """One entry where the copy is; another in the source's project when that is not the same."""
    source_project, project = source.project, copy.project
    other = source_project.name if source_project.pk != project.pk else None
    origin = activity.label_for(source)
    if isinstance(source, MLTask):
        origin += f" in analysis {source.analysis.name}"
    details = {"from": origin, "from_project": other, "datasets_copied": copied or None}
    activity.record(project, request.user, "duplicated", copy, **details)
    if other is not None:
        activity.record(
            source_project, request.user, "duplicated", source, to_project=project.name, copy=copy.pk
        )
