"""The model report (``GET /api/sessions/{id}/report/``) checked against scikit-learn on the same
known predictions: a session row with a ``predictions.csv`` written where the runner writes it."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from analyses.models import Analysis, MLTask, Session
from analyses.report_curves import THRESHOLDS
from training_worker.metrics import cost_matrix_gain, cumulative_lift

pytestmark = pytest.mark.django_db

BINARY_CLASSES = ["healthy", "sick"]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


@pytest.fixture
def data_dir(settings, tmp_path) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def make_session(
    dataset,
    users,
    data_dir: Path,
    predictions: pd.DataFrame | None,
    targets: list[dict],
    metric: str,
    status: str = "succeeded",
    metrics_settings: dict | None = None,
    **fields,
) -> Session:
    """A session row as the supervisor leaves it, its predictions.csv where the runner writes it."""
    analysis = Analysis.objects.create(project=dataset.project, dataset=dataset, name="report")
    first = targets[0]
    training = {"mode": "standard", "epochs": 3, "batch_size": 32, "code": "# unused in standard mode"}
    if metrics_settings is not None:
        training["metrics"] = metrics_settings
    design = {
        "target": first["name"],
        "prediction_type": first["prediction_type"],
        "classes": first.get("classes"),
        "targets": targets,
        "features": [],
        "split": {"mode": "random", "seed": 4242, "train_ratio": 0.8},
        "architecture_code": "def build_model(input_shapes, n_classes):\n    ...\n",
        "preprocessing_code": "",
        "training": training,
        "metric": metric,
        "version": 7,
    }
    mltask = MLTask.objects.create(
        analysis=analysis,
        target=first["name"],
        prediction_type=first["prediction_type"],
        classes=first.get("classes"),
        extra_targets=targets[1:],
        architecture_code=design["architecture_code"],
        metric=metric,
    )
    session = Session.objects.create(
        mltask=mltask, design=design, created_by=users["editor"], status=status, **fields
    )
    if predictions is not None:
        output = data_dir / "sessions" / str(session.pk) / "output"
        output.mkdir(parents=True)
        predictions.to_csv(output / "predictions.csv", index=False)
        session.artifacts = {"predictions": f"sessions/{session.pk}/output/predictions.csv"}
        session.save(update_fields=["artifacts"])
    return session


def binary_predictions(rows: int = 2000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=rows) < 0.35).astype(int)
    probability = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    probability[:40] = 0.5  # rows exactly at a threshold: predicted positive (>=), as the runner does
    probability[40:60] = np.round(probability[40:60], 2)
    labels = np.asarray(BINARY_CLASSES, dtype=object)
    frame = pd.DataFrame(
        {
            "row": np.arange(rows),
            "actual": labels[y],
            "prediction": labels[(probability >= 0.5).astype(int)],
            "proba_healthy": 1 - probability,
            "proba_sick": probability,
        }
    )
    return y, probability, frame


def reread(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The column as the report reads it back from the CSV (what sklearn must be given too)."""
    return pd.to_numeric(pd.read_csv(pd.io.common.StringIO(frame.to_csv(index=False)))[column]).to_numpy()


def get_report(client, session: Session) -> dict:
    response = client.get(f"/api/sessions/{session.pk}/report/")
    assert response.status_code == 200, response.content
    return response.json()


BINARY = [{"name": "status", "prediction_type": "binary", "classes": BINARY_CLASSES}]


