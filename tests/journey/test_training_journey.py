"""The walking skeleton end to end through the JSON API and the websocket, on real processes:
embedded (one process, SQLite, in-memory layer) and distributed (uvicorn + Celery worker + Redis +
PostgreSQL). Each test runs in both modes (see conftest.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.live import watch

BINARY_METRICS = [
    "Accuracy",
    "Precision",
    "Recall",
    "F1 Score",
    "Cost Matrix Gain",
    "Log Loss",
    "Cumulative Lift",
    "ROC AUC",
]


def runner_pids(data_dir: Path, session_id: int) -> list[int]:
    """Runner processes working on this session's work dir, found through /proc. A warm runner was
    started on a work dir of its own, which ``sessions/<id>`` then links to: compare real paths."""
    link = data_dir / "sessions" / str(session_id)
    if not link.exists():
        return []
    workdir = str(link.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"training_worker.runner" in cmdline and workdir.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def start_long_session(studio, client, cancer_task) -> int:
    """A 500-epoch session whose runner process is up."""
    mltask = cancer_task["mltask"]["id"]
    client.patch(mltask, training={"epochs": 500, "batch_size": 32})
    session = client.train(mltask)
    deadline = time.time() + 120
    while not runner_pids(studio.data_dir, session) and time.time() < deadline:
        time.sleep(0.2)
    assert runner_pids(studio.data_dir, session), "the runner never started"
    return session


def test_upload_reports_schema_and_guesses_binary(cancer_task):
    dataset = cancer_task["dataset"]
    assert dataset["rows"] == 569
    columns = {c["name"]: c for c in dataset["columns"]}
    assert columns["mean radius"]["type"] == "numeric"
    contract = {key: columns["target"][key] for key in ("name", "type", "missing", "distinct")}
    assert contract == {"name": "target", "type": "categorical", "missing": 0, "distinct": 2}
    assert {t["value"]: t["count"] for t in columns["target"]["top"]} == {"benign": 357, "malignant": 212}
    mltask = cancer_task["mltask"]
    assert mltask["prediction_type"] == "binary"
    assert 'Dense(1, activation="sigmoid"' in mltask["architecture_code"]
    assert {f["input"] for f in mltask["features"]} == {"main"}
    assert len(mltask["features"]) == 30


def test_three_epochs_stream_every_binary_metric_and_score_well(studio, client, cancer_task):
    mltask = cancer_task["mltask"]["id"]
    client.patch(mltask, training={"epochs": 3, "batch_size": 32})
    session = client.train(mltask)

    messages = watch(studio.base, client.token, session)

    assert messages[0]["type"] == "snapshot"
    epochs = {m["epoch"]: m for m in messages if m["type"] == "epoch"}
    epochs.update({e["epoch"]: e for e in messages[0]["metrics"] if e["epoch"] not in epochs})
    assert sorted(epochs) == [1, 2, 3]
    pushed = [m for m in messages if m["type"] == "epoch"]
    assert len(pushed) >= 1, "epochs must be pushed live, not only found in the snapshot"
    for epoch in epochs.values():
        names = set(epoch["values"])
        missing = [
            f"{side} {n}" for n in BINARY_METRICS for side in ("Train", "Test") if f"{side} {n}" not in names
        ]
        assert not missing, f"epoch {epoch['epoch']} lacks {missing}"
    assert messages[-1]["type"] == "done" or messages[-1]["status"] == "succeeded"

    done = client.wait(session)
    assert done["status"] == "succeeded", done["error"]
    assert done["final_metrics"]["Test ROC AUC"] >= 0.95
    assert 0.8 <= done["final_metrics"]["Test Accuracy"] <= 1.0
    assert done["epochs_done"] == 3 and done["epochs_total"] == 3
    assert [e["epoch"] for e in done["metrics"]] == [1, 2, 3]
    assert {"model", "preprocessing"} <= set(done["artifacts"])
    model_file = studio.data_dir / "sessions" / str(session) / "output" / "model.keras"
    assert model_file.stat().st_size > 1000
    assert (model_file.parent / "preprocessing.joblib").exists()
    statuses = [m.get("status") for m in messages if m["type"] == "status"]
    assert "running" in statuses or messages[0]["status"] != "queued"


def test_interrupt_stops_early_and_keeps_an_evaluated_model(studio, client, cancer_task):
    mltask = cancer_task["mltask"]["id"]
    client.patch(mltask, training={"epochs": 500, "batch_size": 32})
    session = client.train(mltask)
    client.wait_for_epochs(session, 1)

    asked = time.time()
    client.call("POST", f"/api/sessions/{session}/interrupt/")
    done = client.wait(session, timeout=120)

    assert done["status"] == "interrupted", done["error"]
    assert time.time() - asked < 60
    assert done["epochs_done"] < 500
    assert done["final_metrics"]["Test ROC AUC"] > 0.5
    assert (studio.data_dir / "sessions" / str(session) / "output" / "model.keras").exists()
    assert client.request("POST", f"/api/sessions/{session}/interrupt/").status_code == 409

    # Continue it: a new session whose history starts with the old one's complete epochs.
    complete = [e["epoch"] for e in done["metrics"] if not e.get("partial")]
    too_few = client.request("POST", f"/api/sessions/{session}/resume/", json={"epochs": complete[-1]})
    assert too_few.status_code == 400 and "ask for more epochs" in too_few.json()["error"]
    response = client.request("POST", f"/api/sessions/{session}/resume/", json={"epochs": complete[-1] + 2})
    assert response.status_code == 201, response.json()
    continued = client.wait(response.json()["id"], timeout=180)
    assert continued["status"] == "succeeded", continued["error"]
    assert [e["epoch"] for e in continued["metrics"]] == [*complete, complete[-1] + 1, complete[-1] + 2]
    assert continued["epochs_done"] == continued["epochs_total"] == complete[-1] + 2
    assert continued["final_metrics"]["Test ROC AUC"] > 0.9


def test_abort_kills_the_runner_and_keeps_no_model(studio, client, cancer_task):
    session = start_long_session(studio, client, cancer_task)

    client.call("POST", f"/api/sessions/{session}/abort/")
    done = client.wait(session, timeout=60)

    assert done["status"] == "aborted"
    assert done["final_metrics"] in (None, {})
    deadline = time.time() + 10
    while runner_pids(studio.data_dir, session) and time.time() < deadline:
        time.sleep(0.2)
    assert runner_pids(studio.data_dir, session) == []


def test_syntax_error_fails_the_session_naming_tab_and_line(studio, client, cancer_task):
    mltask = cancer_task["mltask"]["id"]
    code = "import keras\n\ndef build_model(input_shapes, n_classes)\n    return None\n"
    client.patch(mltask, architecture_code=code, training={"epochs": 1, "batch_size": 32})
    session = client.train(mltask)
    done = client.wait(session, timeout=120)
    try:
        assert done["status"] == "failed"
        assert done["error"]["tab"] == "architecture"
        assert done["error"]["line"] == 3
        assert "SyntaxError" in done["error"]["message"] or "syntax" in done["error"]["message"].lower()
    finally:
        restore_default_code(client, cancer_task)


def test_exception_in_build_model_names_the_line(studio, client, cancer_task):
    mltask = cancer_task["mltask"]["id"]
    code = (
        "import keras\n\n"
        "def build_model(input_shapes, n_classes):\n"
        "    inputs = keras.Input(shape=input_shapes['main'], name='main')\n"
        "    raise ValueError('no architecture yet')\n\n"
        "def compile_model(model):\n"
        "    return model\n"
    )
    client.patch(mltask, architecture_code=code, training={"epochs": 1, "batch_size": 32})
    session = client.train(mltask)
    done = client.wait(session, timeout=120)
    try:
        assert done["status"] == "failed"
        assert done["error"]["phase"] == "build_model"
        assert (done["error"]["tab"], done["error"]["line"]) == ("architecture", 5)
        assert "no architecture yet" in done["error"]["message"]
    finally:
        restore_default_code(client, cancer_task)


def restore_default_code(client, cancer_task) -> None:
    client.patch(cancer_task["mltask"]["id"], architecture_code=cancer_task["mltask"]["architecture_code"])


def test_sessions_asking_for_gpus_go_only_to_gpu_workers(studio, client, cancer_task):
    """No GPU here: the worker says so, and a session asking for one never lands on it."""
    online = [worker for worker in client.call("GET", "/api/workers/") if worker["online"]]
    assert online and all(worker["gpus"] == [] and worker["queues"] == ["training"] for worker in online)
    mltask = cancer_task["mltask"]["id"]
    client.patch(mltask, training={"epochs": 1, "batch_size": 64, "runtime": {"gpus": 1}})
    gpu_session = client.train(mltask)
    try:
        if studio.mode == "distributed":  # routed to training.gpu, which no worker here consumes
            client.patch(mltask, training={"runtime": {"gpus": 0}})
            cpu_session = client.train(mltask)
            assert client.wait(cpu_session, timeout=180)["status"] == "succeeded"
            assert client.call("GET", f"/api/sessions/{gpu_session}/")["status"] == "queued"
            client.call("POST", f"/api/sessions/{gpu_session}/abort/")
        else:  # one worker, and it has no GPU: the session fails saying so
            done = client.wait(gpu_session, timeout=60)
            assert done["status"] == "failed"
            assert "asks for 1 GPU; this worker has 0" in done["error"]["message"]
    finally:
        client.patch(mltask, training={"runtime": {"gpus": "auto"}})


def test_runner_dies_with_its_worker_and_the_session_is_marked_lost(studio, client, cancer_task):
    if studio.mode != "distributed":
        pytest.skip("in embedded mode the worker is the web server itself")
    session = start_long_session(studio, client, cancer_task)
    # The runner and, around it, the sandbox's processes (bwrap, setpriv) carry its command line:
    # the worker's child is the one parent outside them.
    pids = runner_pids(studio.data_dir, session)
    parents = {int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) for pid in pids}
    (worker_child,) = parents - set(pids)

    killed_at = time.time()
    os.kill(worker_child, signal.SIGKILL)  # the Celery child supervising the session dies

    deadline = time.time() + 15
    while runner_pids(studio.data_dir, session) and time.time() < deadline:
        time.sleep(0.2)
    assert runner_pids(studio.data_dir, session) == [], "the runner outlived its worker"
    done = client.wait(session, timeout=90)
    assert done["status"] == "failed"
    assert "Worker lost" in done["error"]["message"]
    # The heartbeat and the reaper. Killed mid-epoch, main process, whole process group, epochs
    # kept, the next session: tests/journey/test_faults.py.
    assert time.time() - killed_at < 30, "not marked lost within 30 s"
