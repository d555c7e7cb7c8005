"""A user in a real Chromium: log in, open the ML task, change the code, Train, watch epochs
arrive in the chart, Interrupt."""

from __future__ import annotations

import re

from tests.browser.conftest import ARTIFACTS, log_in
from tests.live import ADMIN, PASSWORD, Client, breast_cancer_csv


def cancer_mltask(studio) -> tuple[Client, int, dict]:
    """A project holding the breast-cancer CSV and a default ML task, made through the API."""
    client = Client(studio.base)
    project = client.call("POST", "/api/projects/", json={"name": "browser"})["id"]
    dataset = client.upload(project, "breast_cancer.csv", breast_cancer_csv(), name="breast cancer")
    return client, project, client.mltask(project, dataset["id"], "target")


def test_edit_train_watch_and_interrupt(studio, page):
    client, project, mltask = cancer_mltask(studio)

    page.goto(f"{studio.base}/projects/{project}/mltasks/{mltask['id']}/")
    assert "/accounts/login/" in page.url  # not logged in yet: sent to the login page
    page.fill("#id_username", ADMIN)
    page.fill("#id_password", PASSWORD)
    page.click("#login")
    page.wait_for_url(re.compile(rf".*/mltasks/{mltask['id']}/$"))

    editor = page.locator("#architecture-editor .cm-content")
    code = editor.inner_text()
    assert "def build_model(input_shapes, n_classes):" in code
    edited = code.replace("Dense(64", "Dense(48").replace(
        "def compile_model(model):", 'print("hello from the architecture tab")\n\n\ndef compile_model(model):'
    )
    editor.fill(edited)
    page.fill("#epochs", "300")
    page.click("#train")

    page.wait_for_url(re.compile(r".*/sessions/\d+/$"))
    session_id = int(re.search(r"/sessions/(\d+)/$", page.url).group(1))
    page.locator("#epoch-table tbody tr").nth(1).wait_for(timeout=120_000)  # two epochs drawn live
    assert page.locator("#status").inner_text() == "running"
    assert page.locator("#charts canvas").count() >= 1
    assert "epoch" in page.locator("#epoch-label").inner_text()
    page.screenshot(path=str(ARTIFACTS / "browser-session-running.png"), full_page=True)
    assert re.fullmatch(r"(\d+ min )?\d+ s elapsed", page.locator("#elapsed").inner_text())

    # One session at a time here: a second one waits, and its page says where it stands.
    waiting = client.train(mltask["id"])
    second = page.context.new_page()
    try:
        second.goto(f"{studio.base}/projects/{project}/sessions/{waiting}/")
        assert second.locator("#status").inner_text() == "queued"
        assert second.locator("#queue-note").inner_text() == "Waiting for a worker — next in the queue."
    finally:
        second.close()
        client.call("POST", f"/api/sessions/{waiting}/abort/")

    page.click("#interrupt")
    page.wait_for_function(
        "document.querySelector('#status').textContent.trim() === 'interrupted'", timeout=90_000
    )
    page.locator("#final-metrics-table").wait_for()
    assert "ROC AUC" in page.locator("#final-metrics-table").inner_text()
    assert "hello from the architecture tab" in page.locator("#console").inner_text()
    page.screenshot(path=str(ARTIFACTS / "browser-session-interrupted.png"), full_page=True)

    session = client.call("GET", f"/api/sessions/{session_id}/")
    assert session["status"] == "interrupted"
    assert 2 <= session["epochs_done"] < 300
    snapshot = client.call("GET", f"/api/mltasks/{mltask['id']}/")
    assert "Dense(48" in snapshot["architecture_code"] and snapshot["training"]["epochs"] == 300


def test_features_and_split_are_edited_on_the_design_page(studio, page):
    client, project, mltask = cancer_mltask(studio)

    log_in(page, studio, f"/projects/{project}/mltasks/{mltask['id']}/")
    row = page.locator('#features-table tr[data-feature="mean radius"]')
    row.get_by_label("mean radius role").select_option("reject")
    other = page.locator('#features-table tr[data-feature="mean texture"]')
    other.get_by_label("mean texture rescaling").select_option("minmax")
    other.get_by_label("mean texture missing").select_option("constant")
    other.get_by_label("mean texture missing value").fill("-1")
    other.get_by_label("mean texture missing value").dispatch_event("change")
    other.get_by_label("mean texture input name").fill("texture")
    assert "texture" in page.locator("#inputs-summary").inner_text()
    area = page.locator('#features-table tr[data-feature="worst area"]')
    area.get_by_label("worst area type").select_option("categorical")
    area.get_by_label("worst area encoding").select_option("index")
    assert area.get_by_label("worst area input name").input_value() == "worst_area_ids"
    page.fill("#split-ratio", "0.7")
    page.uncheck("#split-stratify")
    assert page.locator("#sampling-rows").is_hidden()
    page.select_option("#sampling-method", "head")
    page.fill("#sampling-rows", "400")
    page.click("#save")
    page.wait_for_function("document.querySelector('#message').textContent.includes('Saved')")

    saved = client.call("GET", f"/api/mltasks/{mltask['id']}/")
    assert saved["split"] == {
        "mode": "random",
        "train_ratio": 0.7,
        "seed": 1337,
        "stratify": False,
        "sampling": {"method": "head", "rows": 400},
    }
    features = {f["name"]: f for f in saved["features"]}
    assert features["mean radius"]["role"] == "reject"
    assert features["mean texture"]["handling"] == {
        "rescaling": "minmax",
        "missing": "constant",
        "missing_value": -1.0,
    }
    assert features["mean texture"]["input"] == "texture"
    assert features["worst area"]["type"] == "categorical"
    assert features["worst area"]["handling"] == {"encoding": "index", "max_levels": 1000}
    assert features["worst area"]["input"] == "worst_area_ids"
    page.screenshot(path=str(ARTIFACTS / "browser-features-edited.png"), full_page=True)


def test_an_explicit_test_dataset_is_chosen_among_the_project_datasets(studio, page):
    client, project, mltask = cancer_mltask(studio)
    holdout = client.upload(project, "holdout.csv", breast_cancer_csv(), name="holdout")

    log_in(page, studio, f"/projects/{project}/mltasks/{mltask['id']}/")
    assert page.locator("#split-test-dataset").is_hidden()
    page.select_option("#split-mode", "explicit")
    assert page.locator("#split-ratio").is_hidden()
    page.select_option("#split-test-dataset", label="holdout")
    page.click("#save")
    page.wait_for_function("document.querySelector('#message').textContent.includes('Saved')")

    split = client.call("GET", f"/api/mltasks/{mltask['id']}/")["split"]
    assert split["mode"] == "explicit" and split["test_dataset"] == holdout["id"]