def test_binary_report_matches_scikit_learn(dataset, users, clients, data_dir) -> None:
    y, _, frame = binary_predictions()
    probability = reread(frame, "proba_sick")
    session = make_session(dataset, users, data_dir, frame, BINARY, "F1 Score")

    report = get_report(clients["viewer"], session)

    section = report["targets"][0]
    assert (section["target"], section["prediction_type"], section["dropped_rows"]) == ("status", "binary", 0)
    binary = section["binary"]
    assert binary["positive_class"] == "sick" and binary["thresholds"] == THRESHOLDS
    counts = binary["counts"]
    for index, threshold in enumerate(THRESHOLDS):
        tn, fp, fn, tp = skm.confusion_matrix(y, probability >= threshold, labels=[0, 1]).ravel()
        assert (counts["tp"][index], counts["fp"][index], counts["tn"][index], counts["fn"][index]) == (
            tp,
            fp,
            tn,
            fn,
        ), f"threshold {threshold}"

    f1 = [skm.f1_score(y, probability >= t, zero_division=0) for t in THRESHOLDS]
    best = binary["best_threshold"]
    assert best["metric"] == "F1 Score" and "optimization metric" in best["reason"]
    assert best["value"] == pytest.approx(max(f1))
    assert f1[THRESHOLDS.index(best["threshold"])] == pytest.approx(max(f1))

    assert binary["roc"]["auc"] == pytest.approx(skm.roc_auc_score(y, probability))
    fpr, tpr, _ = skm.roc_curve(y, probability)
    assert len(fpr) > 300 >= len(binary["roc"]["fpr"])  # downsampled, ends kept
    on_curve = {(round(a, 6), round(b, 6)) for a, b in zip(fpr, tpr, strict=True)}
    assert all((a, b) in on_curve for a, b in zip(binary["roc"]["fpr"], binary["roc"]["tpr"], strict=True))
    assert (binary["roc"]["fpr"][0], binary["roc"]["fpr"][-1], binary["roc"]["tpr"][-1]) == (0, 1, 1)

    assert binary["pr"]["average_precision"] == pytest.approx(skm.average_precision_score(y, probability))
    assert binary["pr"]["recall"] == sorted(binary["pr"]["recall"])
    assert binary["pr"]["baseline"] == pytest.approx(y.mean())

    lift = binary["lift"]
    assert lift["at_fraction"] == pytest.approx(cumulative_lift(y, probability, 0.4))
    assert lift["lift"][lift["fractions"].index(0.4)] == pytest.approx(cumulative_lift(y, probability, 0.4))
    assert lift["lift"][-1] == pytest.approx(1.0) and lift["gain"][-1] == pytest.approx(1.0)

    density = binary["density"]
    assert len(density["centers"]) == 40
    for index, series in enumerate(density["classes"]):
        expected, _ = np.histogram(probability[y == index], bins=np.linspace(0, 1, 41))
        assert series["counts"] == expected.tolist() and series["rows"] == int((y == index).sum())
        assert sum(series["density"]) / 40 == pytest.approx(1.0)


def test_the_best_threshold_maximises_the_cost_matrix_gain(dataset, users, clients, data_dir) -> None:
    y, _, frame = binary_predictions(rows=600, seed=11)
    probability = reread(frame, "proba_sick")
    matrix = {"tp": 5.0, "tn": 0.0, "fp": -1.0, "fn": -2.0}
    # ROC AUC ignores the threshold: the ML task's own cost matrix decides where to cut.
    settings = {"cost_matrix": matrix, "lift_fraction": 0.2, "custom_score": False}
    session = make_session(dataset, users, data_dir, frame, BINARY, "ROC AUC", metrics_settings=settings)

    binary = get_report(clients["viewer"], session)["targets"][0]["binary"]

    gains = [cost_matrix_gain(y, (probability >= t).astype(int), matrix) for t in THRESHOLDS]
    best = binary["best_threshold"]
    assert best["metric"] == "Cost Matrix Gain" and "cost matrix" in best["reason"]
    assert best["value"] == pytest.approx(max(gains))
    assert (
        gains[best["index"]] == pytest.approx(max(gains)) and THRESHOLDS[best["index"]] == best["threshold"]
    )
    assert best["threshold"] != 0.5  # the gains above make a lower threshold worth it
    assert binary["lift"]["at_fraction"] == pytest.approx(cumulative_lift(y, probability, 0.2))


