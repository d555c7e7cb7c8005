"""The Training tab in a real Chromium: Standard / Advanced mode, the Training code, the kept model
and early stopping, saved through the page's Save (and a teammate's 409); the session page shows
which epoch the model kept (text, charts, epoch table), links a Training-code error to its line,
and follows the epochs advanced-mode code plans."""

from __future__ import annotations

import json
import re

from tests.browser.conftest import ARTIFACTS, log_in
from tests.live import PASSWORD, Client, breast_cancer_csv


def cancer_mltask(studio, name: str) -> tuple[Client, int, dict]:
    """A project holding the breast-cancer CSV and a default binary ML task, made through the API."""
    client = Client(studio.base)
    project = client.call("POST", "/api/projects/", json={"name": name})["id"]
    dataset = client.upload(project, "breast_cancer.csv", breast_cancer_csv(), name="breast cancer")
    return client, project, client.mltask(project, dataset["id"], "target")


def save(page) -> None:
    page.click("#save")
    page.wait_for_function("!document.querySelector('#message').hidden")
    message = page.locator("#message").inner_text()
    assert message.startswith("Saved"), message


def text(page, selector: str) -> str:
    """What a user reads there, whitespace collapsed."""
    return " ".join(page.locator(selector).text_content().split())


def training_code(page) -> str:
    return page.locator("#training-editor .cm-content").inner_text()


def test_advanced_mode_code_kept_model_and_early_stopping_are_saved(studio, page):
    client, project, mltask = cancer_mltask(studio, "training tab")
    path = f"/projects/{project}/mltasks/{mltask['id']}/"
    log_in(page, studio, path)

    # Standard by default: epochs and batch size, no code.
    assert page.is_checked("#mode-standard")
    assert page.locator("#epochs").is_visible() and page.locator("#training-editor").is_hidden()
    assert page.is_checked("#keep-best") and not page.is_checked("#early-stopping")
    assert page.locator("#es-patience").is_disabled()  # until early stopping is on
    assert page.locator("#dirty").is_hidden()

    # The optimization metric: the binary metrics, named as the epoch logs name it.
    options = page.locator("#metric option").all_inner_texts()
    assert options[:2] == ["Accuracy", "Precision"] and "ROC AUC" in options and "R2 Score" not in options
    assert page.locator("#metric").input_value() == "ROC AUC"
    assert text(page, "label:has(#keep-best)") == "best epoch by Test ROC AUC"
    page.select_option("#metric", "Log Loss")
    assert text(page, "label:has(#keep-best)") == "best epoch by Test Log Loss"
    assert page.locator("#metric-direction").inner_text() == "lower is better"

    # Advanced: the Training code, with the default build_sequence / fit_model.
    page.check("#mode-advanced")
    assert page.locator("#epochs").is_hidden() and page.locator("#training-editor").is_visible()
    code = mltask["training"]["code"]  # the editor's text as the API holds it
    assert "epochs = 10" in code  # the default Training code's fit_model plans 10 epochs
    assert "def build_sequence(build_train_sequence_with_batch_size" in training_code(page)
    assert "def fit_model(model, train_sequence, validation_sequence, base_callbacks):" in training_code(page)
    page.locator("#training-editor .cm-content").fill(code.replace("epochs = 10", "epochs = 4"))
    page.check("#keep-last")
    page.check("#early-stopping")
    page.fill("#es-patience", "2")
    page.fill("#es-min-delta", "0.001")
    assert page.locator("#dirty").is_visible()
    page.screenshot(path=str(ARTIFACTS / "browser-training-advanced.png"), full_page=True)
    save(page)
    assert page.locator("#dirty").is_hidden()

    stored = client.call("GET", f"/api/mltasks/{mltask['id']}/")
    training = stored["training"]
    assert training["mode"] == "advanced" and training["keep"] == "last"
    assert "epochs = 4" in training["code"] and "epochs = 10" not in training["code"]
    assert training["early_stopping"] == {"enabled": True, "patience": 2, "min_delta": 0.001}
    assert training["code"] == code.replace("epochs = 10", "epochs = 4")
    assert training["epochs"] == 10  # the standard settings stay for a switch back
    assert stored["metric"] == "Log Loss"

    # A reload shows what was saved.
    page.reload()
    assert page.is_checked("#mode-advanced") and page.locator("#training-editor").is_visible()
    assert "epochs = 4" in training_code(page)
    assert page.is_checked("#keep-last") and page.is_checked("#early-stopping")
    assert page.input_value("#es-patience") == "2" and page.input_value("#es-min-delta") == "0.001"
    assert page.locator("#metric").input_value() == "Log Loss"
    assert page.locator("#dirty").is_hidden()

    # A teammate saves meanwhile: the page's save is refused (409); "keep mine" then saves my code.
    client.patch(mltask["id"], training={"early_stopping": {"enabled": True, "patience": 9}})
    page.locator("#training-editor .cm-content").fill(training["code"].replace("epochs = 4", "epochs = 6"))
    page.click("#save")
    page.locator("#conflict").wait_for(state="visible")
    page.click("#keep-mine")
    save(page)
    training = client.call("GET", f"/api/mltasks/{mltask['id']}/")["training"]
    assert "epochs = 6" in training["code"] and training["early_stopping"]["patience"] == 2

    # Another teammate's change, and "take theirs" loads it into the form.
    client.patch(mltask["id"], training={"keep": "best", "early_stopping": {"enabled": False}})
    page.fill("#es-patience", "3")
    page.click("#save")
    page.locator("#conflict").wait_for(state="visible")
    page.click("#take-theirs")
    assert page.is_checked("#keep-best") and not page.is_checked("#early-stopping")
    theirs = client.call("GET", f"/api/mltasks/{mltask['id']}/")["training"]["early_stopping"]
    assert page.input_value("#es-patience") == str(theirs["patience"])
    assert page.locator("#es-patience").is_disabled()
    assert page.locator("#dirty").is_hidden()

    # Back to Standard: the code stays saved for later.
    page.check("#mode-standard")
    page.fill("#epochs", "12")
    save(page)
    training = client.call("GET", f"/api/mltasks/{mltask['id']}/")["training"]
    assert training["mode"] == "standard" and training["epochs"] == 12 and "epochs = 6" in training["code"]
    page.screenshot(path=str(ARTIFACTS / "browser-training-standard.png"), full_page=True)


