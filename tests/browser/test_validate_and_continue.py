"""Validate and Continue training in a real Chromium: the design page's dry run (the inputs panel
and model summary, or a marker on the line that fails and Train's refusal of that version), and
the session page's "Continue training…" (its refusals shown inline, a real continue opening the
new session)."""

from __future__ import annotations

import re

from tests.browser.conftest import ARTIFACTS, log_in
from tests.browser.test_training_tab import cancer_mltask, epoch_rows, make_sessions
from tests.live import ADMIN, PASSWORD

# A dry run spawns the runner in the sandbox; TensorFlow's import alone takes ~10 s cold.
VALIDATE_TIMEOUT_MS = 120_000


def text(page, selector: str) -> str:
    """What a user reads there, whitespace collapsed."""
    return " ".join(page.locator(selector).text_content().split())


def wait_for_verdict(page) -> str:
    page.wait_for_function(
        "(() => { const t = document.querySelector('#validation-title');"
        " return !document.querySelector('#validation-result').hidden && /^[✓✗]/.test(t.textContent); })()",
        timeout=VALIDATE_TIMEOUT_MS,
    )
    return text(page, "#validation-title")


def test_validate_shows_the_inputs_or_marks_the_failing_line_and_train_refuses_it(studio, page):
    client, project, mltask = cancer_mltask(studio, "validate")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    path = f"/projects/{project}/mltasks/{mltask['id']}/"
    log_in(page, studio, path)
    assert page.locator("#validation").is_hidden()  # never validated: nothing to show

    # A good design: the spinner while the runner builds and compiles, then the inputs panel.
    page.click("#validate")
    running = page.locator("#validation-running")
    running.wait_for(state="visible")
    assert "Validating… (building and compiling your model on the first rows)" in running.inner_text()
    assert page.locator("#validate").is_disabled()
    page.screenshot(path=str(ARTIFACTS / "browser-validate-running.png"), full_page=False)
    title = wait_for_verdict(page)
    assert running.is_hidden() and page.locator("#validate").is_enabled()
    assert re.fullmatch(r"✓ Valid — input main \(30,\), n_classes 2, [\d,]+ parameters", title), title
    params = client.call("GET", f"/api/mltasks/{mltask['id']}/")["validation"]["params"]
    assert f"{params:,} parameters" in title
    assert "validation-ok" in page.get_attribute("#validation", "class")
    summary = page.locator("#validation-summary")
    assert summary.is_visible() and summary.get_attribute("open") is not None
    assert "Total params" in page.locator("#validation-summary-text").inner_text()
    assert text(page, "#validation-meta").startswith(f"Version {mltask['version']}, checked on the first")
    page.screenshot(path=str(ARTIFACTS / "browser-validate-ok.png"), full_page=False)
    # The model summary folds away.
    page.click("#validation-summary summary")
    assert page.locator("#validation-summary-text").is_hidden()

    # The verdict is kept with the version: a reload shows it (no summary is stored).
    page.reload()
    assert re.fullmatch(r"✓ Valid — input main \(30,\), [\d,]+ parameters", text(page, "#validation-title"))
    assert "checked just now" in text(page, "#validation-meta")
    assert page.locator("#validation-summary").is_hidden()

    # A NameError on line 9, typed and not saved: Validate saves it first, then marks the line.
    code = client.call("GET", f"/api/mltasks/{mltask['id']}/")["architecture_code"]
    broken = code.replace("Dropout(0.2)", "Dropout(dropout_rate)", 1)
    line = next(n for n, row in enumerate(broken.splitlines(), 1) if "dropout_rate" in row)
    page.locator("#architecture-editor .cm-content").fill(broken)
    assert page.locator("#dirty").is_visible()
    page.click("#validate")
    title = wait_for_verdict(page)
    assert page.locator("#dirty").is_hidden()
    saved = client.call("GET", f"/api/mltasks/{mltask['id']}/")
    assert saved["architecture_code"] == broken and saved["version"] > mltask["version"]
    assert title == "✗ Not valid — build_model failed"
    item = page.locator("#validation-errors li")
    assert item.count() == 1
    assert item.get_attribute("data-tab") == "architecture" and item.get_attribute("data-line") == str(line)
    assert text(page, "#validation-errors li").startswith(f"Architecture code, line {line} (build_model): ")
    assert "dropout_rate" in text(page, "#validation-errors li")
    assert "Train refuses this version" in text(page, "#validation-meta")
    # The red marker sits on that very line of the Architecture editor.
    page.locator("#architecture-editor .cm-lint-marker-error").wait_for()
    marked = page.locator("#architecture-editor .cm-lintRange-error").inner_text()
    assert marked.strip() == broken.splitlines()[line - 1].strip()
    item.get_by_role("button", name=f"Show line {line}").click()
    assert page.locator("#architecture-editor .cm-lintRange-error").is_visible()
    page.screenshot(path=str(ARTIFACTS / "browser-validate-error-line.png"), full_page=False)

    # Train refuses the version that failed, and says why, right under the button.
    page.evaluate("window.scrollTo(0, 0)")
    page.click("#train")
    page.wait_for_function("document.querySelector('#message').textContent.includes('failed validation')")
    message = text(page, "#message")
    assert (
        message.startswith("This design failed validation, so it cannot train:") and "dropout_rate" in message
    )
    assert page.get_attribute("#message", "role") == "alert"
    assert re.search(r"/mltasks/\d+/$", page.url)  # no session page: nothing was started
    assert client.call("GET", f"/api/mltasks/{mltask['id']}/sessions/") == []
    page.screenshot(path=str(ARTIFACTS / "browser-validate-train-refused.png"), full_page=False)

    # An edit drops the marker; the save makes the verdict stale (Train would be allowed again).
    page.locator("#architecture-editor .cm-content").fill(code)
    assert page.locator("#architecture-editor .cm-lint-marker-error").count() == 0
    page.click("#save")
    page.wait_for_function("document.querySelector('#message').textContent.startsWith('Saved')")
    assert "validation-stale" in page.get_attribute("#validation", "class")
    assert "Validate again" in text(page, "#validation-meta")
    assert errors == []


