"""Duplicate and the activity feed in a real Chromium: copy an ML task from its page into an
analysis of another project (the dialog lists the projects where the user is editor), land on the
copy, and find "duplicated" in both projects' activity, which pages back with "Older" and takes
new entries on top when it refreshes."""

from __future__ import annotations

from tests.browser.conftest import ARTIFACTS, log_in
from tests.live import Client


def small_csv() -> bytes:
    lines = ["x1,x2,target"] + [f"{i % 7},{(i * 13) % 11},{'yes' if i % 3 else 'no'}" for i in range(40)]
    return ("\n".join(lines) + "\n").encode()


def feed_texts(page) -> list[str]:
    return page.locator("#activity li").all_inner_texts()


def test_duplicate_an_ml_task_into_another_project_and_see_it_in_the_activity(studio, page):
    client = Client(studio.base)
    source = client.call("POST", "/api/projects/", json={"name": "source"})["id"]
    target = client.call("POST", "/api/projects/", json={"name": "target"})["id"]
    dataset = client.upload(source, "small.csv", small_csv(), name="small")
    mltask = client.mltask(source, dataset["id"], "target")
    there = client.upload(target, "small.csv", small_csv(), name="small there")
    analysis = client.call(
        "POST", f"/api/projects/{target}/analyses/", json={"name": "B", "dataset": there["id"]}
    )

    log_in(page, studio, f"/projects/{source}/mltasks/{mltask['id']}/")
    page.click("#duplicate")
    dialog = page.locator("#duplicate-dialog")
    dialog.wait_for()
    page.locator(f'#duplicate-analysis option[value="{mltask["analysis"]}"]').wait_for(state="attached")
    assert page.locator("#duplicate-project").input_value() == str(source)  # its own project first
    page.select_option("#duplicate-project", str(target))
    page.locator(f'#duplicate-analysis option[value="{analysis["id"]}"]').wait_for(state="attached")
    assert page.locator("#duplicate-analysis option").all_inner_texts() == ["B"]
    page.screenshot(path=str(ARTIFACTS / "browser-duplicate-dialog.png"))
    page.click("#duplicate-submit")
    page.wait_for_url(f"{studio.base}/projects/{target}/mltasks/*/")
    copy_id = int(page.url.rstrip("/").split("/")[-1])
    assert copy_id != mltask["id"]
    assert page.locator("#mltask-title").inner_text() == "target"
    copy = client.call("GET", f"/api/mltasks/{copy_id}/")
    assert (copy["analysis"], copy["dataset"]) == (analysis["id"], there["id"])

    page.goto(f"{studio.base}/projects/{target}/")
    entry = page.locator('#activity li[data-verb="duplicated"]')
    entry.wait_for()
    assert entry.inner_text().startswith("admin duplicated ML task target (binary)")
    assert "from ML task target (binary) in analysis journey of project source" in entry.inner_text()
    assert entry.locator("a").get_attribute("href") == f"/projects/{target}/mltasks/{copy_id}/"
    assert "just now" in entry.inner_text()

    # New entries arrive on top when the feed refreshes (every 15 s while visible, or on return).
    client.call("PUT", f"/api/projects/{target}/variables/", json={"lr": 0.1})
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.locator('#activity li[data-verb="variables_changed"]').wait_for()
    assert feed_texts(page)[0].startswith("admin changed the project variables · lr")
    page.screenshot(path=str(ARTIFACTS / "browser-activity.png"), full_page=True)

    page.goto(f"{studio.base}/projects/{source}/")
    page.locator('#activity li[data-verb="duplicated"]').wait_for()
    assert "into project target" in page.locator('#activity li[data-verb="duplicated"]').inner_text()
    assert page.locator("#activity-older").is_hidden()  # 5 entries: one page


def test_the_activity_pages_back_with_older(studio, page):
    client = Client(studio.base)
    project = client.call("POST", "/api/projects/", json={"name": "busy"})["id"]
    for n in range(33):  # more than the 30 shown at first
        client.call("PUT", f"/api/projects/{project}/variables/", json={f"v{n}": n})

    log_in(page, studio, f"/projects/{project}/")
    page.locator("#activity li").nth(29).wait_for()
    assert len(feed_texts(page)) == 30 and "v32" in feed_texts(page)[0]
    page.click("#activity-older")
    page.locator("#activity li").nth(32).wait_for()
    assert "v0" in feed_texts(page)[-1]
    assert page.locator("#activity-older").is_hidden()
