"""The model report of a really trained session (breast cancer, 2 epochs, the real runner): its
numbers agree with scikit-learn on the predictions.csv it was computed from, and in Chromium the
threshold slider changes the confusion counts without a round trip."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn import metrics as skm

from tests.browser.conftest import ARTIFACTS, log_in
from tests.live import Client, breast_cancer_csv


@pytest.fixture(scope="module")
def trained(studio) -> dict:
    """One 2-epoch session of the default binary ML task, shared by this module's tests."""
    client = Client(studio.base)
    project = client.call("POST", "/api/projects/", json={"name": "report"})["id"]
    dataset = client.upload(project, "breast_cancer.csv", breast_cancer_csv(), name="breast cancer")
    mltask = client.mltask(project, dataset["id"], "target")
    client.patch(mltask["id"], training={"epochs": 2, "batch_size": 32})
    session = client.train(mltask["id"])
    state = client.wait(session, timeout=300)
    assert state["status"] == "succeeded", state["error"]
    return {"client": client, "project": project, "session": session}


def test_a_trained_session_serves_a_report_that_agrees_with_its_predictions(studio, trained) -> None:
    report = trained["client"].call("GET", f"/api/sessions/{trained['session']}/report/")

    output = studio.data_dir / "sessions" / str(trained["session"]) / "output"
    predictions = pd.read_csv(output / "predictions.csv")
    y = (predictions["actual"] == "malignant").astype(int)  # classes sorted: benign, malignant
    binary = report["targets"][0]["binary"]
    assert binary["positive_class"] == "malignant"
    assert binary["roc"]["auc"] == pytest.approx(skm.roc_auc_score(y, predictions["proba_malignant"]))
    assert binary["roc"]["auc"] == pytest.approx(report["metrics"]["rows"][-1]["test"])  # Test ROC AUC
    default = binary["thresholds"].index(0.5)
    assert binary["counts"]["tp"][default] == int(
        ((predictions["prediction"] == "malignant") & (y == 1)).sum()
    )

    graph = report["model"]["graph"]
    assert graph["graph"] is True and graph["kind"] == "functional"
    names = [layer["name"] for layer in graph["layers"]]
    assert names[0] == "main" and len(names) >= 3
    assert ["main", names[1]] in graph["edges"] and graph["outputs"] == [names[-1]]
    assert sum(layer["params"] for layer in graph["layers"]) == graph["params"] > 0

    environment = report["provenance"]["environment"]
    assert environment["versions"]["keras"] and environment["versions"]["scikit-learn"]
    assert environment["device"].startswith("Keras backend")
    assert report["provenance"]["seed"] == 1337
    assert report["learning_curves"]["kept"]["epoch"] in (1, 2)


def test_the_threshold_slider_updates_the_confusion_counts(studio, page, trained) -> None:
    log_in(page, studio, f"/projects/{trained['project']}/sessions/{trained['session']}/")
    page.locator("#report[data-loaded='true']").wait_for()
    assert page.locator("#report-metrics").inner_text().count("ROC AUC") == 1
    page.locator("#report-panel-metrics .charts canvas").first.wait_for()

    page.click("#report-tab-confusion")
    assert page.locator("#report-threshold-value").inner_text() == "0.50"
    before = {cell: int(page.locator(f"#report-cm-{cell}").inner_text()) for cell in ("tp", "fp", "tn", "fn")}

    page.locator("#report-threshold").fill("3")  # 0.03: nearly every row predicted malignant
    assert page.locator("#report-threshold-value").inner_text() == "0.03"
    after = {cell: int(page.locator(f"#report-cm-{cell}").inner_text()) for cell in ("tp", "fp", "tn", "fn")}
    assert after["fp"] > before["fp"] and after["tn"] < before["tn"]
    assert after["tp"] + after["fn"] == before["tp"] + before["fn"]  # the actual classes do not move
    page.screenshot(path=str(ARTIFACTS / "browser-report-threshold.png"), full_page=True)

    best = page.locator("#report-best-threshold")
    best.click()
    assert best.inner_text().endswith(page.locator("#report-threshold-value").inner_text())

    page.click("#report-tab-roc")
    page.locator("#report-panel-roc canvas").first.wait_for()
    page.click("#report-tab-model")
    page.locator("#report-layer-graph svg .layer-node").first.wait_for()
    assert page.locator("#report-layer-graph .layer-node").count() >= 3
    page.screenshot(path=str(ARTIFACTS / "browser-report-model.png"), full_page=True)
