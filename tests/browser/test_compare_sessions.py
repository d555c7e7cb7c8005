"""The sessions table and the compare page in a real Chromium: sort the ML task's sessions by the
optimization metric, delete one (after the confirm), tick two, open Compare: overlaid learning
curves per metric, the final metrics with the best value highlighted, and the code diff."""

from __future__ import annotations

import json

from tests.browser.conftest import ARTIFACTS, log_in
from tests.live import Client


def small_binary_csv() -> bytes:
    """60 rows, two numeric inputs and a binary target: enough for an ML task, quick to ingest."""
    lines = ["x1,x2,target"]
    for i in range(60):
        lines.append(f"{i % 7 * 0.5},{(i * 13) % 11},{'yes' if i % 3 else 'no'}")
    return ("\n".join(lines) + "\n").encode()


def make_sessions(studio, mltask_id: int, specs: list[dict]) -> list[int]:
    """Session rows written straight into the studio's database (no training): each spec's
    ``design`` overrides the ML task's design in the snapshot (``training`` merged), ``seconds``
    sets its duration, ``epochs`` its epoch rows."""
    script = f"""
import json
from datetime import timedelta
from django.utils import timezone
from analyses.models import EpochMetric, MLTask, Session
mltask = MLTask.objects.get(pk={mltask_id})
ids = []
for spec in json.loads({json.dumps(json.dumps(specs))}):
    epochs, seconds, override = spec.pop("epochs", []), spec.pop("seconds"), spec.pop("design", {{}})
    design = mltask.design() | {{"version": mltask.version}} | override
    design["training"] = {{**mltask.training, **override.get("training", {{}})}}
    now = timezone.now()
    ended = now if spec["status"] not in ("queued", "starting", "running") else None
    session = Session.objects.create(
        mltask=mltask, design=design, created_by=mltask.updated_by,
        started_at=now - timedelta(seconds=seconds), ended_at=ended, epochs_done=len(epochs), **spec
    )
    for number, values in enumerate(epochs, start=1):
        EpochMetric.objects.create(session=session, epoch=number, seconds=0.5, values=values)
    ids.append(session.pk)
print(json.dumps(ids))
"""
    return json.loads(studio.manage("shell", "-c", script).strip().splitlines()[-1])


def epochs(count: int, top: float) -> list[dict]:
    """Epoch rows whose Test ROC AUC climbs to ``top`` and Test Log Loss falls."""
    return [
        {
            "loss": 0.7 / n,
            "val_loss": 0.75 / n,
            "Train ROC AUC": top - 0.02 * (count - n) + 0.01,
            "Test ROC AUC": top - 0.02 * (count - n),
            "Train Log Loss": 0.5 / n,
            "Test Log Loss": 0.6 / n,
        }
        for n in range(1, count + 1)
    ]


def final(auc: float, loss: float) -> dict:
    return {
        "Train ROC AUC": auc + 0.01,
        "Test ROC AUC": auc,
        "Train Log Loss": loss - 0.02,
        "Test Log Loss": loss,
    }


def row_ids(page) -> list[int]:
    return [
        int(i)
        for i in page.locator("#sessions tbody tr").evaluate_all("rows => rows.map(r => r.dataset.sessionId)")
    ]


