from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.live import REPO, embedded_studio

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def studio(tmp_path_factory):
    """One studio for every browser test (each starts ~15 s of processes): tests make their own
    projects and leave no session running."""
    with embedded_studio(tmp_path_factory.mktemp("browser-data")) as running:
        yield running


@pytest.fixture
def page():
    """A real Chromium (Debian's), driven by Playwright; never a downloaded browser."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        # bypass_csp: Playwright's wait_for_function evaluates strings, which the Content-Security-
        # Policy forbids (no 'unsafe-eval'); test_escaping.py checks the pages with the policy on.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        context.close()
        browser.close()


def log_in(page, studio, next_path: str, username: str | None = None) -> None:
    """Sign in through the login form (the admin by default) and land on ``next_path``."""
    from tests.live import ADMIN, PASSWORD

    page.goto(f"{studio.base}/accounts/login/?next={next_path}")
    page.fill("#id_username", username or ADMIN)
    page.fill("#id_password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"{studio.base}{next_path}")
