"""Shared fixtures: a project with an owner, an editor, a viewer, and a stranger outside it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.test import Client

from analyses.datasets import store_dataset
from analyses.models import ApiToken, Membership, Project, Role


@pytest.fixture(autouse=True)
def no_warm_runner(settings):
    """Sessions supervised inside a test start their own runner: a spare would outlive the test
    (the journey tests' servers keep one, as in production)."""
    settings.WARM_RUNNER = False


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def users(django_user_model):
    return {
        name: django_user_model.objects.create_user(name, f"{name}@example.com", "Passw0rd!-long")
        for name in ("owner", "editor", "viewer", "stranger")
    }


@pytest.fixture
def project(users):
    project = Project.objects.create(name="team", created_by=users["owner"])
    for name, role in (("owner", Role.OWNER), ("editor", Role.EDITOR), ("viewer", Role.VIEWER)):
        Membership.objects.create(project=project, user=users[name], role=role)
    return project


def api_client(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user).key}")


@pytest.fixture
def clients(users):
    return {name: api_client(user) for name, user in users.items()}


IRIS_CSV = (
    "sepal_length,sepal_width,species,note\n"
    "5.1,3.5,setosa,a\n4.9,3.0,setosa,b\n6.2,2.9,versicolor,\n5.9,3.0,virginica,c\n"
    "6.0,2.2,versicolor,a\n6.9,3.1,virginica,b\n5.0,3.4,setosa,a\n"
)


@pytest.fixture
def dataset(project, users, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "files"
    path: Path = tmp_path / "iris.csv"
    path.write_text(IRIS_CSV)
    return store_dataset(project, path, "iris.csv", "iris", users["owner"], path.stat().st_size)


def upload(client: Client, project_id: int, filename: str, content: bytes, name: str = ""):
    handle = io.BytesIO(content)
    handle.name = filename
    return client.post(f"/api/projects/{project_id}/datasets/", {"file": handle, "name": name})
