"""Team pages: a project's Members and Variables, the staff's Accounts page, and my Profile.

As every page (analyses.pages): a login is needed and project objects are reached through
analyses.access, so outsiders get 404. The pages show what the role allows (owners get the forms,
others read); the changes themselves go through the JSON API (analyses.teams_api, analyses.api),
where the roles are checked again. The password change is a plain form (Django's
PasswordChangeForm), so it works without JavaScript and keeps the user logged in afterwards.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods

from analyses import access, teams
from analyses.models import ApiToken, Role
from analyses.pages import _crumbs, _project_context
from analyses.teams_api import token_json


@login_required
@ensure_csrf_cookie
@require_GET
def members_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """Users and groups with their roles; owners add, change and remove them."""
    project = access.get_project_for(request.user, project_id)
    context = _project_context(request, project)
    is_owner = context["role"] == Role.OWNER
    members = teams.members_json(project)
    context |= {
        "members": members,
        "is_owner": is_owner,
        "breadcrumbs": _crumbs(project, ("Members", "")),
        "page_data": {
            "project": project.pk,
            "is_owner": is_owner,
            "me": request.user.username,
            "members": members,
            "roles": [role.value for role in Role],
            # Offered in the group field; owners may add any group staff made.
            "groups": list(Group.objects.order_by("name").values_list("name", flat=True)) if is_owner else [],
        },
    }
    return render(request, "analyses/members.html", context)


@login_required
@ensure_csrf_cookie
@require_GET
def variables_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """The project variables as JSON (what get_variable() reads in user code); owners edit."""
    project = access.get_project_for(request.user, project_id)
    context = _project_context(request, project)
    is_owner = context["role"] == Role.OWNER
    context |= {
        "is_owner": is_owner,
        "breadcrumbs": _crumbs(project, ("Variables", "")),
        "page_data": {"project": project.pk, "is_owner": is_owner, "variables": project.variables},
    }
    return render(request, "analyses/variables.html", context)


@login_required
@ensure_csrf_cookie
@require_GET
def accounts_page(request: HttpRequest) -> HttpResponse:
    """Staff only: create teammates' accounts; groups and who is in them."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff manage accounts.")
    users = get_user_model().objects.order_by("username").prefetch_related("groups")
    context = {
        "users": users,
        "groups": teams.groups_json(),
        "breadcrumbs": [("Projects", reverse("home")), ("Accounts", "")],
        "page_data": {
            "groups": teams.groups_json(),
            "usernames": [u.username for u in users],
        },
    }
    return render(request, "analyses/accounts.html", context)


@login_required
@ensure_csrf_cookie
@require_http_methods(["GET", "POST"])
def profile_page(request: HttpRequest) -> HttpResponse:
    """My password (POST: Django's PasswordChangeForm) and my API tokens (through the JSON API)."""
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        update_session_auth_hash(request, form.user)  # changing it does not log this browser out
        messages.success(request, "Your password was changed.")
        return redirect("profile")
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created_at", "-id")
    context = {
        "form": form,
        "groups": request.user.groups.order_by("name"),
        "breadcrumbs": [("Projects", reverse("home")), ("Profile", "")],
        "page_data": {"tokens": [token_json(t) for t in tokens]},
    }
    return render(request, "analyses/profile.html", context, status=400 if form.errors else 200)


urlpatterns = [
    path("projects/<int:project_id>/members/", members_page, name="project_members"),
    path("projects/<int:project_id>/variables/", variables_page, name="project_variables"),
    path("accounts/", accounts_page, name="accounts"),
    path("accounts/profile/", profile_page, name="profile"),
]
