"""An editor changes an ML task's targets on its design page (add, change a type, remove), saves
through a teammate's concurrent edit (409, keep mine), reloads and finds the targets kept; a viewer
sees them read-only."""

from __future__ import annotations

from tests.browser.conftest import ARTIFACTS, log_in
from tests.live import PASSWORD, Client, breast_cancer_csv

VIEWER = "target-viewer"


def cancer_mltask(studio) -> tuple[Client, int, dict]:
    """A project holding the breast-cancer CSV and a single-target ML task, made through the API."""
    client = Client(studio.base)
    project = client.call("POST", "/api/projects/", json={"name": "targets"})["id"]
    dataset = client.upload(project, "breast_cancer.csv", breast_cancer_csv(), name="breast cancer")
    return client, project, client.mltask(project, dataset["id"], "target")


def target_rows(page) -> list[tuple[str, str]]:
    """(column, prediction type) of each row of the targets table, in order."""
    rows = page.locator("#targets-table tbody tr")
    return [
        (
            rows.nth(i).get_attribute("data-target"),
            rows.nth(i).locator("select").input_value(),
        )
        for i in range(rows.count())
    ]


def feature_row(page, name: str):
    return page.locator(f'#features-table tr[data-feature="{name}"]')


def save(page) -> None:
    page.click("#save")
    page.wait_for_function("document.querySelector('#message').textContent.includes('Saved')")


def test_targets_are_added_retyped_and_removed_on_the_design_page(studio, page):
    client, project, mltask = cancer_mltask(studio)
    path = f"/projects/{project}/mltasks/{mltask['id']}/"
    log_in(page, studio, path)
    assert target_rows(page) == [("target", "binary")]
    assert page.get_by_label("Remove target target").is_disabled()  # never the last target

    # Add two targets: their feature rows leave the Features table.
    area = feature_row(page, "worst area")
    area.get_by_label("worst area rescaling").select_option("minmax")
    page.select_option("#new-target", "mean radius")
    page.click("#add-target")
    page.select_option("#new-target", "worst area")
    page.click("#add-target")
    assert target_rows(page) == [("target", "binary"), ("mean radius", ""), ("worst area", "")]
    assert feature_row(page, "mean radius").count() == 0 and area.count() == 0
    assert page.locator('#new-target option[value="mean radius"]').is_disabled()
    page.get_by_label("mean radius prediction type").select_option("regression")
    # Removed before saving: the column is an input again, with the handling it had.
    page.get_by_label("Remove target worst area").click()
    assert area.get_by_label("worst area rescaling").input_value() == "minmax"
    assert not page.locator("#dirty").is_hidden()

    # A teammate saves meanwhile: the save is refused (409) and "keep mine" saves the page's targets.
    client.patch(mltask["id"], training={"epochs": 7})
    page.click("#save")
    page.locator("#conflict").wait_for(state="visible")
    assert "since you opened it" in page.locator("#message").inner_text()
    page.click("#keep-mine")
    save(page)
    assert page.locator("#mltask-title").inner_text() == "target, mean radius"

    page.reload()
    assert target_rows(page) == [("target", "binary"), ("mean radius", "regression")]
    assert feature_row(page, "mean radius").count() == 0
    assert page.locator("#epochs").input_value() == "10"  # "keep mine": the page's form replaced theirs
    assert (
        "TARGETS = {'target': 'binary', 'mean_radius': 'regression'}"
        in page.locator("#architecture-editor .cm-content").inner_text()
    )
    page.screenshot(path=str(ARTIFACTS / "browser-targets-edited.png"), full_page=True)
    saved = client.call("GET", f"/api/mltasks/{mltask['id']}/")
    assert [(t["name"], t["prediction_type"], t["classes"]) for t in saved["targets"]] == [
        ("target", "binary", ["benign", "malignant"]),
        ("mean radius", "regression", None),
    ]

    # Back to a single target: the column returns to the features.
    page.get_by_label("Remove target mean radius").click()
    save(page)
    page.reload()
    assert target_rows(page) == [("target", "binary")]
    assert feature_row(page, "mean radius").get_by_label("mean radius role").input_value() == "input"
    assert [t["name"] for t in client.call("GET", f"/api/mltasks/{mltask['id']}/")["targets"]] == ["target"]


def test_a_viewer_sees_the_targets_read_only(studio, page):
    client, project, mltask = cancer_mltask(studio)
    client.patch(mltask["id"], targets=[{"name": "target"}, {"name": "mean radius"}])
    client.call("POST", "/api/users/", json={"username": VIEWER, "password": PASSWORD})
    client.call("POST", f"/api/projects/{project}/members/", json={"username": VIEWER, "role": "viewer"})

    log_in(page, studio, f"/projects/{project}/mltasks/{mltask['id']}/", VIEWER)
    assert target_rows(page) == [("target", "binary"), ("mean radius", "regression")]
    assert page.get_by_label("mean radius prediction type").is_disabled()
    assert page.locator("#targets-table button").count() == 0
    assert page.locator("#new-target").count() == 0 and page.locator("#add-target").count() == 0
    assert "benign, malignant" in page.locator('#targets-table tr[data-target="target"]').inner_text()
    page.screenshot(path=str(ARTIFACTS / "browser-targets-viewer.png"), full_page=True)