def test_multiclass_report_matches_scikit_learn(dataset, users, clients, data_dir) -> None:
    rng = np.random.default_rng(5)
    rows = 900
    y = rng.integers(0, 3, size=rows)
    logits = rng.normal(size=(rows, 3)) + 1.5 * np.eye(3)[y]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.asarray(IRIS_CLASSES, dtype=object)
    frame = pd.DataFrame(
        {"row": np.arange(rows), "actual": labels[y], "prediction": labels[probabilities.argmax(1)]}
    )
    for index, label in enumerate(IRIS_CLASSES):
        frame[f"proba_{label}"] = probabilities[:, index]
    targets = [{"name": "species", "prediction_type": "multiclass", "classes": IRIS_CLASSES}]
    session = make_session(dataset, users, data_dir, frame, targets, "Accuracy")

    multiclass = get_report(clients["viewer"], session)["targets"][0]["multiclass"]

    reread_probabilities = np.column_stack([reread(frame, f"proba_{label}") for label in IRIS_CLASSES])
    assert multiclass["classes"] == IRIS_CLASSES
    assert (
        multiclass["confusion"] == skm.confusion_matrix(y, probabilities.argmax(1), labels=[0, 1, 2]).tolist()
    )
    for index, per_class in enumerate(multiclass["per_class"]):
        assert per_class["class"] == IRIS_CLASSES[index]
        expected = skm.roc_auc_score(y == index, reread_probabilities[:, index])
        assert per_class["roc"]["auc"] == pytest.approx(expected)
        assert per_class["support"] == int((y == index).sum())
    assert multiclass["macro_auc"] == pytest.approx(
        skm.roc_auc_score(y, reread_probabilities, multi_class="ovr", average="macro")
    )


def test_regression_report_matches_scikit_learn(dataset, users, clients, data_dir) -> None:
    rng = np.random.default_rng(8)
    rows = 5000
    actual = rng.normal(50, 10, size=rows)
    predicted = actual + rng.normal(0, 2 + 0.1 * np.abs(actual - 50), size=rows)
    frame = pd.DataFrame({"row": np.arange(rows), "actual": actual, "prediction": predicted})
    targets = [{"name": "price", "prediction_type": "regression", "classes": None}]
    session = make_session(dataset, users, data_dir, frame, targets, "R2 Score")

    regression = get_report(clients["viewer"], session)["targets"][0]["regression"]

    actual, predicted = reread(frame, "actual"), reread(frame, "prediction")
    scatter = regression["scatter"]
    assert scatter["sampled"] and len(scatter["actual"]) == 2000
    pairs = {(round(a, 6), round(p, 6)) for a, p in zip(actual, predicted, strict=True)}
    assert all((a, p) in pairs for a, p in zip(scatter["actual"], scatter["predicted"], strict=True))
    assert scatter["actual"] == sorted(scatter["actual"])

    errors = predicted - actual
    counts, edges = np.histogram(errors, bins=40)
    assert regression["residuals"]["counts"] == counts.tolist()
    assert regression["residuals"]["edges"] == pytest.approx(edges.tolist(), abs=1e-6)
    assert regression["mae"] == pytest.approx(skm.mean_absolute_error(actual, predicted))

    decile = pd.qcut(actual, 10, labels=False)  # 500 rows each: the values are all distinct
    assert [d["rows"] for d in regression["deciles"]] == [500] * 10
    for number, row in enumerate(regression["deciles"]):
        inside = decile == number
        assert row["mae"] == pytest.approx(skm.mean_absolute_error(actual[inside], predicted[inside]))
        assert row["mean_error"] == pytest.approx(np.mean(predicted[inside] - actual[inside]))
        assert row["actual_min"] == pytest.approx(actual[inside].min())
    # The same seeded sample every time: the report is deterministic.
    assert get_report(clients["viewer"], session)["targets"][0]["regression"] == regression


