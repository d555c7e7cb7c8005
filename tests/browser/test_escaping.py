"""Strings from datasets and code are shown as text on every page, in a real Chromium.

A project, dataset, column names, values and class labels, and code (a comment, and what it prints
to the console) all hold HTML and script payloads. A session is trained on them (and a second one
fails with one in its error), so every page has them to show: project, dataset, analysis, ML task
(features, targets, code editor, sessions table), session (console, epochs, charts, the model
report's every tab, a failed one's error) and compare (code diff). On each page: no element was
injected (no `img[src=x]`, no `on*` attribute, no inline script), no dialog opened, the payload is
visible as text where the page shows it, and nothing broke the Content-Security-Policy (which would
also catch a payload run as a script); the page's own websocket gets through the policy.
"""

from __future__ import annotations

import csv
import io

import pytest

from tests.browser.conftest import ARTIFACTS, log_in
from tests.live import Client

IMG = "<img src=x onerror=alert(1)>"
SVG = '"><svg onload=alert(2)>'
SCRIPT = "</script><script>alert(3)</script>"
LABEL_BAD = "<img src=x onerror=alert(4)>"
LABEL_OK = "<i>ok</i>"
PRINTED = "<img src=x onerror=alert(5)> printed"
ERROR = "<img src=x onerror=alert(6)> raised"

WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""
INJECTED = """() => ({
  images: document.querySelectorAll("img[src='x'], svg[onload]").length,
  handlers: [...document.querySelectorAll("*")]
    .filter((e) => [...e.attributes].some((a) => a.name.startsWith("on")))
    .map((e) => e.outerHTML.slice(0, 120)),
  inlineScripts: document.querySelectorAll('script:not([src]):not([type="application/json"])').length,
  violations: window.__cspViolations || [],
})"""


def hostile_csv(rows: int = 48) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([IMG, SVG, SCRIPT])
    values = [IMG, "=1+2", SCRIPT, "plain"]
    for index in range(rows):
        writer.writerow([index * 0.37 % 5, values[index % 4], LABEL_BAD if index % 3 else LABEL_OK])
    return buffer.getvalue().encode()


@pytest.fixture(scope="module")
def hostile(studio) -> dict:
    client = Client(studio.base)
    project = client.call("POST", "/api/projects/", json={"name": f"team {IMG}"})["id"]
    dataset = client.upload(project, "hostile.csv", hostile_csv(), name=f"data {SCRIPT}")
    assert [c["name"] for c in dataset["columns"]] == [IMG, SVG, SCRIPT]
    mltask = client.mltask(project, dataset["id"], SCRIPT)
    assert sorted(mltask["classes"]) == sorted([LABEL_BAD, LABEL_OK])
    code = client.call("GET", f"/api/mltasks/{mltask['id']}/")["architecture_code"]
    code = f"# {SCRIPT} {IMG}\nprint({PRINTED!r})\n" + code
    client.patch(mltask["id"], training={"epochs": 1, "batch_size": 16}, architecture_code=code)
    first = client.train(mltask["id"])
    state = client.wait(first, timeout=300)
    assert state["status"] == "succeeded", state["error"]
    # A second session, one more payload in its code (for the compare page's diff), failing with
    # a payload in its error message.
    client.patch(
        mltask["id"], architecture_code=f"# again {SVG}\n" + code + f"\nraise ValueError({ERROR!r})\n"
    )
    second = client.train(mltask["id"])
    state = client.wait(second, timeout=300)
    assert state["status"] == "failed" and ERROR in state["error"]["message"], state["error"]
    return {
        "project": project,
        "dataset": dataset["id"],
        "analysis": mltask["analysis"],
        "mltask": mltask["id"],
        "sessions": (first, second),
    }


@pytest.fixture
def enforcing(page):
    """A page whose context enforces the Content-Security-Policy (the shared ``page`` bypasses it)."""
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    strict = context.new_page()
    strict.set_default_timeout(30_000)
    yield strict
    context.close()


def check(page, name: str, shown: list[str], screenshot: bool = False) -> None:
    found = page.evaluate(INJECTED)
    assert found["images"] == 0 and found["handlers"] == [] and found["inlineScripts"] == 0, (name, found)
    assert found["violations"] == [], (name, found["violations"])
    text = page.locator("body").inner_text()
    for payload in shown:
        assert payload in text, f"{name}: {payload!r} is not shown as text"
    if screenshot:
        page.screenshot(path=str(ARTIFACTS / f"browser-escaping-{name}.png"), full_page=True)


def test_hostile_strings_are_shown_as_text_everywhere(studio, enforcing, hostile) -> None:
    page = enforcing
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(WATCH)
    project, first, second = hostile["project"], *hostile["sessions"]

    log_in(page, studio, f"/projects/{project}/")
    page.locator("#datasets").get_by_text(f"data {SCRIPT}").wait_for()
    check(page, "project", [f"team {IMG}", f"data {SCRIPT}"])

    page.goto(f"{studio.base}/projects/{project}/datasets/{hostile['dataset']}/")
    page.locator("#preview").get_by_text("=1+2").first.wait_for()
    check(page, "dataset", [IMG, SVG, SCRIPT, LABEL_BAD, LABEL_OK], screenshot=True)

    page.goto(f"{studio.base}/projects/{project}/analyses/{hostile['analysis']}/")
    check(page, "analysis", [f"data {SCRIPT}"])

    page.goto(f"{studio.base}/projects/{project}/mltasks/{hostile['mltask']}/")
    page.locator("#architecture-editor .cm-content").wait_for()
    page.locator("#sessions tbody tr").nth(1).wait_for()
    check(page, "mltask", [IMG, SVG, SCRIPT])
    assert f"# again {SVG}" in page.locator("#architecture-editor .cm-content").inner_text()

    page.goto(f"{studio.base}/projects/{project}/sessions/{first}/")
    page.locator("#report[data-loaded='true']").wait_for()
    page.locator("#console").get_by_text(PRINTED).first.wait_for()
    for tab in page.locator("#report-tabs [role='tab']").all():
        tab.click()
        check(page, f"session-report-{tab.get_attribute('id') or 'tab'}", [])
    check(page, "session", [PRINTED], screenshot=True)
    opened = page.evaluate(
        """(id) => new Promise((resolve) => {
          const socket = new WebSocket(`ws://${location.host}/ws/sessions/${id}/`);
          socket.onmessage = (event) => resolve(JSON.parse(event.data).type);
          socket.onerror = () => resolve("error");
        })""",
        first,
    )
    assert opened == "snapshot"  # the policy's connect-src 'self' lets the page's websocket through
    report_text = page.locator("#report").inner_text() + page.locator("#report").text_content()
    assert LABEL_BAD in report_text or LABEL_OK in report_text

    page.goto(f"{studio.base}/projects/{project}/sessions/{second}/")
    page.locator("#error-message").get_by_text(ERROR).wait_for()
    check(page, "failed-session", [ERROR])

    page.goto(
        f"{studio.base}/projects/{project}/mltasks/{hostile['mltask']}/compare/?sessions={first},{second}"
    )
    page.locator("#code-diffs").get_by_text(SVG).first.wait_for()
    check(page, "compare", [f"# again {SVG}"], screenshot=True)

    assert dialogs == []
