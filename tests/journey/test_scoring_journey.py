"""Scoring and export on real processes: one tiny binary session (breast cancer, 2 epochs) trained
once, then predict, batch scoring and the export bundle, each checked against the session's own
``predictions.csv`` (the in-platform evaluation of its test rows), and the bad inputs each refused
with a message naming the column. Runs in both modes, as every journey test (see conftest.py)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.live import ApiError, Client, breast_cancer_csv

FEATURE_DROPPED = ["mean radius", "worst area"]
PROBAS = ["proba_benign", "proba_malignant"]


@pytest.fixture(scope="module")
def cancer_frame() -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(breast_cancer_csv()))


@pytest.fixture(scope="module")
def trained(studio, client, cancer_task, cancer_frame) -> dict:
    """The session (trained once for the module), its predictions.csv, and two more datasets of the
    project: the same rows without the target plus an extra column, and one lacking two inputs."""
    mltask = cancer_task["mltask"]["id"]
    client.patch(mltask, training={"epochs": 2, "batch_size": 32})
    session = client.train(mltask)
    state = client.wait(session, timeout=240)
    assert state["status"] == "succeeded", state["error"]
    predictions = pd.read_csv(studio.data_dir / "sessions" / str(session) / "output" / "predictions.csv")
    project = cancer_task["project"]
    unlabeled = cancer_frame.drop(columns=["target"]).assign(
        batch=[f"b{i % 3}" for i in range(len(cancer_frame))]
    )
    other = client.upload(project, "unlabeled.csv", unlabeled.to_csv(index=False).encode(), name="unlabeled")
    lacking = client.upload(
        project,
        "lacking.csv",
        unlabeled.drop(columns=FEATURE_DROPPED).to_csv(index=False).encode(),
        name="lacking",
    )
    return {"session": session, "predictions": predictions, "other": other, "lacking": lacking}


def assert_same_predictions(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Row for row: the same predicted class, the same probabilities (float32 model output)."""
    assert len(actual) == len(expected) > 0
    assert list(actual["prediction"].astype(str)) == list(expected["prediction"].astype(str))
    for column in PROBAS:
        np.testing.assert_allclose(
            actual[column].to_numpy(float), expected[column].to_numpy(float), atol=1e-5
        )


def test_predict_round_trips_with_the_sessions_own_predictions(client, trained, cancer_frame):
    expected = trained["predictions"]
    # The session's test rows, target included: a column the model knows is accepted and ignored.
    rows = cancer_frame.iloc[expected["row"]].to_dict(orient="records")
    answer = client.call("POST", f"/api/sessions/{trained['session']}/predict/", json={"rows": rows})
    assert answer["classes"] == ["benign", "malignant"] and len(answer["predictions"]) == len(rows)
    first = answer["predictions"][0]
    assert set(first) == {"prediction", "probabilities"} and set(first["probabilities"]) == {
        "benign",
        "malignant",
    }
    actual = pd.DataFrame(
        {
            "prediction": [p["prediction"] for p in answer["predictions"]],
            **{
                f"proba_{label}": [p["probabilities"][label] for p in answer["predictions"]]
                for label in ("benign", "malignant")
            },
        }
    )
    assert_same_predictions(actual, expected)


def test_predict_refuses_rows_naming_the_column(client, trained, cancer_frame):
    url = f"/api/sessions/{trained['session']}/predict/"
    good = cancer_frame.drop(columns=["target"]).iloc[0].to_dict()

    def refused(rows) -> dict:
        response = client.request("POST", url, json={"rows": rows})
        assert response.status_code == 400, response.text
        return response.json()

    missing = refused([good, {k: v for k, v in good.items() if k != "mean texture"}])
    assert "'mean texture' is missing" in missing["error"] and "rows[1]" in missing["error"]
    assert (missing["column"], missing["row"]) == ("mean texture", 1)
    unknown = refused([{**good, "mean radus": 1.0}])
    assert "'mean radus' is unknown" in unknown["error"] and unknown["column"] == "mean radus"
    wrong = refused([good, good, {**good, "mean area": "large"}])
    assert (wrong["column"], wrong["row"]) == ("mean area", 2) and "needs a number" in wrong["error"]
    too_many = refused([good] * 10_001)
    assert "10,000" in too_many["error"]