def test_multi_output_has_one_section_per_target_and_a_metrics_row_per_target(
    dataset, users, clients, data_dir
) -> None:
    y, probability, binary_frame = binary_predictions(rows=300)
    frame = pd.DataFrame(
        {
            "row": binary_frame["row"],
            "actual (status)": binary_frame["actual"],
            "prediction (status)": binary_frame["prediction"],
            "proba_healthy (status)": binary_frame["proba_healthy"],
            "proba_sick (status)": binary_frame["proba_sick"],
            "actual (price)": np.arange(300.0),
            "prediction (price)": np.arange(300.0) + 1.5,
        }
    )
    targets = [*BINARY, {"name": "price", "prediction_type": "regression", "classes": None}]
    final = {"Train ROC AUC (status)": 0.9, "Test ROC AUC (status)": 0.8, "Test MAE (price)": 1.5}
    session = make_session(dataset, users, data_dir, frame, targets, "ROC AUC", final_metrics=final)

    report = get_report(clients["viewer"], session)

    assert report["multi_output"] and [s["target"] for s in report["targets"]] == ["status", "price"]
    status, price = report["targets"]
    assert status["binary"]["roc"]["auc"] == pytest.approx(skm.roc_auc_score(y, probability))
    assert price["regression"]["mae"] == pytest.approx(1.5)
    assert report["optimization_metric"]["log_name"] == "Test ROC AUC (status)"
    assert report["metrics"]["rows"] == [
        {"metric": "ROC AUC", "target": "status", "train": 0.9, "test": 0.8},
        {"metric": "MAE", "target": "price", "train": None, "test": 1.5},
    ]


def test_metrics_curves_model_and_provenance(dataset, users, clients, data_dir) -> None:
    _, _, frame = binary_predictions(rows=200)
    final = {"Train ROC AUC": 0.97, "Test ROC AUC": 0.91, "Test Accuracy": 0.88, "Train Accuracy": 0.9}
    kept = {"epoch": 2, "metric": "Test ROC AUC", "value": 0.91, "keep": "best"}
    session = make_session(
        dataset,
        users,
        data_dir,
        frame,
        BINARY,
        "ROC AUC",
        final_metrics=final,
        model_info={
            "summary": "Model: functional",
            "params": 97,
            "input_shapes": {"main": [4]},
            "kept": kept,
        },
        worker="worker-1",
    )
    for epoch, auc in ((1, 0.85), (2, 0.91), (3, 0.89)):
        session.epoch_metrics.create(epoch=epoch, seconds=1.0, values={"Test ROC AUC": auc, "loss": 0.5})
    output = data_dir / "sessions" / str(session.pk) / "output"
    graph = {
        "kind": "functional",
        "graph": True,
        "layers": [
            {"name": "main", "class": "InputLayer", "output_shape": "(None, 4)", "params": 0},
            {"name": "dense", "class": "Dense", "output_shape": "(None, 16)", "params": 80},
            {"name": "out", "class": "Dense", "output_shape": "(None, 1)", "params": 17},
        ],
        "edges": [["main", "dense"], ["dense", "out"], ["dense", "nowhere"]],
        "inputs": ["main"],
        "outputs": ["out"],
        "params": 97,
    }
    (output / "model_graph.json").write_text(json.dumps(graph))
    environment = {"versions": {"python": "3.11.2", "keras": "3.15.1"}, "device": "Keras backend tensorflow"}
    (output / "provenance.json").write_text(json.dumps(environment))

    report = get_report(clients["viewer"], session)

    assert report["metrics"]["rows"][:2] == [
        {"metric": "Accuracy", "target": None, "train": 0.9, "test": 0.88},
        {"metric": "ROC AUC", "target": None, "train": 0.97, "test": 0.91},
    ]
    assert report["learning_curves"]["kept"] == kept
    assert [e["epoch"] for e in report["learning_curves"]["epochs"]] == [1, 2, 3]
    model = report["model"]["graph"]
    assert [layer["name"] for layer in model["layers"]] == ["main", "dense", "out"]
    assert model["edges"] == [["main", "dense"], ["dense", "out"]]  # the dangling edge is dropped
    provenance = report["provenance"]
    assert provenance["code"]["architecture"].startswith("def build_model")
    assert provenance["code"]["training"] == ""  # standard mode: the Training tab's code is not used
    assert provenance["seed"] == 4242 and provenance["design_version"] == 7
    assert provenance["settings"]["metric"] == "ROC AUC" and "architecture_code" not in provenance["settings"]
    assert provenance["dataset"]["id"] == dataset.pk and provenance["dataset"]["name"] == "iris"
    assert provenance["environment"]["versions"] == {"python": "3.11.2", "keras": "3.15.1"}
    assert provenance["worker"] == "worker-1"