def test_a_viewer_sees_the_verdict_but_no_validate_button(studio, page):
    client, project, mltask = cancer_mltask(studio, "validate viewer")
    code = mltask["architecture_code"].replace("Dropout(0.2)", "Dropout(dropout_rate)", 1)
    mltask = client.patch(mltask["id"], architecture_code=code)
    verdict = client.call("POST", f"/api/mltasks/{mltask['id']}/validate/")
    assert verdict["ok"] is False
    client.call("POST", "/api/users/", json={"username": "validate-viewer", "password": PASSWORD})
    client.call(
        "POST", f"/api/projects/{project}/members/", json={"username": "validate-viewer", "role": "viewer"}
    )
    path = f"/projects/{project}/mltasks/{mltask['id']}/"
    page.goto(f"{studio.base}/accounts/login/?next={path}")
    page.fill("#id_username", "validate-viewer")
    page.fill("#id_password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"{studio.base}{path}")
    assert page.locator("#validate").count() == 0 and page.locator("#train").count() == 0
    assert text(page, "#validation-title") == "✗ Not valid — build_model failed"
    assert "dropout_rate" in text(page, "#validation-errors")
    page.locator("#architecture-editor .cm-lint-marker-error").wait_for()


def test_continue_training_is_offered_where_it_can_work_and_its_refusal_is_shown(studio, page):
    client, project, mltask = cancer_mltask(studio, "continue refused")
    no_model, advanced, failed = make_sessions(
        studio,
        mltask["id"],
        [
            # Interrupted after 3 epochs, but no model was saved: the server refuses to continue it.
            {"status": "interrupted", "epochs_total": 20, "epochs_done": 3, "epochs": epoch_rows(3, best=2)},
            {
                "status": "interrupted",
                "epochs_total": 10,
                "epochs_done": 2,
                "epochs": epoch_rows(2, best=2),
                "training": {"mode": "advanced"},
            },
            {"status": "failed", "epochs_total": 10, "epochs_done": 0, "epochs": []},
        ],
    )
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, studio, f"/projects/{project}/sessions/{no_model}/")
    button = page.locator("#continue")
    button.wait_for(state="visible")
    assert button.inner_text() == "Continue training…"
    assert page.locator("#continue-form").is_hidden()
    button.click()
    assert page.locator("#continue-form").is_visible() and button.get_attribute("aria-expanded") == "true"
    assert page.input_value("#continue-epochs") == "13"  # 3 done + 10
    assert text(page, "#continue-note").startswith("3 done")
    # Not a number: said inline, nothing sent.
    page.fill("#continue-epochs", "")
    page.click("#continue-start")
    assert text(page, "#continue-message") == "Enter the number of epochs in all, a whole number."
    # The server's refusal (no model to go on from), inline, and the page stays.
    page.fill("#continue-epochs", "13")
    page.click("#continue-start")
    page.wait_for_function("document.querySelector('#continue-message').textContent.includes('saved model')")
    message = text(page, "#continue-message")
    assert message == (
        f"Session {no_model} is interrupted: only an interrupted or finished session with a saved model "
        "can be continued."
    ), message
    assert "message-error" in page.get_attribute("#continue-message", "class")
    assert page.url.endswith(f"/sessions/{no_model}/")
    page.screenshot(path=str(ARTIFACTS / "browser-continue-refused.png"), full_page=False)
    page.click("#continue-cancel")
    assert page.locator("#continue-form").is_hidden()

    # Advanced mode (fit_model decides the epochs) and a failed session: no button at all.
    for session in (advanced, failed):
        page.goto(f"{studio.base}/projects/{project}/sessions/{session}/")
        page.locator("#status").wait_for()
        page.wait_for_function("document.querySelector('#connection-text').textContent !== 'connecting…'")
        assert page.locator("#continue").is_hidden(), session
    assert errors == []


