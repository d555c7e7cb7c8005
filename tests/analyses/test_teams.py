"""Teams through the JSON API and the team pages: groups as project members (the highest role
wins), a project always keeps an owner, owners delete projects with their files, API tokens, the
password change, staff-only accounts and groups, and who may read or edit the project variables."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError
from django.test import Client

from analyses.models import ApiToken, Dataset, Membership, MLTask, Project, Session
from tests.analyses.test_api import create_mltask
from tests.analyses.test_compare_api import make_session

pytestmark = pytest.mark.django_db


def post(client: Client, url: str, body: dict):
    return client.post(url, json.dumps(body), content_type="application/json")


def put(client: Client, url: str, body: dict):
    return client.put(url, json.dumps(body), content_type="application/json")


def role_seen_by(client: Client, project: Project) -> str | None:
    """The role the user's project list gives for ``project`` (None when it is not listed)."""
    listed = {p["id"]: p["role"] for p in client.get("/api/projects/").json()}
    return listed.get(project.pk)


@pytest.fixture
def team(users) -> Group:
    """Group "data-team" holding the stranger, who is not a member of the project on their own."""
    group = Group.objects.create(name="data-team")
    group.user_set.add(users["stranger"])
    return group


def test_a_group_gives_its_users_its_role_and_the_highest_role_wins(project, dataset, clients, users, team):
    members = f"/api/projects/{project.pk}/members/"
    assert clients["stranger"].get(f"/api/datasets/{dataset.pk}/").status_code == 404

    added = post(clients["owner"], members, {"group": "data-team", "role": "viewer"})
    assert added.status_code == 201 and added.json() == {"group": "data-team", "role": "viewer"}
    assert clients["stranger"].get(f"/api/datasets/{dataset.pk}/").status_code == 200
    assert role_seen_by(clients["stranger"], project) == "viewer"
    # A viewer reads but does not edit.
    analysis = {"name": "mine", "dataset": dataset.pk}
    assert post(clients["stranger"], f"/api/projects/{project.pk}/analyses/", analysis).status_code == 403

    # Own editor role above the group's viewer role: editor.
    assert post(clients["owner"], members, {"username": "stranger", "role": "editor"}).status_code == 201
    assert role_seen_by(clients["stranger"], project) == "editor"
    # The group made owner: owner, though their own role is still editor.
    assert post(clients["owner"], members, {"group": "data-team", "role": "owner"}).status_code == 201
    assert role_seen_by(clients["stranger"], project) == "owner"
    assert put(clients["stranger"], f"/api/projects/{project.pk}/variables/", {"a": 1}).status_code == 200

    listed = clients["viewer"].get(members).json()
    assert listed["groups"] == [{"name": "data-team", "role": "owner", "members": ["stranger"]}]
    assert {"username": "stranger", "role": "editor"} in listed["users"]
    assert clients["viewer"].get(f"/api/projects/{project.pk}/").json()["groups"] == listed["groups"]

    # The home page lists the project reached through the group once, with the highest role.
    stranger = Client()
    stranger.force_login(users["stranger"])
    home = stranger.get("/").content.decode()
    assert home.count(f'data-project-id="{project.pk}"') == 1 and "role-owner" in home


def test_removing_the_group_or_leaving_it_removes_access(project, dataset, clients, users, team):
    members = f"/api/projects/{project.pk}/members/"
    mltask = MLTask.objects.get(pk=create_mltask(clients["owner"], project, dataset).json()["id"])
    post(clients["owner"], members, {"group": "data-team", "role": "editor"})
    assert clients["stranger"].get(f"/api/mltasks/{mltask.pk}/").status_code == 200

    assert clients["editor"].delete(f"{members}groups/data-team/").status_code == 403
    assert clients["owner"].delete(f"{members}groups/data-team/").json() == {"removed": "data-team"}
    for url in (f"/api/projects/{project.pk}/", f"/api/mltasks/{mltask.pk}/", members):
        assert clients["stranger"].get(url).status_code == 404
    assert role_seen_by(clients["stranger"], project) is None
    assert clients["owner"].delete(f"{members}groups/data-team/").status_code == 404

    # Back in as a group, then taken out of the group by staff: out of the project too.
    post(clients["owner"], members, {"group": "data-team", "role": "editor"})
    users["owner"].is_staff = True
    users["owner"].save()
    assert clients["owner"].delete("/api/groups/data-team/members/stranger/").status_code == 200
    assert clients["stranger"].get(f"/api/mltasks/{mltask.pk}/").status_code == 404


