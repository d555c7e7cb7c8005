"""Teams in the JSON API: a project's members (users and groups), deleting a project, the staff's
groups, and each user's own API tokens.

Access as everywhere (analyses.access): members read the member list, owners change it and delete
the project; outsiders get 404. Groups are created and filled by staff (403 otherwise); anyone
logged in may list them, so an owner can pick a team to add. Tokens: a user sees and revokes their
own only (someone else's token id is a 404), and the key is shown once, when it is created.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Router, Schema, Status
from ninja.errors import HttpError

from analyses import access, teams
from analyses.models import ApiToken, Role
from analyses.project_deletion import ProjectBusyError, delete_project

router = Router(tags=["teams"])


# ---------------------------------------------------------------- project members


@router.delete("/projects/{project_id}/members/groups/{name}/")
def remove_group_member(request: HttpRequest, project_id: int, name: str) -> dict:
    """Remove group `name` from the project (owners); its users keep their own memberships.
    409 when that would leave the project without an owner."""
    project = access.get_project_for(request.user, project_id, Role.OWNER)
    teams.remove_member(project, group=name)
    return {"removed": name}


def list_members(request: HttpRequest, project_id: int) -> dict:
    """The project's members (any member): `{users: [{username, role}], groups: [{name, role,
    members: [username]}]}`. A user's role in the project is the highest of their own and their
    groups' roles."""
    return teams.members_json(access.get_project_for(request.user, project_id))


def remove_project(request: HttpRequest, project_id: int) -> HttpResponse:
    """Delete the project with its datasets, analyses, ML tasks, sessions and their files (owners).
    409 while one of its sessions or scoring jobs is queued or running."""
    project = access.get_project_for(request.user, project_id, Role.OWNER)
    try:
        delete_project(project)
    except ProjectBusyError as exc:
        raise HttpError(409, str(exc)) from None
    return HttpResponse(status=204)


# ---------------------------------------------------------------- groups (staff)


def _staff_only(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only staff manage groups.")


class NewGroup(Schema):
    name: str


class GroupMember(Schema):
    username: str


@router.get("/groups/")
def list_groups(request: HttpRequest) -> list[dict]:
    """Every group with its users: `[{id, name, members: [username]}]`."""
    return teams.groups_json()


@router.post("/groups/", response={201: dict})
def create_group(request: HttpRequest, payload: NewGroup):
    """Create a group (staff); 409 when the name is taken."""
    _staff_only(request)
    group = teams.create_group(payload.name)
    return Status(201, {"id": group.pk, "name": group.name, "members": []})


@router.delete("/groups/{name}/", response={204: None})
def delete_group(request: HttpRequest, name: str):
    """Delete a group (staff) and its project memberships; 409 when a project would lose its last owner."""
    _staff_only(request)
    teams.delete_group(name)
    return HttpResponse(status=204)


@router.post("/groups/{name}/members/", response={201: dict})
def add_group_member(request: HttpRequest, name: str, payload: GroupMember):
    """Put a user in the group (staff)."""
    _staff_only(request)
    teams.add_to_group(name, payload.username)
    return Status(201, {"group": name, "username": payload.username})


@router.delete("/groups/{name}/members/{username}/")
def remove_group_user(request: HttpRequest, name: str, username: str) -> dict:
    """Take a user out of the group (staff); 409 when a project it owns would have no owner left."""
    _staff_only(request)
    teams.remove_from_group(name, username)
    return {"group": name, "removed": username}


# ---------------------------------------------------------------- my API tokens


class NewToken(Schema):
    name: str = ""


def token_json(token: ApiToken) -> dict:
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
    }


@router.get("/tokens/")
def list_tokens(request: HttpRequest) -> list[dict]:
    """My API tokens, newest first: `[{id, name, prefix, created_at, last_used_at}]` (`prefix`: the
    key's first 8 characters; the whole key is shown only when it is created)."""
    return [token_json(t) for t in ApiToken.objects.filter(user=request.user).order_by("-created_at", "-id")]


@router.post("/tokens/", response={201: dict})
def create_token(request: HttpRequest, payload: NewToken):
    """A new token for me: `{id, name, prefix, created_at, last_used_at, token}`; `token` is the key
    to send as `Authorization: Token <key>`, shown this once."""
    name = payload.name.strip()
    if len(name) > 100:
        raise HttpError(400, "A token name has at most 100 characters.")
    token = ApiToken.issue(request.user, name=name)
    return Status(201, {**token_json(token), "token": token.key})


@router.delete("/tokens/{token_id}/", response={204: None})
def revoke_token(request: HttpRequest, token_id: int):
    """Revoke one of my tokens: it stops working at once. Another user's token: 404."""
    deleted, _ = ApiToken.objects.filter(pk=token_id, user=request.user).delete()
    if not deleted:
        raise Http404("Not found")
    return HttpResponse(status=204)


# django-ninja answers a path from the first router that declares it, and these two paths are the
# main router's (POST members, GET project): their new methods must join them there. analyses.api
# imports this module at its very end, when `api` exists, and mounts `router` right after.
from analyses.api import api  # noqa: E402

api.get("/projects/{project_id}/members/", tags=["projects"])(list_members)
api.delete("/projects/{project_id}/", response={204: None}, tags=["projects"])(remove_project)


@api.exception_handler(teams.TeamError)
def team_error(request: HttpRequest, exc: teams.TeamError) -> HttpResponse:
    return api.create_response(request, {"error": str(exc)}, status=exc.status)