def make_sessions(studio, mltask_id: int, sessions: list[dict]) -> list[int]:
    """Session rows written straight into the studio's database (no training), with their epochs."""
    script = f"""
import json
from analyses.models import EpochMetric, MLTask, Session
mltask = MLTask.objects.get(pk={mltask_id})
ids = []
for spec in json.loads({json.dumps(json.dumps(sessions))}):
    epochs = spec.pop("epochs")
    design = mltask.design() | {{"training": {{**mltask.training, **spec.pop("training", {{}})}}}}
    session = Session.objects.create(mltask=mltask, design=design, created_by=mltask.updated_by, **spec)
    for row in epochs:
        EpochMetric.objects.create(session=session, **row)
    ids.append(session.pk)
print(json.dumps(ids))
"""
    return json.loads(studio.manage("shell", "-c", script).strip().splitlines()[-1])


def epoch_rows(count: int, best: int) -> list[dict]:
    """Epochs whose Test ROC AUC peaks at ``best``."""
    rows = []
    for epoch in range(1, count + 1):
        test_auc = 0.991 - 0.01 * abs(epoch - best)
        rows.append(
            {
                "epoch": epoch,
                "seconds": 0.5,
                "values": {
                    "loss": 0.5 / epoch,
                    "Train ROC AUC": 0.9 + 0.01 * epoch,
                    "Test ROC AUC": test_auc,
                    "Train Log Loss": 0.4 / epoch,
                    "Test Log Loss": 0.3 + 0.01 * abs(epoch - best),
                },
            }
        )
    return rows


def model_info(kept: dict) -> dict:
    return {"summary": "Model: functional", "params": 2_500, "input_shapes": {"main": [30]}, "kept": kept}


def test_the_session_page_marks_the_kept_epoch(studio, page):
    client, project, mltask = cancer_mltask(studio, "kept epoch")
    best, last = make_sessions(
        studio,
        mltask["id"],
        [
            {
                "status": "succeeded",
                "epochs_total": 5,
                "epochs_done": 5,
                "epochs": epoch_rows(5, best=3),
                "model_info": model_info(
                    {"epoch": 3, "metric": "Test ROC AUC", "value": 0.991, "keep": "best"}
                ),
                "final_metrics": {"Train ROC AUC": 0.93, "Test ROC AUC": 0.991},
            },
            {
                # Early stopping ended it after 4 of 10 epochs; the last epoch's weights were kept.
                "status": "succeeded",
                "epochs_total": 10,
                "epochs_done": 4,
                "epochs": epoch_rows(4, best=2),
                "training": {
                    "keep": "last",
                    "early_stopping": {"enabled": True, "patience": 2, "min_delta": 0},
                },
                "model_info": model_info(
                    {"epoch": 4, "metric": "Test ROC AUC", "value": 0.971, "keep": "last"}
                ),
                "final_metrics": {"Test ROC AUC": 0.971},
            },
        ],
    )

    log_in(page, studio, f"/projects/{project}/sessions/{best}/")
    kept = page.locator("#kept")
    kept.wait_for(state="visible")
    assert page.locator("#kept-text").inner_text() == "Model kept: epoch 3 (best Test ROC AUC 0.991)"
    # Every chart marks it, and its row in the epoch table.
    charts = page.locator("#charts .chart")
    assert charts.count() >= 3  # ROC AUC, Log Loss, loss
    for i in range(charts.count()):
        assert charts.nth(i).get_attribute("data-kept-epoch") == "3"
    row = page.locator('#epoch-table tbody tr[data-epoch="3"]')
    assert "row-kept" in row.get_attribute("class") and row.locator("td").first.inner_text().startswith("★")
    assert page.locator("#epoch-table tbody tr.row-kept").count() == 1
    assert page.locator("#epoch-label").inner_text() == "epoch 5 of 5"
    page.screenshot(path=str(ARTIFACTS / "browser-session-kept-best.png"), full_page=True)

    page.goto(f"{studio.base}/projects/{project}/sessions/{last}/")
    page.locator("#kept").wait_for(state="visible")
    assert page.locator("#kept-text").inner_text() == "Model kept: epoch 4 (last epoch)"
    assert page.locator("#epoch-label").inner_text() == "epoch 4 of 10 (stopped early)"
    assert "row-kept" in page.locator('#epoch-table tbody tr[data-epoch="4"]').get_attribute("class")


