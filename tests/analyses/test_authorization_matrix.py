"""Who may call what: every API operation, page and the websocket × {owner, editor, viewer,
outsider, anonymous}, generated from the URL configuration.

The API's operations come from its OpenAPI schema and the pages from Django's URL resolver; each
must be listed in ``API_RULES`` / ``PAGE_RULES`` with the least role it needs, so a route added
without a decision fails here. Then, for every route:

- anonymous: 401 (API) or a redirect to the login page (pages);
- outsider (a user of no role in the project): 404, whatever the method: not even its existence
  is told;
- a role below the one needed: 403, before the request does anything (the body sent is valid, so
  no validation error can hide a missing check);
- the roles that may: reads answer without 401/403 or the access check's 404. Writes are not
  carried out here (they would delete the fixtures); their features' own tests do that.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from analyses.api import api
from analyses.models import ApiToken, Membership, MLTask, Role, ScoringJob, Session
from tests.analyses.test_api import create_mltask
from training_worker.events import Status
from webapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ACCESS_NOT_FOUND = "Not found."
ROLES = ("owner", "editor", "viewer")
RANK = {"viewer": 0, "editor": 1, "owner": 2}


@dataclass(frozen=True)
class Rule:
    """``need``: "public", "user" (any account), "staff", "self" (one's own objects), or a
    project role; ``body``: a valid JSON body for writes (so that only the role decides)."""

    need: str
    body: dict[str, Any] = field(default_factory=dict)


API_RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/api/token/"): Rule("public"),
    ("GET", "/api/health/"): Rule("public"),
    ("POST", "/api/users/"): Rule("staff", {"username": "new-user", "password": "A-long-passw0rd!"}),
    ("GET", "/api/workers/"): Rule("user"),
    ("GET", "/api/projects/"): Rule("user"),
    ("POST", "/api/projects/"): Rule("user", {"name": "mine"}),
    ("GET", "/api/groups/"): Rule("user"),
    ("POST", "/api/groups/"): Rule("staff", {"name": "new-group"}),
    ("DELETE", "/api/groups/{name}/"): Rule("staff"),
    ("POST", "/api/groups/{name}/members/"): Rule("staff", {"username": "stranger"}),
    ("DELETE", "/api/groups/{name}/members/{username}/"): Rule("staff"),
    ("GET", "/api/tokens/"): Rule("user"),
    ("POST", "/api/tokens/"): Rule("user", {"name": "laptop"}),
    ("DELETE", "/api/tokens/{token_id}/"): Rule("self"),
    ("GET", "/api/projects/{project_id}/"): Rule("viewer"),
    ("DELETE", "/api/projects/{project_id}/"): Rule("owner"),
    ("GET", "/api/projects/{project_id}/members/"): Rule("viewer"),
    ("POST", "/api/projects/{project_id}/members/"): Rule(
        "owner", {"username": "stranger", "role": "viewer"}
    ),
    ("DELETE", "/api/projects/{project_id}/members/{username}/"): Rule("owner"),
    ("DELETE", "/api/projects/{project_id}/members/groups/{name}/"): Rule("owner"),
    ("GET", "/api/projects/{project_id}/variables/"): Rule("viewer"),
    ("PUT", "/api/projects/{project_id}/variables/"): Rule("owner", {"batch": 32}),
    ("GET", "/api/projects/{project_id}/activity/"): Rule("viewer"),
    ("GET", "/api/projects/{project_id}/datasets/"): Rule("viewer"),
    ("POST", "/api/projects/{project_id}/datasets/"): Rule("editor"),
    ("GET", "/api/datasets/{dataset_id}/"): Rule("viewer"),
    ("PATCH", "/api/datasets/{dataset_id}/"): Rule("editor", {"columns": [{"name": "note", "type": "text"}]}),
    ("GET", "/api/datasets/{dataset_id}/rows/"): Rule("viewer"),
    ("GET", "/api/datasets/{dataset_id}/download/"): Rule("viewer"),
    ("GET", "/api/projects/{project_id}/analyses/"): Rule("viewer"),
    ("POST", "/api/projects/{project_id}/analyses/"): Rule(
        "editor", {"dataset": "{dataset_id}", "name": "b"}
    ),
    ("GET", "/api/analyses/{analysis_id}/"): Rule("viewer"),
    ("POST", "/api/analyses/{analysis_id}/mltasks/"): Rule("editor", {"target": "species"}),
    ("POST", "/api/analyses/{analysis_id}/duplicate/"): Rule("viewer"),  # a copy needs editor where it goes
    ("GET", "/api/mltasks/{mltask_id}/"): Rule("viewer"),
    ("PATCH", "/api/mltasks/{mltask_id}/"): Rule("editor", {"version": 1, "training": {"epochs": 2}}),
    ("POST", "/api/mltasks/{mltask_id}/validate/"): Rule("editor"),
    ("POST", "/api/mltasks/{mltask_id}/duplicate/"): Rule("viewer"),  # into an analysis the user may edit
    ("GET", "/api/mltasks/{mltask_id}/sessions/"): Rule("viewer"),
    ("POST", "/api/mltasks/{mltask_id}/sessions/"): Rule("editor"),
    ("GET", "/api/mltasks/{mltask_id}/sessions/table/"): Rule("viewer"),
    ("GET", "/api/mltasks/{mltask_id}/compare/"): Rule("viewer"),
    ("GET", "/api/mltasks/{mltask_id}/revisions/"): Rule("viewer"),
    ("GET", "/api/mltasks/{mltask_id}/revisions/{number}/"): Rule("viewer"),
    ("GET", "/api/mltasks/{mltask_id}/revisions/{a}/diff/{b}/"): Rule("viewer"),
    ("POST", "/api/mltasks/{mltask_id}/revisions/{number}/restore/"): Rule("editor", {"version": 1}),
    ("GET", "/api/sessions/{session_id}/"): Rule("viewer"),
    ("DELETE", "/api/sessions/{session_id}/"): Rule("editor"),
    ("POST", "/api/sessions/{session_id}/resume/"): Rule("editor"),
    ("POST", "/api/sessions/{session_id}/interrupt/"): Rule("editor"),
    ("POST", "/api/sessions/{session_id}/abort/"): Rule("editor"),
    ("GET", "/api/sessions/{session_id}/tensorboard/"): Rule("viewer"),
    ("GET", "/api/sessions/{session_a}/diff/{session_b}/"): Rule("viewer"),
    ("GET", "/api/sessions/{session_id}/report/"): Rule("viewer"),
    ("GET", "/api/sessions/{session_id}/scoring/"): Rule("viewer"),
    ("POST", "/api/sessions/{session_id}/score/"): Rule("editor", {"dataset": "{dataset_id}"}),
    ("POST", "/api/sessions/{session_id}/predict/"): Rule("viewer", {"rows": [{"sepal_length": 5.1}]}),
    ("GET", "/api/sessions/{session_id}/export/"): Rule("viewer"),
    ("GET", "/api/scoring/{job_id}/"): Rule("viewer"),
}

# Pages: the URL name → the role it needs (None: any logged-in user; "staff").
PAGE_RULES: dict[str, str | None] = {
    "home": None,
    "profile": None,
    "accounts": "staff",
    "project": "viewer",
    "project_members": "viewer",
    "project_variables": "viewer",
    "dataset": "viewer",
    "analysis": "viewer",
    "mltask": "viewer",
    "compare": "viewer",
    "session": "viewer",
}
NOT_PAGES = {"login", "logout", "openapi-json", "openapi-view", "api-root"}


@pytest.fixture
def world(project, users, dataset, clients) -> dict[str, Any]:
    """One project holding one object of every kind, and the path parameters naming them."""
    mltask_id = create_mltask(clients["owner"], project, dataset).json()["id"]
    mltask = MLTask.objects.get(pk=mltask_id)
    done = [
        Session.objects.create(mltask=mltask, design=mltask.design(), status=Status.SUCCEEDED)
        for _ in range(2)
    ]
    job = ScoringJob.objects.create(session=done[0], dataset=dataset, created_by=users["owner"])
    team = Group.objects.create(name="team")
    team.user_set.add(users["editor"])
    Membership.objects.create(project=project, group=team, role=Role.VIEWER)
    return {
        "project_id": project.pk,
        "dataset_id": dataset.pk,
        "analysis_id": mltask.analysis_id,
        "mltask_id": mltask.pk,
        "session_id": done[0].pk,
        "session_a": done[0].pk,
        "session_b": done[1].pk,
        "job_id": job.pk,
        "number": 1,
        "a": 1,
        "b": 1,
        "username": "editor",
        "name": "team",
        "token_id": ApiToken.issue(users["owner"]).pk,
        "query": {"compare": f"sessions={done[0].pk},{done[1].pk}"},
    }


def api_operations() -> list[tuple[str, str]]:
    schema = api.get_openapi_schema()
    return sorted((method.upper(), path) for path, ops in schema["paths"].items() for method in ops)


def fill(template: str, world: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(world[m.group(1)]), template)


def filled_body(body: Any, world: dict[str, Any]) -> Any:
    if isinstance(body, dict):
        return {key: filled_body(value, world) for key, value in body.items()}
    if isinstance(body, list):
        return [filled_body(value, world) for value in body]
    if isinstance(body, str) and re.fullmatch(r"\{\w+\}", body):
        return world[body[1:-1]]
    return body


def call(client: Client, method: str, path: str, body: Any):
    if method == "GET":
        return client.get(path)
    return client.generic(method, path, data=json.dumps(body), content_type="application/json")


def error_of(response) -> str:
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return ""


def test_every_api_operation_has_a_rule():
    unlisted = [op for op in api_operations() if op not in API_RULES]
    stale = [op for op in API_RULES if op not in api_operations()]
    assert not unlisted, f"routes without an authorization rule (add them to API_RULES): {unlisted}"
    assert not stale, f"rules for routes that no longer exist: {stale}"


def test_the_api_answers_each_role_as_its_rule_says(world, clients, users):
    users["stranger"].is_staff = False
    failures: list[str] = []
    anonymous = Client()
    for method, template in api_operations():
        rule = API_RULES[(method, template)]
        path, body = fill(template, world), filled_body(rule.body, world)
        if method == "GET" and template.endswith("/compare/"):
            path += "?" + world["query"]["compare"]

        def expect(
            who: str,
            response,
            allowed: set[int] | None = None,
            refused: int | None = None,
            method: str = method,
            template: str = template,
        ) -> None:
            if refused is not None and response.status_code != refused:
                failures.append(f"{who} {method} {template}: {response.status_code} (expected {refused})")
            if allowed is not None and (
                response.status_code in (401, 403)
                or (response.status_code == 404 and error_of(response) == ACCESS_NOT_FOUND)
                or response.status_code >= 500
            ):
                failures.append(f"{who} {method} {template}: {response.status_code} {error_of(response)!r}")

        if rule.need != "public":
            expect("anonymous", call(anonymous, method, path, body), refused=401)
        if rule.need in ROLES:
            expect("outsider", call(clients["stranger"], method, path, body), refused=404)
            for role in ROLES:
                if RANK[role] < RANK[rule.need]:
                    expect(role, call(clients[role], method, path, body), refused=403)
                elif method == "GET":
                    expect(role, call(clients[role], method, path, body), allowed=set())
        elif rule.need == "staff":
            expect("non-staff", call(clients["owner"], method, path, body), refused=403)
        elif rule.need == "self":
            expect("another user", call(clients["stranger"], method, path, body), refused=404)
        elif rule.need == "user" and method == "GET":
            expect("outsider", call(clients["stranger"], method, path, body), allowed=set())
    assert not failures, "\n".join(failures)


def page_routes() -> list[tuple[str, str]]:
    """(URL name, route) of every page, from the URL configuration."""

    def walk(patterns, prefix: str = ""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if str(pattern.pattern) in ("admin/", "api/"):
                    continue
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and pattern.name and pattern.name not in NOT_PAGES:
                yield pattern.name, prefix + str(pattern.pattern)

    return sorted(walk(get_resolver().url_patterns))


def test_every_page_has_a_rule():
    unlisted = [name for name, _ in page_routes() if name not in PAGE_RULES]
    assert not unlisted, f"pages without an authorization rule (add them to PAGE_RULES): {unlisted}"


def test_pages_answer_each_role_as_their_rule_says(world, users):
    failures: list[str] = []
    browsers = {name: Client() for name in ("owner", "editor", "viewer", "stranger")}
    for name, browser in browsers.items():
        browser.force_login(users[name])
    for name, route in page_routes():
        path = "/" + re.sub(r"<(?:int:)?(\w+)>", lambda m: str(world[m.group(1)]), route)
        if name == "compare":
            path += "?" + world["query"]["compare"]
        need = PAGE_RULES[name]
        anonymous = Client().get(path)
        if anonymous.status_code != 302 or "/accounts/login/" not in anonymous["Location"]:
            failures.append(f"anonymous {path}: {anonymous.status_code} (expected a redirect to log in)")
        for who, browser in browsers.items():
            status = browser.get(path).status_code
            role = who if who in ROLES else None
            if need == "staff":
                expected_ok = False  # nobody here is staff
            elif need is None:
                expected_ok = True
            else:
                expected_ok = role is not None and RANK[role] >= RANK[need]
            if expected_ok and status != 200:
                failures.append(f"{who} {path}: {status} (expected 200)")
            if not expected_ok and status not in (403, 404):
                failures.append(f"{who} {path}: {status} (expected to be refused)")
            if who == "stranger" and need in ROLES and status != 404:
                failures.append(f"outsider {path}: {status} (expected 404)")
    assert not failures, "\n".join(failures)


def test_the_websocket_lets_in_members_only(world, users):
    async def attempt(headers) -> bool:
        communicator = WebsocketCommunicator(
            application, f"/ws/sessions/{world['session_id']}/", headers=headers
        )
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    def token(name: str) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"Token {ApiToken.issue(users[name]).key}".encode())]

    outcome = {name: asyncio.run(attempt(token(name))) for name in ("owner", "editor", "viewer", "stranger")}
    outcome["anonymous"] = asyncio.run(attempt([]))
    assert outcome == {"owner": True, "editor": True, "viewer": True, "stranger": False, "anonymous": False}
