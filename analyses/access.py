"""One access helper per object type; every view, API endpoint and consumer goes through them.

Outsiders get Http404 (nothing about the object leaks); members whose role is too low get
PermissionDenied (403), since they can already see the object exists.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404

from analyses.models import ROLE_RANK, Analysis, Dataset, Membership, MLTask, Project, Role, Session


def _memberships_of(user):
    """The user's own memberships and those of their groups."""
    return Membership.objects.filter(Q(user=user) | Q(group__user=user))


def _highest(roles) -> Role | None:
    return max((Role(role) for role in roles), key=ROLE_RANK.__getitem__, default=None)


def role_in(user, project: Project | int) -> Role | None:
    """The highest of the user's own role and their groups' roles in the project; None: outsider."""
    if not getattr(user, "is_authenticated", False):
        return None
    project_id = project.pk if isinstance(project, Project) else project
    return _highest(_memberships_of(user).filter(project_id=project_id).values_list("role", flat=True))


def roles_of(user) -> dict[int, Role]:
    """{project id: the user's role} for every project the user reaches, directly or by a group."""
    if not getattr(user, "is_authenticated", False):
        return {}
    roles: dict[int, Role] = {}
    for project_id, role in _memberships_of(user).values_list("project_id", "role"):
        roles[project_id] = _highest([role, roles.get(project_id, role)])
    return roles


def project_ids_of(user):
    """The ids of the projects the user reaches (a subquery: no duplicates, no ordering)."""
    return _memberships_of(user).values("project_id")


def _check(user, project_id: int, needed: Role) -> Role:
    role = role_in(user, project_id)
    if role is None:
        raise Http404("Not found")
    if ROLE_RANK[role] < ROLE_RANK[needed]:
        raise PermissionDenied(f"This needs the {needed.value} role in the project; you are {role.value}.")
    return role


def _get_for(queryset, project_field: str, user, pk: int, role: Role):
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404("Not found")
    project_id = obj.pk if project_field == "pk" else _follow(obj, project_field)
    _check(user, project_id, role)
    return obj


def _follow(obj, path: str):
    for attribute in path.split("__"):
        obj = getattr(obj, attribute)
    return obj


def get_project_for(user, pk: int, role: Role = Role.VIEWER) -> Project:
    return _get_for(Project.objects.all(), "pk", user, pk, role)


def get_dataset_for(user, pk: int, role: Role = Role.VIEWER) -> Dataset:
    return _get_for(Dataset.objects.select_related("project"), "project_id", user, pk, role)


def get_analysis_for(user, pk: int, role: Role = Role.VIEWER) -> Analysis:
    return _get_for(Analysis.objects.select_related("project", "dataset"), "project_id", user, pk, role)


def get_mltask_for(user, pk: int, role: Role = Role.VIEWER) -> MLTask:
    queryset = MLTask.objects.select_related("analysis__project", "analysis__dataset")
    return _get_for(queryset, "analysis__project_id", user, pk, role)


def get_session_for(user, pk: int, role: Role = Role.VIEWER) -> Session:
    queryset = Session.objects.select_related("mltask__analysis__project")
    return _get_for(queryset, "mltask__analysis__project_id", user, pk, role)


def projects_of(user):
    return Project.objects.filter(pk__in=project_ids_of(user)).order_by("name")
