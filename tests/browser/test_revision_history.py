"""Two teammates editing one ML task in a real Chromium: the page of the one who did not save warns
that the other saved (with a diff), its stale save gets the conflict banner with who saved and the
line-coloured diff, and the History section diffs two revisions and restores an old one."""

from __future__ import annotations

import re

from tests.browser.conftest import ARTIFACTS, log_in
from tests.conftest import IRIS_CSV
from tests.live import PASSWORD, Client

TEAMMATE = "teammate"


def text(page, selector: str) -> str:
    return " ".join(page.locator(selector).text_content().split())


def wait_for_message(page, prefix: str) -> str:
    page.wait_for_function(
        "(prefix) => document.querySelector('#message').textContent.startsWith(prefix)", arg=prefix
    )
    return text(page, "#message")


def test_teammates_see_each_others_saves_the_conflict_diff_and_restore_from_history(studio, page):
    admin = Client(studio.base)
    project = admin.call("POST", "/api/projects/", json={"name": "revisions"})["id"]
    admin.call("POST", "/api/users/", json={"username": TEAMMATE, "password": PASSWORD})
    admin.call("POST", f"/api/projects/{project}/members/", json={"username": TEAMMATE, "role": "editor"})
    dataset = admin.upload(project, "iris.csv", IRIS_CSV.encode(), name="iris")
    mltask = admin.mltask(project, dataset["id"], "species")
    original = mltask["architecture_code"]
    path = f"/projects/{project}/mltasks/{mltask['id']}/"
    errors: list[str] = []

    mine = page  # the admin
    mine.on("pageerror", lambda error: errors.append(str(error)))
    log_in(mine, studio, path)
    theirs = mine.context.browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    theirs.set_default_timeout(30_000)
    theirs.on("pageerror", lambda error: errors.append(str(error)))
    log_in(theirs, studio, path, username=TEAMMATE)

    # The history starts with the creation.
    mine.locator("#history-table tbody tr").first.wait_for()
    assert mine.locator("#history-table tbody tr").count() == 1
    assert "Created" in text(mine, "#history-table tbody tr")

    # I start an edit; my teammate saves a code change with a message meanwhile.
    mine.fill("#epochs", "7")
    assert mine.locator("#dirty").is_visible()
    theirs.locator("#architecture-editor .cm-content").fill(original + "\n# teammate's idea\n")
    theirs.fill("#save-message", "add a note")
    theirs.click("#save")
    assert wait_for_message(theirs, "Saved") == "Saved — version 2."
    assert theirs.input_value("#save-message") == ""

    # My page warns (its check runs every ~10 s while visible, and at once when it gets focus).
    mine.evaluate("window.dispatchEvent(new Event('focus'))")
    warning = mine.locator("#teammate-saved")
    warning.wait_for(state="visible")
    assert re.fullmatch(
        r"teammate saved version 2 at \d\d:\d\d — “add a note”\. Your unsaved edits are still here\.",
        text(mine, "#teammate-saved-text"),
    ), text(mine, "#teammate-saved-text")
    assert mine.input_value("#epochs") == "7"  # nothing of mine was touched
    mine.click("#teammate-compare")
    added = mine.locator("#teammate-diff .diff-add")
    added.first.wait_for()
    assert "+# teammate's idea" in [" ".join(line.split()) for line in added.all_inner_texts()]
    mine.screenshot(path=str(ARTIFACTS / "browser-revisions-teammate-saved.png"), full_page=False)

    # I save anyway: refused, with who saved, when, and the diff from my version to theirs.
    mine.click("#save")
    wait_for_message(mine, "This ML task was saved by teammate since you opened it")
    assert mine.locator("#conflict").is_visible()
    who = text(mine, "#conflict-who")
    assert re.match(r"teammate saved version 2 at \d\d:\d\d\. What changed since your version 1:", who), who
    conflict_added = mine.locator("#conflict-diff .diff-add").all_inner_texts()
    assert any("# teammate's idea" in line for line in conflict_added), conflict_added
    assert mine.locator("#teammate-saved").is_hidden()  # the banner says it all now
    mine.screenshot(path=str(ARTIFACTS / "browser-revisions-conflict.png"), full_page=False)
    assert mine.input_value("#epochs") == "7"
    assert admin.call("GET", f"/api/mltasks/{mltask['id']}/")["training"]["epochs"] == 10

    # Take theirs, then make my change on top of it: version 3.
    mine.click("#take-theirs")
    assert mine.locator("#conflict").is_hidden() and mine.input_value("#epochs") == "10"
    mine.fill("#epochs", "7")
    mine.click("#save")
    assert wait_for_message(mine, "Saved") == "Saved — version 3."
    rows = mine.locator("#history-table tbody tr")
    mine.wait_for_function("document.querySelectorAll('#history-table tbody tr').length === 3")
    assert [row.get_attribute("data-revision") for row in rows.all()] == ["3", "2", "1"]
    assert "teammate" in text(mine, "#history-table tr[data-revision='2']")
    assert "add a note" in text(mine, "#history-table tr[data-revision='2']")
    assert "training.epochs: 10 → 7" in text(mine, "#history-table tr[data-revision='3']")

    # Any two revisions diff.
    mine.check("#history-table tr[data-revision='1'] input[type=checkbox]")
    mine.check("#history-table tr[data-revision='3'] input[type=checkbox]")
    mine.click("#history-compare")
    mine.locator("#history-diff h3").wait_for()
    assert text(mine, "#history-diff h3") == "Revision 1 → revision 3"
    assert mine.locator("#history-diff tr[data-path='training.epochs']").is_visible()
    history_added = mine.locator("#history-diff .diff-add").all_inner_texts()
    assert any("# teammate's idea" in line for line in history_added), history_added

    # Restore revision 1 (after a confirm): a new revision 4 with the original design.
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    mine.once("dialog", accept)
    mine.click("#history-table tr[data-revision='1'] [data-restore]")
    mine.wait_for_function("document.querySelector('#history-message').textContent.startsWith('Restored')")
    assert dialogs and dialogs[0].startswith("Restore revision 1?")
    assert text(mine, "#history-message") == "Restored revision 1 as revision 4."
    assert mine.input_value("#epochs") == "10"
    assert "teammate's idea" not in mine.locator("#architecture-editor .cm-content").inner_text()
    assert text(mine, "#revision").startswith("version 4")
    mine.wait_for_function("document.querySelectorAll('#history-table tbody tr').length === 4")
    assert "Restored revision 1" in text(mine, "#history-table tr[data-revision='4']")
    saved = admin.call("GET", f"/api/mltasks/{mltask['id']}/")
    assert saved["version"] == 4 and saved["architecture_code"] == original
    mine.screenshot(path=str(ARTIFACTS / "browser-revisions-history.png"), full_page=True)

    # My teammate, who did not edit since, is told and reloads.
    theirs.evaluate("window.dispatchEvent(new Event('focus'))")
    theirs.locator("#teammate-saved").wait_for(state="visible")
    assert text(theirs, "#teammate-saved-text").endswith("This page shows an older version.")
    theirs.click("#teammate-reload")
    theirs.locator("#teammate-saved").wait_for(state="hidden")
    assert theirs.input_value("#epochs") == "10" and text(theirs, "#revision").startswith("version 4")
    theirs.context.close()

    # A session's page links to the revision it ran: the history opens on it, diffed with the current.
    mine.goto(f"{studio.base}{path}?revision=2#history")
    mine.locator("#history-diff h3").wait_for()
    assert text(mine, "#history-diff h3") == "Revision 2 → revision 4"
    assert mine.is_checked("#history-table tr[data-revision='2'] input[type=checkbox]")
    assert errors == []