def test_sort_select_and_compare_two_sessions(studio, page):
    client = Client(studio.base)
    project = client.call("POST", "/api/projects/", json={"name": "compare"})["id"]
    dataset = client.upload(project, "small.csv", small_binary_csv(), name="small")
    mltask = client.mltask(project, dataset["id"], "target")
    code = mltask["architecture_code"]
    wider = code.replace("def build_model", "# two more layers\ndef build_model", 1)
    assert wider != code
    first, better, failed, running, doomed = make_sessions(
        studio,
        mltask["id"],
        [
            {"status": "succeeded", "seconds": 42, "epochs_total": 5, "epochs": epochs(5, 0.91),
             "final_metrics": final(0.91, 0.35),
             "model_info": {"kept": {"epoch": 5, "metric": "Test ROC AUC", "value": 0.91}}},
            {"status": "succeeded", "seconds": 95, "epochs_total": 8, "epochs": epochs(8, 0.96),
             "final_metrics": final(0.96, 0.22),
             "model_info": {"kept": {"epoch": 7, "metric": "Test ROC AUC", "value": 0.96}},
             "design": {"architecture_code": wider, "training": {"epochs": 8}}},
            {"status": "failed", "seconds": 2, "epochs_total": 5,
             "error": {"phase": "build_model", "message": "build_model returned None"}},
            {"status": "running", "seconds": 10, "epochs_total": 5, "epochs": epochs(2, 0.8)},
            {"status": "aborted", "seconds": 3, "epochs_total": 5},
        ],
    )  # fmt: skip

    mltask_path = f"/projects/{project}/mltasks/{mltask['id']}/"
    log_in(page, studio, mltask_path)
    page.locator(f'#sessions tbody tr[data-session-id="{doomed}"]').wait_for()
    assert row_ids(page) == [doomed, running, failed, better, first]  # newest first
    assert page.locator("#session-count").inner_text() == "5"
    assert page.locator('#sessions th[aria-sort="descending"] [data-sort="id"]').count() == 1

    # The optimization metric's column: a first click puts the best first (higher is better),
    # sessions without a value last; a second click reverses the order of those with one.
    page.click('#sessions [data-sort="metric"]')
    page.wait_for_function(f"document.querySelector('#sessions tbody tr').dataset.sessionId === '{better}'")
    assert row_ids(page) == [better, first, doomed, running, failed]
    best_cell = page.locator(f'#sessions tbody tr[data-session-id="{better}"] td[data-metric="Test ROC AUC"]')
    assert "best" in best_cell.get_attribute("class") and best_cell.inner_text() == "0.9600"
    page.click('#sessions [data-sort="metric"]')
    page.wait_for_function(f"document.querySelector('#sessions tbody tr').dataset.sessionId === '{first}'")
    assert row_ids(page)[:2] == [first, better]
    assert page.locator('#sessions th[aria-sort="ascending"] [data-sort="metric"]').count() == 1

    # A running session cannot be deleted; a finished one goes after the confirm.
    running_row = page.locator(f'#sessions tbody tr[data-session-id="{running}"]')
    assert running_row.locator(".delete-session").is_disabled()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f'#sessions tbody tr[data-session-id="{doomed}"] .delete-session').click()
    page.locator(f'#sessions tbody tr[data-session-id="{doomed}"]').wait_for(state="detached")
    assert page.locator("#sessions-message").inner_text() == f"Session {doomed} deleted."
    assert page.locator("#session-count").inner_text() == "4"
    assert client.request("GET", f"/api/sessions/{doomed}/").status_code == 404

    # Tick two: Compare opens the compare page with them.
    compare = page.locator("#compare-selected")
    assert compare.is_disabled()
    page.locator(f'#sessions tbody tr[data-session-id="{first}"] .session-select').check()
    assert compare.is_disabled() and "one more" in page.locator("#sessions-selected").inner_text()
    page.locator(f'#sessions tbody tr[data-session-id="{better}"] .session-select').check()
    assert compare.inner_text() == "Compare selected (2)"
    page.screenshot(path=str(ARTIFACTS / "browser-sessions-table.png"), full_page=True)
    compare.click()
    page.wait_for_url(f"{studio.base}{mltask_path}compare/?sessions={first},{better}")

    # Overlaid curves: one series per session, the optimization metric first; the picker switches.
    curves = page.locator("#curves")
    curves.locator("canvas").wait_for()
    assert curves.get_attribute("data-metric") == "ROC AUC" and curves.get_attribute("data-series") == "2"
    legend = curves.locator(".u-legend").inner_text()
    assert f"{first} · Test ROC AUC" in legend and f"{better} · Test ROC AUC" in legend
    assert page.locator("#curve-metric option").all_inner_texts() == ["ROC AUC", "Log Loss", "loss"]
    page.select_option("#curve-split", "both")
    assert (
        curves.get_attribute("data-series") == "4"
        and "Train ROC AUC" in curves.locator(".u-legend").inner_text()
    )
    page.select_option("#curve-metric", "loss")
    assert (
        curves.locator(".u-title").inner_text() == "loss"
        and f"{better} · val_loss" in curves.locator(".u-legend").inner_text()
    )
    page.select_option("#curve-metric", "ROC AUC")

    # Final metrics: the best of each row highlighted (lower is better for Log Loss).
    auc_row = page.locator('#final-metrics tbody tr[data-metric="Test ROC AUC"]')
    assert auc_row.locator("td.best").inner_text() == "0.9600"
    assert (
        page.locator('#final-metrics tbody tr[data-metric="Test Log Loss"] td.best').inner_text() == "0.2200"
    )

    # What changed: the architecture code, line-coloured, and the settings.
    added = page.locator('#code-diffs details[data-code="architecture_code"] .diff-add')
    added.first.wait_for()
    assert added.all_inner_texts() == ["+# two more layers"]
    assert (
        page.locator('#code-diffs [data-code="preprocessing_code"]').inner_text()
        == "Preprocessing code: no change."
    )
    epochs_row = page.locator('#settings-diff tbody tr[data-path="training.epochs"] td')
    assert epochs_row.all_inner_texts() == ["training.epochs", str(mltask["training"]["epochs"]), "8"]
    assert page.locator("#diff-summary").inner_text() == (
        f"1 setting and 1 code tab changed from session {first} to session {better}."
    )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing overflows
    page.screenshot(path=str(ARTIFACTS / "browser-compare-sessions.png"), full_page=True)

    # Swapped: the same change, the other way round.
    page.select_option("#diff-a", str(better))
    page.select_option("#diff-b", str(first))
    page.locator('#code-diffs details[data-code="architecture_code"] .diff-del').first.wait_for()
    assert page.locator('#code-diffs details[data-code="architecture_code"] .diff-del').all_inner_texts() == [
        "-# two more layers"
    ]

    # A session of another ML task (or project) in the URL is a 404, like any outsider's object.
    response = page.goto(f"{studio.base}{mltask_path}compare/?sessions={first},999999")
    assert response.status == 404
    response = page.goto(f"{studio.base}{mltask_path}compare/?sessions={first}")
    assert response.status == 400 and "Compare 2 to 8 sessions" in page.locator("#message").inner_text()
