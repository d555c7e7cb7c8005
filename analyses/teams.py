"""Who is in a project: users and whole Django groups, each with a role, and the staff's groups.

A project always keeps an owner: a change that would leave no user owning it (directly or through
an owner group with members) is refused with TeamError(409), so nobody locks a team out of its
project by mistake. Every change runs in a transaction and is checked after it is made, which also
covers roundabout ways of losing the last owner (emptying an owner group).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from analyses.models import Membership, Project, Role

# Group names travel in URL paths (/api/groups/<name>/): no slash, nothing odd.
GROUP_NAME = re.compile(r"^[\w][\w .-]{0,149}$")


class TeamError(Exception):
    """A change that cannot be made; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def owner_ids(project_id: int) -> set[int]:
    """The active users owning the project, directly or through a group."""
    users = get_user_model().objects.filter(is_active=True)
    direct = users.filter(memberships__project_id=project_id, memberships__role=Role.OWNER)
    grouped = users.filter(
        groups__project_memberships__project_id=project_id, groups__project_memberships__role=Role.OWNER
    )
    return set(direct.values_list("pk", flat=True)) | set(grouped.values_list("pk", flat=True))


@contextlib.contextmanager
def keeping_owners(project_ids: Iterable[int]) -> Iterator[None]:
    """Run a change in a transaction; undo it (TeamError 409) when a project owned before has no
    owner after."""
    project_ids = list(project_ids)
    with transaction.atomic():
        owned = {pk for pk in project_ids if owner_ids(pk)}
        yield
        orphaned = sorted(pk for pk in owned if not owner_ids(pk))
        if orphaned:
            names = ", ".join(Project.objects.filter(pk__in=orphaned).values_list("name", flat=True))
            raise TeamError(
                f"Project {names} would have no owner left; make someone else owner first.", status=409
            )


def _user(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise TeamError(f"No user named {username!r}; an admin creates accounts first.", status=404)
    return user


def _group(name: str) -> Group:
    group = Group.objects.filter(name=name).first()
    if group is None:
        raise TeamError(f"No group named {name!r}; staff create groups on the Accounts page.", status=404)
    return group


def set_member(project: Project, role: Role, username: str | None = None, group: str | None = None) -> dict:
    """Add a user or a group to the project with ``role``, or change its role: ``{username|group, role}``."""
    if bool(username) == bool(group):
        raise TeamError("Name either a username or a group.")
    who = {"user": _user(username)} if username else {"group": _group(group)}
    with keeping_owners([project.pk]):
        Membership.objects.update_or_create(project=project, **who, defaults={"role": role})
    return {"username": username, "role": role} if username else {"group": group, "role": role}


def remove_member(project: Project, username: str | None = None, group: str | None = None) -> None:
    """Remove a user's or a group's own membership (404 when it has none)."""
    who = {"user__username": username} if username else {"group__name": group}
    found = project.memberships.filter(**who)
    if not found.exists():
        raise TeamError("Not found.", status=404)
    with keeping_owners([project.pk]):
        found.delete()


def members_json(project: Project) -> dict:
    """The project's members: users with their own role, and groups with their role and users."""
    memberships = project.memberships.select_related("user", "group")
    users = sorted((m for m in memberships if m.user_id), key=lambda m: m.user.username)
    groups = sorted((m for m in memberships if m.group_id), key=lambda m: m.group.name)
    return {
        "users": [{"username": m.user.username, "role": m.role} for m in users],
        "groups": [{"name": m.group.name, "role": m.role, "members": group_members(m.group)} for m in groups],
    }


# ---------------------------------------------------------------- staff: groups


def group_members(group: Group) -> list[str]:
    return list(group.user_set.order_by("username").values_list("username", flat=True))


def groups_json() -> list[dict]:
    return [
        {"id": group.pk, "name": group.name, "members": group_members(group)}
        for group in Group.objects.order_by("name")
    ]


def create_group(name: str) -> Group:
    name = name.strip()
    if not GROUP_NAME.match(name):
        raise TeamError(
            "A group name has 1 to 150 letters, digits, spaces, dots, dashes or underscores, "
            "and starts with a letter or digit."
        )
    if Group.objects.filter(name=name).exists():
        raise TeamError(f"A group named {name!r} already exists.", status=409)
    return Group.objects.create(name=name)


def _projects_owned_by(group: Group) -> list[int]:
    return list(group.project_memberships.filter(role=Role.OWNER).values_list("project_id", flat=True))


def delete_group(name: str) -> None:
    group = _group(name)
    with keeping_owners(_projects_owned_by(group)):
        group.delete()  # its project memberships go with it


def add_to_group(name: str, username: str) -> None:
    _group(name).user_set.add(_user(username))


def remove_from_group(name: str, username: str) -> None:
    group, user = _group(name), _user(username)
    if not group.user_set.filter(pk=user.pk).exists():
        raise TeamError(f"{username} is not in group {name}.", status=404)
    with keeping_owners(_projects_owned_by(group)):
        group.user_set.remove(user)


# ---------------------------------------------------------------- project variables

# Set by the runner for every session (training_worker.runner): a project variable cannot shadow them.
RESERVED_VARIABLES = ("DKU_MODEL_METRIC", "DKU_MODEL_METRIC_GREATER_IS_BETTER")
MAX_VARIABLES_BYTES = 64 * 1024  # they travel in every session's job spec


def check_variables(variables: dict) -> None:
    """TeamError (400) naming the first problem: blank or reserved names, or too much data."""
    for name in variables:
        if not name.strip() or name != name.strip():
            raise TeamError(f"Variable name {name!r} is blank or has spaces around it.")
        if name in RESERVED_VARIABLES:
            raise TeamError(f"{name} is set by the platform for every session; choose another name.")
    if len(json.dumps(variables)) > MAX_VARIABLES_BYTES:
        raise TeamError(
            f"The variables take more than {MAX_VARIABLES_BYTES // 1024} KB of JSON; keep data in datasets."
        )
