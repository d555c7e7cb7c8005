"""Production settings pass `manage.py check --deploy`; every page carries the security headers.

HTTPS=true is the production switch (webapp/settings.py): secure cookies, HTTPS redirect, HSTS.
Without it (`make run` on plain http://127.0.0.1) the deploy check reports exactly the four
HTTPS-only settings it leaves off, nothing else.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.live import PYTHON, REPO

pytestmark = pytest.mark.django_db

REPORT = """
import io, json
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
out = io.StringIO()
try:
    call_command("check", deploy=True, fail_level="WARNING", stdout=out, stderr=out)
    failed = False
except Exception as exc:
    out.write(str(exc))
    failed = True
names = ("DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
         "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
         "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE", "X_FRAME_OPTIONS", "SECURE_PROXY_SSL_HEADER")
print(json.dumps({"failed": failed, "output": out.getvalue(),
                  "settings": {n: getattr(settings, n) for n in names}}))
"""


def deploy_check(tmp_path: Path, **env: str) -> dict:
    environment = {
        key: value
        for key, value in os.environ.items()
        # DJANGO_ALLOW_ASYNC_UNSAFE: set by tests/run.sh for the browser tests, never in a deployment.
        if key not in ("DEBUG", "HTTPS", "SECRET_KEY", "DATA_DIR", "DJANGO_ALLOW_ASYNC_UNSAFE")
        and not key.startswith("HSTS_")
    }
    environment |= {
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        **env,
    }
    done = subprocess.run(
        [PYTHON, "-c", REPORT], cwd=REPO, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_production_settings(tmp_path) -> None:
    report = deploy_check(tmp_path, HTTPS="true")
    assert not report["failed"] and "no issues" in report["output"], report["output"]
    assert report["settings"] | {"SECURE_PROXY_SSL_HEADER": None} == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 365 * 24 * 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_PROXY_SSL_HEADER": None,  # uvicorn sets the scheme from trusted proxies only
    }


def test_plain_http_for_make_run_leaves_only_the_https_settings_off(tmp_path) -> None:
    report = deploy_check(tmp_path)
    assert report["failed"]
    found = set(re.findall(r"\(security\.(W\d+)\)", report["output"]))
    # HSTS, SSL redirect, secure session and CSRF cookies: exactly what HTTPS=true turns on.
    assert found == {"W004", "W008", "W012", "W016"}, report["output"]
    assert report["settings"]["DEBUG"] is False


def test_every_page_carries_the_security_headers(client, users) -> None:
    client.force_login(users["owner"])
    for path in ("/accounts/login/", "/", "/api/projects/", "/api/docs/", "/nowhere/"):
        response = client.get(path)
        policy = response.headers.get("Content-Security-Policy", "")
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives["script-src"] == "'self'", (path, policy)  # no inline scripts, no eval
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert directives["default-src"] == "'self'" and directives["base-uri"] == "'self'"
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Referrer-Policy"] == "same-origin", path
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin", path


def test_cookies_are_http_only_and_same_site(client, users) -> None:
    response = client.post("/accounts/login/", {"username": "owner", "password": "Passw0rd!-long"})
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["httponly"] and session["samesite"] == "Lax" and not session["secure"]
    assert response.cookies["csrftoken"]["samesite"] == "Lax"


def test_over_https_cookies_are_secure_hsts_is_sent_and_http_is_redirected(client, users, settings) -> None:
    """What HTTPS=true turns on (the values settings.py gives them, checked above)."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 365 * 24 * 3600
    plain = client.get("/accounts/login/")
    assert plain.status_code == 301 and plain.headers["Location"] == "https://testserver/accounts/login/"
    assert client.get("/api/health/").status_code == 200  # the container's health check stays on HTTP
    response = client.post(
        "/accounts/login/", {"username": "owner", "password": "Passw0rd!-long"}, secure=True
    )
    assert response.status_code == 302
    assert response.cookies["sessionid"]["secure"] and response.cookies["csrftoken"]["secure"]
    page = client.get("/", secure=True)
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_templates_hold_no_inline_script_or_event_handler() -> None:
    """The CSP forbids inline scripts: every <script> has a src (json_script blocks are data)."""
    for template in (REPO / "templates").rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, f"{template}: inline {tag}"
        handlers = re.findall(r"\son[a-z]+\s*=", text)
        assert not handlers, f"{template}: inline event handler {handlers}"
        assert "javascript:" not in text, template