def test_scoring_a_dataset_lacking_inputs_is_refused_listing_them(client, trained):
    response = client.request(
        "POST", f"/api/sessions/{trained['session']}/score/", json={"dataset": trained["lacking"]["id"]}
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert sorted(body["missing_columns"]) == sorted(FEATURE_DROPPED)
    assert all(repr(name) in body["error"] for name in FEATURE_DROPPED)


def test_batch_scoring_makes_a_dataset_that_round_trips(client, trained, cancer_frame):
    other = trained["other"]
    job = client.call("POST", f"/api/sessions/{trained['session']}/score/", json={"dataset": other["id"]})
    assert job["status"] == "queued" and job["rows_total"] == len(cancer_frame)
    deadline = time.time() + 180
    while job["status"] not in ("succeeded", "failed"):
        assert time.time() < deadline, f"scoring job still {job['status']}"
        time.sleep(0.5)
        job = client.call("GET", f"/api/scoring/{job['id']}/")
    assert job["status"] == "succeeded", job["error"]
    assert job["rows_done"] == job["rows_total"] == len(cancer_frame)
    result = client.call("GET", f"/api/datasets/{job['result_dataset']}/")
    assert result["name"] == f"unlabeled scored by session {trained['session']}"
    assert result["rows"] == len(cancer_frame)
    names = [column["name"] for column in result["columns"]]
    assert names == [c for c in cancer_frame.columns if c != "target"] + ["batch", "prediction", *PROBAS]
    types = {column["name"]: column["type"] for column in result["columns"]}
    assert types["prediction"] == "categorical" and types["proba_benign"] == "numeric"

    download = client.request("GET", job["download_url"])
    assert download.status_code == 200 and download.headers["Content-Type"].startswith("text/csv")
    scored = pd.read_csv(io.BytesIO(download.content))
    assert list(scored.columns) == names and len(scored) == len(cancer_frame)
    np.testing.assert_allclose(scored["mean radius"], cancer_frame["mean radius"])  # inputs kept as they were
    expected = trained["predictions"]
    assert_same_predictions(scored.iloc[expected["row"]].reset_index(drop=True), expected)


def test_export_bundle_predicts_outside_the_platform(client, trained, cancer_frame, tmp_path: Path):
    response = client.request("GET", f"/api/sessions/{trained['session']}/export/")
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        names = set(bundle.namelist())
        bundle.extractall(tmp_path)
    folder = tmp_path / f"session-{trained['session']}"
    for name in (
        "model.keras",
        "preprocessing.joblib",
        "architecture.py",
        "predict.py",
        "requirements.txt",
        "README.txt",
    ):
        assert f"session-{trained['session']}/{name}" in names
    assert "keras==" in (folder / "requirements.txt").read_text()
    expected = trained["predictions"]
    cancer_frame.iloc[expected["row"]].to_csv(folder / "rows.csv", index=False)
    # Isolated: no PYTHONPATH, no repository on the path, the bundle's folder as working directory.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    done = subprocess.run(
        [sys.executable, "-I", "predict.py", "rows.csv", "out.csv"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_predictions(pd.read_csv(folder / "out.csv"), expected)


def test_outsiders_get_404_and_viewers_cannot_score(studio, client, trained, cancer_task):
    name = f"outsider-{uuid.uuid4().hex[:6]}"
    password = "Outsider-Passw0rd!"
    client.call("POST", "/api/users/", json={"username": name, "password": password})
    outsider = Client(studio.base, name, password)
    session = trained["session"]
    job = client.call("GET", f"/api/sessions/{session}/scoring/")["jobs"][0]
    for method, path, body in (
        ("POST", f"/api/sessions/{session}/predict/", {"rows": [{"mean radius": 1}]}),
        ("POST", f"/api/sessions/{session}/score/", {"dataset": trained["other"]["id"]}),
        ("GET", f"/api/sessions/{session}/scoring/", None),
        ("GET", f"/api/scoring/{job['id']}/", None),
        ("GET", f"/api/sessions/{session}/export/", None),
        ("GET", f"/api/datasets/{job['result_dataset']}/download/", None),
    ):
        response = outsider.request(method, path, json=body)
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
    client.call(
        "POST", f"/api/projects/{cancer_task['project']}/members/", json={"username": name, "role": "viewer"}
    )
    assert outsider.call("GET", f"/api/scoring/{job['id']}/")["status"] == "succeeded"
    with pytest.raises(ApiError, match="403"):
        outsider.call("POST", f"/api/sessions/{session}/score/", json={"dataset": trained["other"]["id"]})


def test_regression_predictions_are_in_the_targets_units(studio, client):
    """Diabetes progression (target rescaled for training): predict answers in the target's units,
    as the session's predictions.csv, and gives no probabilities."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    project = client.call("POST", "/api/projects/", json={"name": "regression"})["id"]
    dataset = client.upload(project, "diabetes.csv", frame.to_csv(index=False).encode(), name="diabetes")
    mltask = client.mltask(project, dataset["id"], "target", prediction_type="regression")["id"]
    client.patch(mltask, training={"epochs": 2, "batch_size": 32})
    session = client.train(mltask)
    state = client.wait(session, timeout=240)
    assert state["status"] == "succeeded", state["error"]
    expected = pd.read_csv(studio.data_dir / "sessions" / str(session) / "output" / "predictions.csv")
    rows = frame.drop(columns=["target"]).iloc[expected["row"]].to_dict(orient="records")
    answer = client.call("POST", f"/api/sessions/{session}/predict/", json={"rows": rows})
    assert answer["classes"] is None and all(set(p) == {"prediction"} for p in answer["predictions"])
    predicted = np.array([p["prediction"] for p in answer["predictions"]])
    assert predicted.std() > 0 and abs(predicted.mean() - frame["target"].mean()) < frame["target"].std()
    np.testing.assert_allclose(predicted, expected["prediction"], rtol=1e-4, atol=1e-3)
