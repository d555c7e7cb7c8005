"""One access helper per object type; every view, API endpoint and consumer goes through them.

Outsiders get Http404 (nothing about the object leaks); members whose role is too low get
PermissionDenied (403), since they can already see the object exists.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from analyses.models import ROLE_RANK, Analysis, Dataset, Membership, MLTask, Project, Role, Session


def role_in(user, project: Project | int) -> Role | None:
    if not getattr(user, "is_authenticated", False):
        return None
    project_id = project.pk if isinstance(project, Project) else project
    role = Membership.objects.filter(project_id=project_id, user=user).values_list("role", flat=True).first()
    return Role(role) if role else None


def _check(user, project_id: int, needed: Role) -> Role:
    role = role_in(user, project_id)
    if role is None:
        raise Http404("Not found")
    if ROLE_RANK[role] < ROLE_RANK[needed]:
        raise PermissionDenied(f"This needs the {needed.value} role in the project; you are {role.value}.")
    return role


def get_project_for(user, pk: int, role: Role = Role.VIEWER) -> Project:
    project = Project.objects.filter(pk=pk).first()
    if project is None:
        raise Http404("Not found")
    _check(user, project.pk, role)
    return project


def get_dataset_for(user, pk: int, role: Role = Role.VIEWER) -> Dataset:
    dataset = Dataset.objects.select_related("project").filter(pk=pk).first()
    if dataset is None:
        raise Http404("Not found")
    _check(user, dataset.project_id, role)
    return dataset


def get_analysis_for(user, pk: int, role: Role = Role.VIEWER) -> Analysis:
    analysis = Analysis.objects.select_related("project", "dataset").filter(pk=pk).first()
    if analysis is None:
        raise Http404("Not found")
    _check(user, analysis.project_id, role)
    return analysis


def get_mltask_for(user, pk: int, role: Role = Role.VIEWER) -> MLTask:
    mltask = MLTask.objects.select_related("analysis__project", "analysis__dataset").filter(pk=pk).first()
    if mltask is None:
        raise Http404("Not found")
    _check(user, mltask.analysis.project_id, role)
    return mltask


def get_session_for(user, pk: int, role: Role = Role.VIEWER) -> Session:
    session = Session.objects.select_related("mltask__analysis__project").filter(pk=pk).first()
    if session is None:
        raise Http404("Not found")
    _check(user, session.mltask.analysis.project_id, role)
    return session


def projects_of(user):
    return Project.objects.filter(memberships__user=user).order_by("name")
