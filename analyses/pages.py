"""Server-rendered pages (UX.md's page map); each page's script then talks to the JSON API.

Every view needs a login and reaches its object through analyses.access, so someone outside the
project gets 404. Nested URLs name the project too; an object reached under another project's URL
is also a 404, so a page never shows one project's object in another's breadcrumbs.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Max, OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import include, path, reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods

from analyses import access, teams
from analyses.compare import CompareError, compare_sessions, parse_ids, sessions_of
from analyses.design import handling_schema
from analyses.models import ROLE_RANK, Membership, MLTask, PredictionType, Project, Role, Session
from analyses.serializers import mltask_json, session_detail, session_summary
from analyses.statistics import COLUMN_TYPES
from training_worker.defaults import default_training
from training_worker.metrics import (
    CUSTOM_SCORE,
    DEFAULT_METRICS,
    PREDICTION_TYPES,
    greater_is_better,
    metric_names,
)

Crumbs = list[tuple[str, str]]


def _can_edit(role: Role | None) -> bool:
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[Role.EDITOR]


def _same_project(object_project_id: int, project_id: int) -> None:
    if object_project_id != project_id:
        raise Http404("Not found")


def _project_context(request: HttpRequest, project: Project) -> dict[str, Any]:
    role = access.role_in(request.user, project)
    return {"project": project, "role": role, "can_edit": _can_edit(role)}


def _crumbs(project: Project, *more: tuple[str, str]) -> Crumbs:
    return [("Projects", reverse("home")), (project.name, reverse("project", args=[project.pk])), *more]


def _last_model(mltask: MLTask) -> dict | None:
    """Input shapes and vocabularies of the latest session that built its model (exact for that design)."""
    built = mltask.sessions.filter(model_info__isnull=False).order_by("-id")
    session = built.only("id", "model_info").first()
    if session is None:
        return None
    info = session.model_info or {}
    return {
        "session": session.pk,
        "input_shapes": info.get("input_shapes", {}),
        "vocabularies": info.get("vocabularies", {}),
        "params": info.get("params"),
    }


def _handling_text(handling: Any) -> str:
    """Feature handling is a small dict such as {"rescaling": "standard"}; shown as key: value."""
    if isinstance(handling, dict):
        return ", ".join(f"{key}: {value}" for key, value in handling.items())
    return "" if handling is None else str(handling)


def _metric_choices() -> dict[str, Any]:
    """The optimization metrics the page offers, per prediction type, and which way each is better."""
    return {
        "names": {
            kind: [
                {"name": name, "greater_is_better": greater_is_better(name)} for name in metric_names(kind)
            ]
            for kind in PREDICTION_TYPES
        },
        "defaults": dict(DEFAULT_METRICS),
        # Offered too while the Metrics settings report the Training tab's score (any type).
        "custom_score": {"name": CUSTOM_SCORE, "greater_is_better": greater_is_better(CUSTOM_SCORE)},
    }


def _last_session_status():
    newest = Session.objects.filter(mltask=OuterRef("pk")).order_by("-id").values("status")[:1]
    return Subquery(newest)


@login_required
@ensure_csrf_cookie
@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """Projects I belong to, and a form that creates one (I become its owner)."""
    form_error = ""
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if not name:
            form_error = "A project needs a name."
        else:
            with transaction.atomic():
                project = Project.objects.create(name=name[:200], created_by=request.user)
                Membership.objects.create(project=project, user=request.user, role=Role.OWNER)
            return redirect("project", project.pk)
    roles = access.roles_of(request.user)  # own memberships and the user's groups'
    projects = access.projects_of(request.user).annotate(
        num_datasets=Count("datasets", distinct=True),
        num_analyses=Count("analyses", distinct=True),
        last_session_at=Max("analyses__mltasks__sessions__queued_at"),
    )
    rows = [{"project": project, "role": roles.get(project.pk, "")} for project in projects]
    return render(
        request,
        "analyses/home.html",
        {"rows": rows, "form_error": form_error, "breadcrumbs": [("Projects", reverse("home"))]},
        status=400 if form_error else 200,
    )


@login_required
@ensure_csrf_cookie
@require_GET
def project_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.get_project_for(request.user, project_id)
    analyses = (
        project.analyses.select_related("dataset")
        .annotate(num_mltasks=Count("mltasks"))
        .order_by("name", "id")
    )
    context = _project_context(request, project) | {
        "datasets": project.datasets.order_by("name", "id"),
        "analyses": analyses,
        "members": teams.members_json(project),  # {users, groups}
        "is_owner": access.role_in(request.user, project) == Role.OWNER,
        "breadcrumbs": _crumbs(project),
        "page_data": {"project": project.pk},
    }
    return render(request, "analyses/project.html", context)


@login_required
@ensure_csrf_cookie
@require_GET
def dataset_page(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = access.get_dataset_for(request.user, dataset_id)
    _same_project(dataset.project_id, project_id)
    project = dataset.project
    context = _project_context(request, project)
    context |= {
        "dataset": dataset,
        "prediction_types": PredictionType.values,
        "breadcrumbs": _crumbs(project, (dataset.name, "")),
        "page_data": {
            "project": project.pk,
            "dataset": dataset.pk,
            "name": dataset.name,
            "rows": dataset.rows,
            "columns": dataset.columns,
            "can_edit": context["can_edit"],
            "column_types": list(COLUMN_TYPES),
        },
    }
    return render(request, "analyses/dataset.html", context)


@login_required
@ensure_csrf_cookie
@require_GET
def analysis_page(request: HttpRequest, project_id: int, analysis_id: int) -> HttpResponse:
    analysis = access.get_analysis_for(request.user, analysis_id)
    _same_project(analysis.project_id, project_id)
    project = analysis.project
    mltasks = analysis.mltasks.annotate(
        num_sessions=Count("sessions"), last_status=_last_session_status()
    ).order_by("id")
    context = _project_context(request, project) | {
        "analysis": analysis,
        "mltasks": mltasks,
        "columns": analysis.dataset.columns,
        "prediction_types": PredictionType.values,
        "breadcrumbs": _crumbs(project, (analysis.name, "")),
        "page_data": {"project": project.pk, "analysis": analysis.pk},
    }
    return render(request, "analyses/analysis.html", context)


@login_required
@ensure_csrf_cookie
@require_GET
def mltask_page(request: HttpRequest, project_id: int, mltask_id: int) -> HttpResponse:
    mltask = access.get_mltask_for(request.user, mltask_id)
    analysis = mltask.analysis
    _same_project(analysis.project_id, project_id)
    project = analysis.project
    context = _project_context(request, project)
    features = [
        feature | {"handling_text": _handling_text(feature.get("handling"))} for feature in mltask.features
    ]
    context |= {
        "mltask": mltask,
        "features": features,
        "other_datasets": project.datasets.exclude(pk=analysis.dataset_id).order_by("name"),
        "num_sessions": mltask.sessions.count(),
        "training": mltask.training,
        "prediction_types": PredictionType.values,
        "breadcrumbs": _crumbs(
            project,
            (analysis.name, reverse("analysis", args=[project.pk, analysis.pk])),
            (f"{mltask.target} ({mltask.prediction_type})", ""),
        ),
        "page_data": {
            "project": project.pk,
            "mltask": mltask_json(mltask),
            "can_edit": context["can_edit"],
            "handling_schema": handling_schema(),
            "last_model": _last_model(mltask),
            "metrics": _metric_choices(),
            # Settings an ML task saved before they existed read as these (as the server merges them).
            "default_training": default_training(),
            # Train navigates to <sessions_base><id>/ as soon as the session exists.
            "sessions_base": reverse("project", args=[project.pk]) + "sessions/",
        },
    }
    return render(request, "analyses/mltask.html", context)


@login_required
@ensure_csrf_cookie
@require_GET
def session_page(request: HttpRequest, project_id: int, session_id: int) -> HttpResponse:
    """The live view while it trains, the report once it ended (same URL)."""
    session = access.get_session_for(request.user, session_id)
    mltask: MLTask = session.mltask
    analysis = mltask.analysis
    _same_project(analysis.project_id, project_id)
    project = analysis.project
    context = _project_context(request, project)
    mltask_url = reverse("mltask", args=[project.pk, mltask.pk])
    training = (session.design or {}).get("training") or {}
    # Advanced mode's code decides the epochs: the runner's progress events tell them.
    advanced = training.get("mode") == "advanced"
    planned_epochs = None if advanced else training.get("epochs")
    context |= {
        "session": session,
        "summary": session_summary(session),
        "mltask": mltask,
        "mltask_url": mltask_url,
        "breadcrumbs": _crumbs(
            project,
            (analysis.name, reverse("analysis", args=[project.pk, analysis.pk])),
            (f"{mltask.target} ({mltask.prediction_type})", mltask_url),
            (f"Session {session.pk}", ""),
        ),
        "page_data": {
            "session": session_detail(session),
            "can_edit": context["can_edit"],
            "planned_epochs": planned_epochs if isinstance(planned_epochs, int) else None,
            "training_mode": "advanced" if advanced else "standard",
            "metric": (session.design or {}).get("metric") or "",  # its chart comes first
            "mltask_url": mltask_url,
            "socket_path": f"/ws/sessions/{session.pk}/",
        },
    }
    return render(request, "analyses/session.html", context)


@login_required
@ensure_csrf_cookie
@require_GET
def compare_page(request: HttpRequest, project_id: int, mltask_id: int) -> HttpResponse:
    """Sessions of one ML task side by side (``?sessions=12,15``): overlaid learning curves, the
    final metrics with the best of each row marked, and what changed between any two."""
    mltask = access.get_mltask_for(request.user, mltask_id)
    analysis = mltask.analysis
    _same_project(analysis.project_id, project_id)
    project = analysis.project
    error, comparison = "", None
    try:
        ids = parse_ids(request.GET.get("sessions", ""))
    except CompareError as exc:
        error = str(exc)
    else:
        sessions = sessions_of(mltask, ids)
        if sessions is None:  # another ML task's session, or one of a project the user cannot see
            raise Http404("Not found")
        comparison = compare_sessions(mltask, sessions)
    mltask_url = reverse("mltask", args=[project.pk, mltask.pk])
    context = _project_context(request, project) | {
        "mltask": mltask,
        "mltask_url": mltask_url,
        "error": error,
        "breadcrumbs": _crumbs(
            project,
            (analysis.name, reverse("analysis", args=[project.pk, analysis.pk])),
            (f"{mltask.target} ({mltask.prediction_type})", mltask_url),
            ("Compare sessions", ""),
        ),
        "page_data": {
            "comparison": comparison,
            "sessions_base": reverse("project", args=[project.pk]) + "sessions/",
        },
    }
    return render(request, "analyses/compare.html", context, status=400 if error else 200)


urlpatterns = [
    path("", home, name="home"),
    path("projects/<int:project_id>/", project_page, name="project"),
    path("projects/<int:project_id>/datasets/<int:dataset_id>/", dataset_page, name="dataset"),
    path("projects/<int:project_id>/analyses/<int:analysis_id>/", analysis_page, name="analysis"),
    path("projects/<int:project_id>/mltasks/<int:mltask_id>/", mltask_page, name="mltask"),
    path("projects/<int:project_id>/mltasks/<int:mltask_id>/compare/", compare_page, name="compare"),
    path("projects/<int:project_id>/sessions/<int:session_id>/", session_page, name="session"),
    path("", include("analyses.team_pages")),  # members, variables, accounts, profile
]