TRACEBACK = """File "training", line 12, in fit_model
NameError: name 'epoch' is not defined"""


def test_a_training_code_error_links_to_its_line(studio, page):
    client, project, mltask = cancer_mltask(studio, "training error")
    (failed,) = make_sessions(
        studio,
        mltask["id"],
        [
            {
                "status": "failed",
                "epochs_total": 10,
                "epochs_done": 0,
                "epochs": [],
                "training": {"mode": "advanced"},
                "error": {
                    "phase": "fit",
                    "tab": "training",
                    "line": 12,
                    "message": "NameError: name 'epoch' is not defined",
                    "traceback": TRACEBACK,
                },
            }
        ],
    )
    log_in(page, studio, f"/projects/{project}/sessions/{failed}/")
    page.locator("#error").wait_for(state="visible")
    assert "training tab" in page.locator("#error-where").inner_text()
    assert page.locator("#kept").is_hidden()
    link = page.locator("#error-link")
    assert link.inner_text() == "Open the training code at line 12"
    # Advanced mode's code decides the epochs: none planned were ever reported.
    assert page.locator("#epoch-label").inner_text() == "epoch 0"
    link.click()

    # The ML task went back to Standard meanwhile: the page shows the code (unsaved) and marks the line.
    page.wait_for_url(re.compile(r".*/mltasks/\d+/\?tab=training&line=12.*"))
    page.locator("#training-editor .cm-lint-marker-error").wait_for()
    assert page.is_checked("#mode-advanced") and page.locator("#training-editor").is_visible()
    assert page.locator("#dirty").is_visible()
    assert "failed in the Training code" in page.locator("#message").inner_text()
    marked_line = page.locator("#training-editor .cm-lintRange-error").inner_text()
    code_line_7 = client.call("GET", f"/api/mltasks/{mltask['id']}/")["training"]["code"].splitlines()[11]
    assert marked_line.strip() == code_line_7.strip()
    page.screenshot(path=str(ARTIFACTS / "browser-training-error-line.png"), full_page=True)


def test_advanced_mode_trains_and_the_page_follows_its_epochs(studio, page):
    """Real training: the code plans 3 epochs (the standard setting says 10); the page follows the
    runner's progress events and shows the kept epoch from the live `kept` event."""
    client, project, mltask = cancer_mltask(studio, "advanced live")
    code = client.call("GET", f"/api/mltasks/{mltask['id']}/")["training"]["code"]
    assert "epochs = 10" in code  # the default Training code's fit_model plans 10 epochs
    client.patch(
        mltask["id"], training={"mode": "advanced", "code": code.replace("epochs = 10", "epochs = 3")}
    )
    log_in(page, studio, f"/projects/{project}/mltasks/{mltask['id']}/")
    assert page.is_checked("#mode-advanced")
    page.click("#train")
    page.wait_for_url(re.compile(r".*/sessions/\d+/$"))
    page.wait_for_function(
        "document.querySelector('#epoch-label').textContent.includes('of 3')", timeout=180_000
    )
    page.wait_for_function(
        "document.querySelector('#status').textContent.trim() === 'succeeded'", timeout=180_000
    )
    page.locator("#kept").wait_for(state="visible")
    text = page.locator("#kept-text").inner_text()
    assert re.fullmatch(r"Model kept: epoch [123] \(best Test ROC AUC 0?\.\d+\)", text), text
    epoch = int(re.search(r"epoch (\d)", text).group(1))
    assert page.locator("#epoch-label").inner_text() == "epoch 3 of 3"
    assert page.locator("#charts .chart").first.get_attribute("data-kept-epoch") == str(epoch)
    assert "row-kept" in page.locator(f'#epoch-table tbody tr[data-epoch="{epoch}"]').get_attribute("class")
    page.screenshot(path=str(ARTIFACTS / "browser-session-advanced-kept.png"), full_page=True)