def test_the_report_is_cached_signed_and_a_forged_cache_is_ignored(dataset, users, clients, data_dir) -> None:
    y, _, frame = binary_predictions(rows=400)
    probability = reread(frame, "proba_sick")
    session = make_session(dataset, users, data_dir, frame, BINARY, "ROC AUC")
    first = get_report(clients["viewer"], session)
    cache = data_dir / "sessions" / str(session.pk) / "output" / "report.json"
    cached = json.loads(cache.read_text())
    assert cached["signature"] and cached["sections"] == first["targets"]

    # The runner (untrusted) could have left its own numbers there: without our signature, ignored.
    cached["sections"][0]["binary"]["roc"]["auc"] = 0.123
    cache.write_text(json.dumps(cached))
    again = get_report(clients["viewer"], session)
    assert again["targets"][0]["binary"]["roc"]["auc"] == pytest.approx(skm.roc_auc_score(y, probability))
    assert again == first


def test_no_predictions_yet_is_a_404_that_says_why(dataset, users, clients, data_dir) -> None:
    running = make_session(dataset, users, data_dir, None, BINARY, "ROC AUC", status="running")
    response = clients["viewer"].get(f"/api/sessions/{running.pk}/report/")
    assert response.status_code == 404
    assert "no predictions yet" in response.json()["error"] and "running" in response.json()["error"]

    missing = make_session(dataset, users, data_dir, None, BINARY, "ROC AUC")
    response = clients["viewer"].get(f"/api/sessions/{missing.pk}/report/")
    assert response.status_code == 404 and "no predictions yet" in response.json()["error"]

    failed = make_session(dataset, users, data_dir, None, BINARY, "ROC AUC", status="failed")
    response = clients["viewer"].get(f"/api/sessions/{failed.pk}/report/")
    assert response.status_code == 404 and "kept no model" in response.json()["error"]


def test_outsiders_get_404_and_members_get_the_report(dataset, users, clients, data_dir) -> None:
    _, _, frame = binary_predictions(rows=100)
    session = make_session(dataset, users, data_dir, frame, BINARY, "ROC AUC")
    outsider = clients["stranger"].get(f"/api/sessions/{session.pk}/report/")
    assert outsider.status_code == 404 and outsider.json() == {"error": "Not found."}
    assert clients["viewer"].get(f"/api/sessions/{session.pk}/report/").status_code == 200
    assert clients["owner"].get("/api/sessions/999999/report/").status_code == 404


def test_links_the_runner_left_are_not_followed(dataset, users, clients, data_dir, tmp_path) -> None:
    _, _, frame = binary_predictions(rows=100)
    session = make_session(dataset, users, data_dir, frame, BINARY, "ROC AUC")
    output = data_dir / "sessions" / str(session.pk) / "output"
    secret = tmp_path / "graph.json"
    secret.write_text(json.dumps({"layers": [{"name": "stolen"}]}))
    os.symlink(secret, output / "model_graph.json")
    assert get_report(clients["viewer"], session)["model"]["graph"] is None

    elsewhere = tmp_path / "elsewhere.csv"
    frame.to_csv(elsewhere, index=False)
    (output / "predictions.csv").unlink()
    os.symlink(elsewhere, output / "predictions.csv")
    response = clients["viewer"].get(f"/api/sessions/{session.pk}/report/")
    assert response.status_code == 404 and "no longer stored" in response.json()["error"]


def test_unusable_rows_are_dropped_and_counted(dataset, users, clients, data_dir) -> None:
    _, _, frame = binary_predictions(rows=100)
    frame.loc[0, "proba_sick"] = math.nan
    frame.loc[1, "actual"] = "unknown label"
    session = make_session(dataset, users, data_dir, frame, BINARY, "ROC AUC")
    section = get_report(clients["viewer"], session)["targets"][0]
    assert section["dropped_rows"] == 2 and section["binary"]["rows"] == 98
