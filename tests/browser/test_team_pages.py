"""Teams in a real Chromium: the owner adds a whole group as editor on the Members page, a user of
that group then sees the project as an editor, and creates and revokes an API token on their
Profile page (the key shown once, then refused once revoked)."""

from __future__ import annotations

import requests

from tests.browser.conftest import ARTIFACTS, log_in
from tests.live import PASSWORD, Client


def test_a_group_added_as_editor_reaches_the_project_and_its_user_manages_tokens(studio, page):
    admin = Client(studio.base)
    project = admin.call("POST", "/api/projects/", json={"name": "churn team"})["id"]
    admin.call("POST", "/api/users/", json={"username": "dana", "password": PASSWORD})
    admin.call("POST", "/api/groups/", json={"name": "analysts"})
    admin.call("POST", "/api/groups/analysts/members/", json={"username": "dana"})

    # The owner (the admin) adds the group on the Members page.
    log_in(page, studio, f"/projects/{project}/members/")
    page.fill("#new-group", "analysts")
    page.select_option("#new-group-role", "editor")
    page.click("#add-group-button")
    page.wait_for_selector("#message.message-ok")
    assert page.locator("#message").inner_text() == "Group analysts is now editor."
    row = page.locator('#member-groups tr[data-group="analysts"]')
    assert row.locator("td").nth(1).inner_text() == "dana"
    assert row.locator("select").input_value() == "editor"
    page.screenshot(path=str(ARTIFACTS / "browser-members-group.png"), full_page=True)

    # dana, in the group, now finds the project on the home page, as an editor.
    page.click("#logout")
    log_in(page, studio, "/", username="dana")
    listed = page.locator(f'#projects tr[data-project-id="{project}"]')
    assert listed.locator(".role").inner_text() == "editor"

    # Her Profile page: a token, shown once, works for scripts until she revokes it.
    page.click("#nav-profile")
    page.wait_for_url(f"{studio.base}/accounts/profile/")
    page.fill("#token-name", "laptop")
    page.click("#create-token")
    page.wait_for_selector("#new-token-shown:not([hidden])")
    key = page.locator("#new-token-key").inner_text().strip()
    assert len(key) == 40
    token_row = page.locator("#tokens tbody tr")
    assert token_row.count() == 1
    assert token_row.locator("td").nth(1).inner_text() == f"{key[:8]}…"
    script = {"Authorization": f"Token {key}"}
    seen = requests.get(f"{studio.base}/api/projects/", headers=script, timeout=30)
    assert seen.status_code == 200 and [p["id"] for p in seen.json()] == [project]

    page.once("dialog", lambda dialog: dialog.accept())
    page.click('button[aria-label="Revoke token laptop"]')
    page.wait_for_selector("#no-tokens:not([hidden])")
    assert page.locator("#message").inner_text() == "Token laptop revoked."
    assert requests.get(f"{studio.base}/api/projects/", headers=script, timeout=30).status_code == 401
    page.screenshot(path=str(ARTIFACTS / "browser-profile-tokens.png"), full_page=True)