def test_a_project_always_keeps_an_owner(project, clients, users, team):
    members = f"/api/projects/{project.pk}/members/"
    demote = post(clients["owner"], members, {"username": "owner", "role": "editor"})
    assert demote.status_code == 409 and "no owner left" in demote.json()["error"]
    assert clients["owner"].delete(f"{members}owner/").status_code == 409
    # An empty owner group owns nothing: still refused.
    Group.objects.create(name="nobody")
    post(clients["owner"], members, {"group": "nobody", "role": "owner"})
    assert clients["owner"].delete(f"{members}owner/").status_code == 409
    assert Membership.objects.get(project=project, user=users["owner"]).role == "owner"

    # With a group owning it that has a user, the last direct owner may step down...
    assert post(clients["owner"], members, {"group": "data-team", "role": "owner"}).status_code == 201
    assert post(clients["owner"], members, {"username": "owner", "role": "viewer"}).status_code == 201
    # ...and then the group's last user cannot leave it, nor the group be removed or demoted.
    users["viewer"].is_staff = True
    users["viewer"].save()
    assert clients["viewer"].delete("/api/groups/data-team/members/stranger/").status_code == 409
    assert clients["viewer"].delete("/api/groups/data-team/").status_code == 409
    assert clients["stranger"].delete(f"{members}groups/data-team/").status_code == 409
    assert post(clients["stranger"], members, {"group": "data-team", "role": "editor"}).status_code == 409
    assert list(team.user_set.values_list("username", flat=True)) == ["stranger"]


def test_one_membership_names_a_user_or_a_group_never_both(project, users, team):
    with pytest.raises(IntegrityError):
        Membership.objects.create(project=project, user=users["stranger"], group=team, role="viewer")


def test_naming_both_or_neither_or_an_unknown_group_is_refused(project, clients):
    members = f"/api/projects/{project.pk}/members/"
    both = post(clients["owner"], members, {"username": "stranger", "group": "x", "role": "viewer"})
    assert both.status_code == 400
    assert post(clients["owner"], members, {"role": "viewer"}).status_code == 400
    unknown = post(clients["owner"], members, {"group": "ghosts", "role": "viewer"})
    assert unknown.status_code == 404 and "No group named 'ghosts'" in unknown.json()["error"]


