"""Epoch time of a DL Studio session ÷ bare `model.fit(..., validation_data=...)`, same run.

Same data, preprocessing, model code (the default Architecture), batch size and epochs on both
sides; the session's epoch time includes what the platform adds per epoch (the Train/Test metric
list, progress and epoch events). The first epoch (graph tracing) is left out of both medians.

    .venv/bin/python -m bench.epoch_overhead [--rows 100000] [--epochs 4] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tests.live import Client, embedded_studio


def make_csv(path: Path, rows: int, columns: int, seed: int = 7) -> None:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=columns, n_informative=columns // 2, random_state=seed
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(columns)])
    frame["label"] = np.where(y == 1, "yes", "no")
    frame.to_csv(path, index=False)


def bare_keras_epochs(csv: Path, epochs: int, batch_size: int) -> list[float]:
    """What a user would write by hand: fit with validation_data, nothing else."""
    import keras

    from training_worker.defaults import default_architecture_code, default_feature_handling
    from training_worker.preprocessing import Preprocessing, read_dataset, split_train_test

    columns = pd.read_csv(csv, nrows=1).columns
    features = [
        {
            "name": c,
            "role": "input",
            "type": "numeric",
            "handling": default_feature_handling("numeric"),
            "input": "main",
        }
        for c in columns
        if c != "label"
    ]
    frame = read_dataset(csv, features, "label", "binary")
    train, test = split_train_test(frame, "label", "binary", {"train_ratio": 0.8, "seed": 1337})
    prep = Preprocessing.fit(train, features, "label", "binary", ["no", "yes"])
    namespace: dict = {"keras": keras, "np": np}
    exec(default_architecture_code("binary"), namespace)  # noqa: S102 - our own default code
    keras.utils.set_random_seed(1337)
    model = namespace["compile_model"](namespace["build_model"](prep.input_shapes, prep.n_classes))

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    timer = EpochTimer()
    model.fit(
        prep.transform(train)["main"],
        prep.encode_target(train["label"]),
        validation_data=(prep.transform(test)["main"], prep.encode_target(test["label"])),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=[timer],
    )
    return timer.seconds


def session_epochs(csv: Path, epochs: int, batch_size: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as data, embedded_studio(Path(data)) as studio:
        client = Client(studio.base)
        project = client.call("POST", "/api/projects/", json={"name": "bench"})["id"]
        dataset = client.upload(project, csv.name, csv.read_bytes())
        mltask = client.mltask(project, dataset["id"], "label")
        client.patch(mltask["id"], training={"epochs": epochs, "batch_size": batch_size})
        done = client.wait(client.train(mltask["id"]), timeout=1800)
        if done["status"] != "succeeded":
            raise SystemExit(f"session ended {done['status']}: {done['error']}")
        return [epoch["seconds"] for epoch in done["metrics"]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        csv = Path(scratch) / "classification.csv"
        make_csv(csv, args.rows, args.columns)
        bare = bare_keras_epochs(csv, args.epochs, args.batch_size)
        session = session_epochs(csv, args.epochs, args.batch_size)
    bare_median, session_median = statistics.median(bare[1:]), statistics.median(session[1:])
    print(f"rows={args.rows} columns={args.columns} epochs={args.epochs} batch_size={args.batch_size}")
    print(f"bare keras fit(validation_data) epoch: {bare_median:.3f} s  (all: {[round(s, 3) for s in bare]})")
    every_session_epoch = [round(s, 3) for s in session]
    print(f"DL Studio session epoch:              {session_median:.3f} s  (all: {every_session_epoch})")
    print(f"ratio session / bare: {session_median / bare_median:.2f}x  (goal ≤ 1.10x)")


if __name__ == "__main__":
    main()
