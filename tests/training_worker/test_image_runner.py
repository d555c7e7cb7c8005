"""The real runner training on scikit-learn's digits stored as PNG files, as an image dataset is.

The work dir is laid out as prepare_workdir leaves it: the index as dataset.parquet, the images'
folder linked as ``images`` and ``job.json`` saying so (``dataset.images``).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.digits_images import digits, png
from tests.training_worker.conftest import RunResult, run_runner
from training_worker.defaults import default_architecture_code

CUSTOM_CODE = """\
import tensorflow as tf


def preprocess_image(path):
    pixels = tf.io.decode_png(tf.io.read_file(path), channels=1).numpy()
    return pixels[:, :, 0] / 255.0  # (8, 8): the default Architecture flattens it
"""

RUNS: dict[str, dict[str, Any]] = {
    "default_loader": {
        "handling": {"loader": "default", "height": 8, "width": 8, "channels": 1, "scale": True},
        "preprocessing_code": "",
    },
    "custom_loader": {"handling": {"loader": "custom"}, "preprocessing_code": CUSTOM_CODE},
}


def write_image_job(workdir: Path, images_dir: Path, handling: dict, preprocessing_code: str) -> None:
    _, labels = digits()
    workdir.mkdir(parents=True)
    (workdir / "output").mkdir()
    (workdir / "images").symlink_to(images_dir, target_is_directory=True)
    images = [f"{label}/{n}.png" for n, label in enumerate(labels)]
    frame = pd.DataFrame({"image": images, "label": labels.astype(str)})
    frame.to_parquet(workdir / "dataset.parquet", index=False)
    job = {
        "session_id": 1,
        "dataset": {"path": "dataset.parquet", "format": "parquet", "images": "images"},
        "target": "label",
        "prediction_type": "multiclass",
        "classes": [str(n) for n in range(10)],
        "features": [
            {"name": "image", "role": "input", "type": "image", "handling": handling, "input": "image"}
        ],
        "split": {"train_ratio": 0.8, "seed": 1337, "stratify": True},
        "architecture_code": default_architecture_code("multiclass"),
        "preprocessing_code": preprocessing_code,
        "training": {"mode": "standard", "epochs": 12, "batch_size": 32},
        "seed": 1337,
        "train_metrics_sample": 10_000,
    }
    (workdir / "job.json").write_text(json.dumps(job))


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    base = tmp_path_factory.mktemp("image_runs")
    images_dir = base / "stored-images"
    images, labels = digits()
    for n, (image, label) in enumerate(zip(images, labels, strict=True)):
        (images_dir / str(label)).mkdir(parents=True, exist_ok=True)
        (images_dir / str(label) / f"{n}.png").write_bytes(png(image))
    for name, spec in RUNS.items():
        write_image_job(base / name, images_dir, spec["handling"], spec["preprocessing_code"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_runner, base / name) for name in RUNS}
        return {name: future.result() for name, future in futures.items()}


def test_default_loader_trains_on_grayscale_digits(image_runs):
    run = image_runs["default_loader"]
    done = run.done
    assert done["status"] == "succeeded", done["error"] or run.logs
    model = run.of_type("model")[0]
    assert model["input_shapes"] == {"image": [8, 8, 1]}
    assert done["final_metrics"]["Test Accuracy"] > 0.8


def test_custom_preprocess_image_trains(image_runs):
    run = image_runs["custom_loader"]
    done = run.done
    assert done["status"] == "succeeded", done["error"] or run.logs
    assert run.of_type("model")[0]["input_shapes"] == {"image": [8, 8]}
    assert done["final_metrics"]["Test Accuracy"] > 0.8


def test_a_row_without_an_image_gets_zeros(tmp_path: Path) -> None:
    from training_worker.preprocessing import ImageLoader

    images, _ = digits()
    (tmp_path / "a.png").write_bytes(png(images[0]))
    loader = ImageLoader("scan", height=8, width=8, channels=1).fit(None)
    arrays = loader.transform(pd.Series([str(tmp_path / "a.png"), None, float("nan")]))
    assert arrays.shape == (3, 8, 8, 1)
    assert arrays[0].max() > 0 and not arrays[1:].any()
