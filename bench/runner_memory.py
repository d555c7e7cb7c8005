"""Peak resident memory of a runner training on N rows × 20 numeric columns, against the arrays' size.

Writes a work dir as the supervisor leaves it (the dataset as Parquet, job.json: 19 numeric inputs
standard-scaled, a regression target, the default architecture, one epoch), runs the real runner
(``python -m training_worker.runner``, as the sandbox does) and prints its peak RSS (the child's
``ru_maxrss``) next to the size of the float32 model inputs (N × 19 × 4 bytes) plus the target.

    .venv/bin/python -m bench.runner_memory [--rows 5000000] [--epochs 1] [--batch-size 4096]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tests.training_worker.conftest import run_runner
from training_worker.defaults import default_architecture_code

COLUMNS = 20


def write_workdir(workdir: Path, rows: int, epochs: int, batch_size: int) -> None:
    rng = np.random.default_rng(11)
    (workdir / "output").mkdir(parents=True)
    frame = pd.DataFrame({f"x{i}": rng.normal(i, 1, rows).astype("float64") for i in range(COLUMNS - 1)})
    frame["target"] = frame.sum(axis=1) + rng.normal(0, 1, rows)
    frame.to_parquet(workdir / "dataset.parquet", index=False)
    del frame
    features = [
        {
            "name": f"x{i}",
            "role": "input",
            "type": "numeric",
            "handling": {"rescaling": "standard", "missing": "mean"},
            "input": "main",
        }
        for i in range(COLUMNS - 1)
    ]
    job = {
        "session_id": 1,
        "dataset": {"path": "dataset.parquet", "format": "parquet"},
        "target": "target",
        "prediction_type": "regression",
        "classes": None,
        "features": features,
        "split": {"mode": "random", "train_ratio": 0.8, "seed": 1337, "stratify": True},
        "architecture_code": default_architecture_code("regression"),
        "training": {"mode": "standard", "epochs": epochs, "batch_size": batch_size},
        "seed": 1337,
        "train_metrics_sample": 10_000,
    }
    (workdir / "job.json").write_text(json.dumps(job, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4096)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as scratch:
        workdir = Path(scratch) / "work"
        write_workdir(workdir, args.rows, args.epochs, args.batch_size)
        size = (workdir / "dataset.parquet").stat().st_size
        started = time.perf_counter()
        marks: list[tuple[str, float]] = []

        def on_event(event: dict, process: object) -> None:
            if event.get("type") == "status" and event.get("phase"):
                marks.append((event["phase"], time.perf_counter()))

        result = run_runner(workdir, on_event)
        seconds = time.perf_counter() - started
        if result.done["status"] != "succeeded":
            log = (workdir / "runner.log").read_text()
            raise SystemExit(f"the run did not succeed: {result.done}\n{log}")
        ends = [t for _, t in marks[1:]] + [started + seconds]
        phases = {name: round(end - t, 1) for (name, t), end in zip(marks, ends, strict=True)}
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    arrays = args.rows * (COLUMNS - 1) * 4 / 2**20
    target = args.rows * 4 / 2**20
    print(f"{args.rows:,} rows × {COLUMNS} columns (Parquet {size / 2**20:.0f} MB), {args.epochs} epoch(s)")
    print(f"runner wall time: {seconds:.1f} s; phases: {phases}")
    print(f"float32 model inputs: {arrays:.0f} MB (+ target {target:.0f} MB)")
    print(f"runner peak RSS: {peak:.0f} MB = {peak / (arrays + target):.1f}x the float32 arrays")


if __name__ == "__main__":
    main()