def test_owners_delete_a_project_with_its_files(project, dataset, clients, users, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    mltask = MLTask.objects.get(pk=create_mltask(clients["owner"], project, dataset).json()["id"])
    session = make_session(mltask, users["owner"], seconds=3)
    workdir = Path(settings.DATA_DIR) / "sessions" / str(session.pk)
    (workdir / "output").mkdir(parents=True)
    (workdir / "output" / "model.keras").write_bytes(b"model")
    images = Path(settings.MEDIA_ROOT) / "datasets" / "images-1"
    images.mkdir(parents=True)
    (images / "a.png").write_bytes(b"png")
    Dataset.objects.filter(pk=dataset.pk).update(images_dir="datasets/images-1")
    dataset_file = Path(dataset.file.path)
    other = Project.objects.create(name="other")
    assert dataset_file.is_file()

    assert clients["stranger"].delete(f"/api/projects/{project.pk}/").status_code == 404
    assert clients["editor"].delete(f"/api/projects/{project.pk}/").status_code == 403
    running = make_session(mltask, users["owner"], status="running")
    busy = clients["owner"].delete(f"/api/projects/{project.pk}/")
    assert busy.status_code == 409 and "abort them" in busy.json()["error"]
    Session.objects.filter(pk=running.pk).update(status="aborted")

    assert clients["owner"].delete(f"/api/projects/{project.pk}/").status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Session.objects.filter(pk=session.pk).exists()
    assert not dataset_file.exists() and not images.exists() and not workdir.exists()
    assert Project.objects.filter(pk=other.pk).exists()
    assert clients["owner"].get(f"/api/projects/{project.pk}/").status_code == 404


def test_tokens_are_listed_by_prefix_used_and_revoked(users, clients):
    me = clients["editor"]
    before = {t["id"] for t in me.get("/api/tokens/").json()}  # the fixture's own token
    created = post(me, "/api/tokens/", {"name": "nightly script"})
    assert created.status_code == 201
    body = created.json()
    key = body["token"]
    assert body["name"] == "nightly script" and body["prefix"] == key[:8] and body["last_used_at"] is None

    listed = [t for t in me.get("/api/tokens/").json() if t["id"] not in before]
    assert listed == [{k: v for k, v in body.items() if k != "token"}]
    assert key not in json.dumps(me.get("/api/tokens/").json())  # the key is shown once only

    script = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert script.get("/api/projects/").status_code == 200
    used = ApiToken.objects.get(pk=body["id"]).last_used_at
    assert used is not None
    script.get("/api/projects/")  # within the minute: no new write
    assert ApiToken.objects.get(pk=body["id"]).last_used_at == used
    ApiToken.objects.filter(pk=body["id"]).update(last_used_at=used - timedelta(minutes=2))
    script.get("/api/projects/")
    assert ApiToken.objects.get(pk=body["id"]).last_used_at > used - timedelta(seconds=1)

    # Someone else's token: 404, and it keeps working.
    assert clients["viewer"].delete(f"/api/tokens/{body['id']}/").status_code == 404
    assert script.get("/api/projects/").status_code == 200
    assert me.delete(f"/api/tokens/{body['id']}/").status_code == 204
    revoked = script.get("/api/projects/")
    assert revoked.status_code == 401
    assert me.delete(f"/api/tokens/{body['id']}/").status_code == 404


def test_changing_my_password_needs_the_old_one(users):
    browser = Client()
    assert browser.login(username="viewer", password="Passw0rd!-long")
    page = browser.get("/accounts/profile/")
    assert page.status_code == 200 and b'id="password-form"' in page.content

    new = "a-New-passw0rd-2"
    wrong = browser.post(
        "/accounts/profile/", {"old_password": "nope", "new_password1": new, "new_password2": new}
    )
    assert wrong.status_code == 400 and b'id="old-password-error"' in wrong.content
    assert Client().login(username="viewer", password="Passw0rd!-long")

    done = browser.post(
        "/accounts/profile/", {"old_password": "Passw0rd!-long", "new_password1": new, "new_password2": new}
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/profile/"
    assert b"Your password was changed." in browser.get("/accounts/profile/").content  # still logged in
    assert Client().login(username="viewer", password=new)
    assert not Client().login(username="viewer", password="Passw0rd!-long")


def test_only_staff_manage_accounts_and_groups(users, clients):
    assert post(clients["owner"], "/api/groups/", {"name": "ml"}).status_code == 403
    owner_browser = Client()
    owner_browser.force_login(users["owner"])
    assert owner_browser.get("/accounts/").status_code == 403
    assert b'id="nav-accounts"' not in owner_browser.get("/accounts/profile/").content

    users["owner"].is_staff = True
    users["owner"].save()
    staff = clients["owner"]
    assert post(staff, "/api/groups/", {"name": "ml"}).status_code == 201
    assert post(staff, "/api/groups/", {"name": "ml"}).status_code == 409
    assert post(staff, "/api/groups/", {"name": "a/b"}).status_code == 400
    assert post(clients["editor"], "/api/groups/ml/members/", {"username": "viewer"}).status_code == 403
    assert post(staff, "/api/groups/ml/members/", {"username": "viewer"}).status_code == 201
    assert post(staff, "/api/groups/ml/members/", {"username": "ghost"}).status_code == 404
    assert clients["editor"].get("/api/groups/").json() == [
        {"id": Group.objects.get(name="ml").pk, "name": "ml", "members": ["viewer"]}
    ]
    created = post(staff, "/api/users/", {"username": "newcomer", "password": "a-Long-passw0rd"})
    assert created.status_code == 201

    accounts = owner_browser.get("/accounts/")
    assert accounts.status_code == 200
    assert b'data-username="newcomer"' in accounts.content and b'id="nav-accounts"' in accounts.content
    assert clients["editor"].delete("/api/groups/ml/").status_code == 403
    assert staff.delete("/api/groups/ml/").status_code == 204
    assert not Group.objects.filter(name="ml").exists()


def test_owners_edit_the_variables_others_read_them(project, clients, users):
    url = f"/api/projects/{project.pk}/variables/"
    assert put(clients["owner"], url, {"learning_rate": 0.01, "layers": [64, 32]}).status_code == 200
    for name in ("editor", "viewer"):
        assert put(clients[name], url, {"learning_rate": 1}).status_code == 403
        assert clients[name].get(url).json() == {"learning_rate": 0.01, "layers": [64, 32]}
    assert clients["stranger"].get(url).status_code == 404
    reserved = put(clients["owner"], url, {"DKU_MODEL_METRIC": "x"})
    assert reserved.status_code == 400 and "set by the platform" in reserved.json()["error"]
    assert put(clients["owner"], url, {" lr": 1}).status_code == 400
    assert clients["owner"].put(url, "[1, 2]", content_type="application/json").status_code == 422
    assert Project.objects.get(pk=project.pk).variables == {"learning_rate": 0.01, "layers": [64, 32]}


def test_team_pages_show_owners_the_forms_and_outsiders_nothing(project, users):
    pages = {"members": b'id="add-group"', "variables": b'id="variables-form"'}
    for name in ("owner", "editor", "viewer", "stranger"):
        browser = Client()
        browser.force_login(users[name])
        for page, owner_form in pages.items():
            response = browser.get(f"/projects/{project.pk}/{page}/")
            if name == "stranger":
                assert response.status_code == 404
                continue
            assert response.status_code == 200
            assert (owner_form in response.content) == (name == "owner"), (name, page)
        project_page = browser.get(f"/projects/{project.pk}/")
        if name != "stranger":
            assert (b'id="delete-project-form"' in project_page.content) == (name == "owner")
    assert Client().get(f"/projects/{project.pk}/members/").status_code == 302  # to the login page


def test_a_group_members_session_may_load_the_projects_trained_models(
    project, dataset, clients, users, team, settings, tmp_path
):
    """get_keras_model_from_trained_model offers the models of projects reached through a group."""
    from training_worker.trained_models import link_trained_models

    settings.DATA_DIR = tmp_path / "data"
    mltask = MLTask.objects.get(pk=create_mltask(clients["owner"], project, dataset).json()["id"])
    session = make_session(mltask, users["owner"], seconds=3)
    model = Path(settings.DATA_DIR) / "sessions" / str(session.pk) / "output" / "model.keras"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"model")
    relative = str(model.relative_to(settings.DATA_DIR))
    Session.objects.filter(pk=session.pk).update(artifacts={"model": relative})
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert link_trained_models(users["stranger"], workdir) == []
    Membership.objects.create(project=project, group=team, role="viewer")
    offered = link_trained_models(users["stranger"], workdir)
    assert [entry["session_id"] for entry in offered] == [session.pk]
    assert (workdir / offered[0]["path"]).read_bytes() == b"model"


@pytest.mark.django_db(transaction=True)
def test_a_group_viewer_watches_live_sessions_until_the_group_leaves(project, dataset, clients, users, team):
    from channels.testing import WebsocketCommunicator

    from webapp.asgi import application

    mltask = MLTask.objects.get(pk=create_mltask(clients["owner"], project, dataset).json()["id"])
    session = make_session(mltask, users["owner"], status="running", seconds=3)
    token = ApiToken.issue(users["stranger"])
    headers = [(b"authorization", f"Token {token.key}".encode())]

    async def watch() -> bool:
        communicator = WebsocketCommunicator(application, f"/ws/sessions/{session.pk}/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        if connected:
            snapshot = await communicator.receive_json_from(timeout=5)
            assert snapshot["type"] == "snapshot" and snapshot["id"] == session.pk
        await communicator.disconnect()
        return connected

    assert not asyncio.run(watch())
    membership = Membership.objects.create(project=project, group=team, role="viewer")
    assert asyncio.run(watch())
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None  # the websocket notes its use
    membership.delete()
    assert not asyncio.run(watch())
