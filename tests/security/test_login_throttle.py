"""Login throttling (webapp.security): failed logins per username and address, and per address,
counted in the cache; past the limit the login page and POST /api/token/ answer 429, and even the
right password is refused until the window ends. The admin's login form is throttled too."""

from __future__ import annotations

import time
import uuid

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "Passw0rd!-long"  # tests/conftest.py's users


@pytest.fixture(autouse=True)
def own_cache(settings):
    """A cache of this test's own (CI may run with Redis: its counters must not leak between runs)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }
    settings.LOGIN_FAILURE_LIMIT = 10
    settings.LOGIN_FAILURE_IP_LIMIT = 100
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 900


def token(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        "/api/token/",
        {"username": username, "password": password},
        content_type="application/json",
        REMOTE_ADDR=address,
    )


def form_login(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password, "next": "/"}, REMOTE_ADDR=address
    )


def test_the_api_refuses_with_429_after_ten_failures_even_the_right_password(users) -> None:
    client = Client()
    for _ in range(10):
        assert token(client, "owner", "wrong").status_code == 401
    refused = token(client, "owner", PASSWORD)
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.json()["error"] and "15 minutes" in refused.json()["error"]
    assert refused.headers["Retry-After"] == "900"
    # Someone else from that address, and the same user from elsewhere, still log in.
    assert token(client, "editor", PASSWORD).status_code == 200
    assert token(client, "owner", PASSWORD, address="10.0.0.2").status_code == 200


def test_the_login_page_refuses_with_429_and_says_why(users) -> None:
    client = Client()
    for _ in range(10):
        failed = form_login(client, "owner", "wrong")
        assert failed.status_code == 200 and b"login-error" in failed.content
    refused = form_login(client, "OWNER ", PASSWORD)  # the same account, however it is spelled
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "900"
    assert b"Too many failed logins" in refused.content
    assert "_auth_user_id" not in client.session  # not logged in
    assert form_login(client, "owner", PASSWORD, address="10.0.0.9").status_code == 302


def test_failures_count_across_the_form_and_the_api(users) -> None:
    client = Client()
    for _ in range(5):
        form_login(client, "viewer", "wrong")
        token(client, "viewer", "wrong")
    assert token(client, "viewer", PASSWORD).status_code == 429
    assert form_login(client, "viewer", PASSWORD).status_code == 429


def test_a_success_forgets_the_failures(users) -> None:
    client = Client()
    for _ in range(9):
        token(client, "owner", "wrong")
    assert token(client, "owner", PASSWORD).status_code == 200
    for _ in range(9):
        token(client, "owner", "wrong")
    assert token(client, "owner", PASSWORD).status_code == 200


def test_one_address_trying_many_usernames_is_throttled(users, settings) -> None:
    settings.LOGIN_FAILURE_IP_LIMIT = 6
    client = Client()
    for index in range(6):
        assert token(client, f"nobody{index}", "wrong").status_code == 401
    assert token(client, "editor", PASSWORD).status_code == 429
    assert token(client, "editor", PASSWORD, address="10.0.0.3").status_code == 200


def test_the_admin_login_is_throttled_too(users) -> None:
    users["owner"].is_staff = True
    users["owner"].save()
    client = Client()
    for _ in range(10):
        token(client, "owner", "wrong")
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "owner", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1"
    )
    assert response.status_code == 200 and "_auth_user_id" not in client.session  # refused
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "owner", "password": PASSWORD}, REMOTE_ADDR="10.0.0.4"
    )
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(users["owner"].pk)


def test_the_window_ends(users, settings) -> None:
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 1
    settings.LOGIN_FAILURE_LIMIT = 2
    client = Client()
    token(client, "owner", "wrong")
    token(client, "owner", "wrong")
    refused = token(client, "owner", PASSWORD)
    assert refused.status_code == 429 and "1 minute " in refused.json()["error"]
    time.sleep(1.2)
    assert token(client, "owner", PASSWORD).status_code == 200


def test_an_unreachable_cache_lets_logins_through(users, settings) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    client = Client()
    assert token(client, "owner", "wrong").status_code == 401
    assert token(client, "owner", PASSWORD).status_code == 200