def test_continue_an_interrupted_run_opens_the_new_session(studio, page):
    """Real training: 300 epochs planned, interrupted after two, continued to two more."""
    client, project, mltask = cancer_mltask(studio, "continue real")
    client.patch(mltask["id"], training={"epochs": 300, "batch_size": 32})
    session = client.train(mltask["id"])
    client.wait_for_epochs(session, 2)
    client.call("POST", f"/api/sessions/{session}/interrupt/")
    stopped = client.wait(session, timeout=120)
    assert stopped["status"] == "interrupted", stopped["error"]
    done = max(row["epoch"] for row in stopped["metrics"] if not row.get("partial"))

    log_in(page, studio, f"/projects/{project}/sessions/{session}/")
    page.click("#continue")
    assert page.input_value("#continue-epochs") == str(done + 10)
    # As many epochs as already done: the server asks for more.
    page.fill("#continue-epochs", str(done))
    page.click("#continue-start")
    page.wait_for_function("document.querySelector('#continue-message').textContent.includes('ask for more')")
    assert f"already trained {done} epoch(s)" in text(page, "#continue-message")

    page.fill("#continue-epochs", str(done + 2))
    page.click("#continue-start")
    page.wait_for_url(re.compile(rf".*/sessions/(?!{session}/)\d+/$"))
    continued = int(re.search(r"/sessions/(\d+)/$", page.url).group(1))
    assert continued != session and page.url == f"{studio.base}/projects/{project}/sessions/{continued}/"
    page.wait_for_function(
        "document.querySelector('#status').textContent.trim() === 'succeeded'", timeout=180_000
    )
    assert page.locator("#epoch-label").inner_text() == f"epoch {done + 2} of {done + 2}"
    epochs = page.locator("#epoch-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.epoch)")
    assert epochs == [str(n) for n in range(1, done + 3)]  # the old epochs, then the new ones
    # The continued session can itself be continued.
    assert page.locator("#continue").is_visible()
    page.screenshot(path=str(ARTIFACTS / "browser-continue-done.png"), full_page=True)
    assert client.call("GET", f"/api/sessions/{continued}/")["created_by"] == ADMIN