def test_the_optimization_metric_follows_the_first_targets_type(studio, page):
    client, project, mltask = cancer_mltask(studio, "metric choices")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, studio, f"/projects/{project}/mltasks/{mltask['id']}/")
    # Two targets: the metric is measured on the first one's output.
    page.select_option("#new-target", "mean radius")
    page.click("#add-target")
    assert text(page, "label:has(#early-stopping)") == "stop when Test ROC AUC (target) stops improving"
    # The first target is now one whose type the save guesses: no choice until then.
    page.get_by_label("Remove target target").click()
    assert page.locator("#metric").is_disabled()
    assert "known once saved" in page.locator("#metric-note").inner_text()
    # Its type chosen: the regression metrics, with their default (as the server does on a type change).
    page.get_by_label("mean radius prediction type").select_option("regression")
    options = page.locator("#metric option").all_inner_texts()
    assert options == ["EVS", "MAPE", "MAE", "MSE", "RMSE", "RMSLE", "R2 Score"]
    assert page.locator("#metric").input_value() == "R2 Score" and page.locator("#metric").is_enabled()
    assert text(page, "label:has(#keep-best)") == "best epoch by Test R2 Score"
    page.select_option("#metric", "RMSE")
    assert page.locator("#metric-direction").inner_text() == "lower is better"
    save(page)
    stored = client.call("GET", f"/api/mltasks/{mltask['id']}/")
    assert stored["target"] == "mean radius" and stored["prediction_type"] == "regression"
    assert stored["metric"] == "RMSE"
    assert page.locator("#dirty").is_hidden() and page.locator("#metric").input_value() == "RMSE"
    assert errors == []


def test_a_viewer_reads_the_training_settings(studio, page):
    client, project, mltask = cancer_mltask(studio, "training viewer")
    code = mltask["training"]["code"].replace("epochs = 10", "epochs = 5")
    client.patch(mltask["id"], training={"mode": "advanced", "code": code, "keep": "last"}, metric="Accuracy")
    client.call("POST", "/api/users/", json={"username": "training-viewer", "password": PASSWORD})
    client.call(
        "POST", f"/api/projects/{project}/members/", json={"username": "training-viewer", "role": "viewer"}
    )
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    path = f"/projects/{project}/mltasks/{mltask['id']}/"
    page.goto(f"{studio.base}/accounts/login/?next={path}")
    page.fill("#id_username", "training-viewer")
    page.fill("#id_password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"{studio.base}{path}")
    assert page.is_checked("#mode-advanced") and "epochs = 5" in training_code(page)
    assert page.get_attribute("#training-editor .cm-content", "contenteditable") == "false"
    for selector in ("#mode-standard", "#keep-best", "#early-stopping", "#es-patience", "#metric"):
        assert page.locator(selector).is_disabled(), selector
    assert page.is_checked("#keep-last") and page.locator("#metric").input_value() == "Accuracy"
    assert page.locator("#save").count() == 0 and page.locator("#dirty").is_hidden()
    assert errors == []


def test_runtime_gpus_and_memory_growth_are_saved_and_the_workers_are_shown(studio, page):
    client, project, mltask = cancer_mltask(studio, "runtime settings")
    log_in(page, studio, f"/projects/{project}/mltasks/{mltask['id']}/")

    assert page.locator("#runtime-gpus").input_value() == "auto"
    assert page.is_checked("#runtime-memory-growth")
    # The embedded worker (this web process) has no GPU here.
    page.wait_for_function("document.querySelector('#workers-summary').textContent.includes('embedded')")
    assert re.search(r"embedded: CPU only, \d of 1 slot busy", text(page, "#workers-summary"))

    page.fill("#runtime-gpus", "1, 0")
    page.uncheck("#runtime-memory-growth")
    assert page.locator("#dirty").is_visible()
    save(page)
    stored = client.call("GET", f"/api/mltasks/{mltask['id']}/")["training"]["runtime"]
    assert stored == {"gpus": [0, 1], "memory_growth": False}
    page.reload()
    assert page.locator("#runtime-gpus").input_value() == "0,1"
    assert not page.is_checked("#runtime-memory-growth")

    page.fill("#runtime-gpus", "all of them")  # not a form the setting takes: the server says which
    page.click("#save")
    page.wait_for_function("!document.querySelector('#message').hidden")
    assert "training.runtime.gpus must be" in page.locator("#message").inner_text()
    assert client.call("GET", f"/api/mltasks/{mltask['id']}/")["training"]["runtime"]["gpus"] == [0, 1]
