"""Running the runner exactly as the supervising task does, on scikit-learn's bundled datasets.

Runner processes are slow to start (TensorFlow's import takes most of ten seconds), so the runs
several tests share are started together, two at a time, when the first of them is asked for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn import datasets

from training_worker.defaults import default_architecture_code
from training_worker.events import EVENT_FD_VARIABLE, parse_event

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_SECONDS = 180


def dataset_frame(name: str) -> tuple[pd.DataFrame, str, list[str] | None]:
    """(frame, prediction type, classes) with the target in column "target"."""
    if name == "breast_cancer":
        bunch = datasets.load_breast_cancer(as_frame=True)
        frame = bunch.frame.copy()
        # sklearn codes malignant as 0; the classes are the sorted labels, so malignant is classes[1].
        frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
        return frame, "binary", ["benign", "malignant"]
    if name == "iris":
        bunch = datasets.load_iris(as_frame=True)
        frame = bunch.frame.copy()
        frame["target"] = frame["target"].map(dict(enumerate(bunch.target_names)))
        return frame, "multiclass", sorted(bunch.target_names)
    if name == "diabetes":
        return datasets.load_diabetes(as_frame=True).frame, "regression", None
    raise ValueError(name)


def write_job(workdir: Path, dataset: str, data_format: str = "csv", **overrides: Any) -> dict[str, Any]:
    """A work dir as the supervisor prepares it: the dataset, job.json and an empty output/."""
    frame, prediction_type, classes = dataset_frame(dataset)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "output").mkdir(exist_ok=True)
    features = [
        {
            "name": column,
            "role": "input",
            "type": "numeric",
            "handling": {"rescaling": "standard", "missing": "mean"},
            "input": "main",
        }
        for column in frame.columns
        if column != "target"
    ]
    job: dict[str, Any] = {
        "session_id": 1,
        "dataset": {"path": f"dataset.{data_format}", "format": data_format},
        "target": "target",
        "prediction_type": prediction_type,
        "classes": classes,
        "features": features,
        "split": {"train_ratio": 0.8, "seed": 1337, "stratify": True},
        "architecture_code": default_architecture_code(prediction_type),
        "training": {"mode": "standard", "epochs": 3, "batch_size": 32},
        "seed": 1337,
        "train_metrics_sample": 10_000,
    } | overrides
    if job["dataset"]["format"] == "parquet":  # as the supervisor links a dataset stored since Parquet
        frame.to_parquet(workdir / job["dataset"]["path"], index=False)
    else:
        frame.to_csv(workdir / job["dataset"]["path"], index=False)
    (workdir / "job.json").write_text(json.dumps(job, indent=1))
    return job


@dataclass
class RunResult:
    workdir: Path
    returncode: int
    events: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == kind]

    @property
    def done(self) -> dict[str, Any]:
        (done,) = self.of_type("done")
        return done

    @property
    def phases(self) -> list[str]:
        return [event["phase"] for event in self.of_type("status")]

    @property
    def logs(self) -> str:
        return (self.workdir / "runner.log").read_text()


OnEvent = Callable[[dict[str, Any], subprocess.Popen], None]


def runner_environment() -> dict[str, str]:
    """The minimal environment the sandbox gives the runner."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    return env | {name: os.environ[name] for name in ("LANG", "TZ") if name in os.environ}


def start_runner(workdir: Path) -> tuple[subprocess.Popen, int]:
    """Spawn the runner on ``workdir`` as the parent does; returns it and the event pipe's read end."""
    read_end, write_end = os.pipe()
    log = (workdir / "runner.log").open("wb")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "training_worker.runner", str(workdir)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_end,),
            cwd=workdir,
            env=runner_environment() | {EVENT_FD_VARIABLE: str(write_end)},
        )
    finally:
        os.close(write_end)  # the runner holds the only write end: EOF when it exits
        log.close()
    return process, read_end


def run_runner(workdir: Path, on_event: OnEvent | None = None) -> RunResult:
    """Run to the end, collecting every event; ``on_event`` may talk to the runner's stdin."""
    process, read_end = start_runner(workdir)
    result = RunResult(workdir=workdir, returncode=-1)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                event = parse_event(line)
                result.events.append(event)
                if on_event is not None:
                    on_event(event, process)
        result.returncode = process.wait(timeout=RUN_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdin is not None:
            process.stdin.close()  # only now: closing stdin earlier tells the runner its parent died
    return result


def run_jobs(base: Path, dataset: str, jobs: dict[str, dict[str, Any]]) -> dict[str, RunResult]:
    """Each job (name -> write_job overrides) on ``dataset`` in ``base/<name>``, two at a time."""
    for name, overrides in jobs.items():
        write_job(base / name, dataset, **overrides)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="runner") as pool:
        futures = {name: pool.submit(run_runner, base / name) for name in jobs}
        return {name: future.result() for name, future in futures.items()}


def send_command(process: subprocess.Popen, command: str) -> None:
    assert process.stdin is not None
    process.stdin.write(command.encode() + b"\n")
    process.stdin.flush()


class InterruptOnFirstProgress:
    """An on_event that sends ``interrupt`` once, as the supervisor relays a user's click."""

    def __init__(self) -> None:
        self.sent = False

    def __call__(self, event: dict[str, Any], process: subprocess.Popen) -> None:
        if event["type"] == "progress" and not self.sent:
            self.sent = True
            send_command(process, "interrupt")


# Architecture code for the interrupt test: run_eagerly makes every batch take milliseconds, so the
# interrupt sent after the first batch lands in the middle of the first epoch.
SLOW_BINARY_CODE = default_architecture_code("binary").replace(
    "metrics=[", "run_eagerly=True,\n        metrics=["
)

BUILD_MODEL_RAISES_CODE = """\
def build_model(input_shapes, n_classes):
    print("building with", input_shapes)
    inputs = keras.Input(shape=input_shapes["main"], name="main")
    hidden = keras.layers.Dense(8)(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(hiden)
    return keras.Model(inputs, outputs)


def compile_model(model):
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model
"""

WRONG_OUTPUT_CODE = default_architecture_code("binary").replace(
    'Dense(1, activation="sigmoid"', 'Dense(3, activation="relu"'
)

# The default binary model, with the user writing to stdout and stderr: both must reach the logs,
# while TensorFlow's start-up lines must not.
USER_OUTPUT_BINARY_CODE = "import sys\nimport warnings\n\n" + default_architecture_code("binary").replace(
    "    return keras.Model(",
    '    print("user print from build_model")\n'
    '    print("user stderr from build_model", file=sys.stderr)\n'
    '    warnings.warn("user warning from build_model", stacklevel=1)\n'
    "    return keras.Model(",
    1,
)

# name -> (dataset, job overrides, on_event)
SHARED_RUNS: dict[str, tuple[str, dict[str, Any], OnEvent | None]] = {
    "binary": ("breast_cancer", {"architecture_code": USER_OUTPUT_BINARY_CODE}, None),
    "interrupted": (
        "breast_cancer",
        {
            "architecture_code": SLOW_BINARY_CODE,
            "training": {"mode": "standard", "epochs": 50, "batch_size": 2},
        },
        InterruptOnFirstProgress(),
    ),
    # Every preprocessed array memory-mapped: fit and predict read batches from files.
    "memory_mapped": ("breast_cancer", {"memmap_bytes": 1}, None),
    "build_model_raises": ("breast_cancer", {"architecture_code": BUILD_MODEL_RAISES_CODE}, None),
    "wrong_output_layer": ("breast_cancer", {"architecture_code": WRONG_OUTPUT_CODE}, None),
    # A new user's first regression: default code and training settings, target rescaling absent.
    "regression": ("diabetes", {"training": {"mode": "standard", "epochs": 10, "batch_size": 32}}, None),
    "regression_unscaled": (
        "diabetes",
        {"training": {"mode": "standard", "epochs": 1, "batch_size": 32, "target_rescaling": "none"}},
        None,
    ),
    "multiclass": ("iris", {"training": {"mode": "standard", "epochs": 2, "batch_size": 16}}, None),
    "parquet": (
        "iris",
        {
            "data_format": "parquet",
            "training": {"mode": "standard", "epochs": 1, "batch_size": 16},
        },
        None,
    ),
}


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[RunResult]]]:
    """All SHARED_RUNS, started together (two at a time) the first time a test needs any of them."""
    base = tmp_path_factory.mktemp("runs")

    def run(name: str) -> RunResult:
        dataset, overrides, on_event = SHARED_RUNS[name]
        write_job(base / name, dataset, **overrides)
        return run_runner(base / name, on_event)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="runner") as pool:
        yield {name: pool.submit(run, name) for name in SHARED_RUNS}


@pytest.fixture
def runs(shared_runs: dict[str, Future[RunResult]]) -> Callable[[str], RunResult]:
    return lambda name: shared_runs[name].result(timeout=RUN_TIMEOUT_SECONDS * 2)


@pytest.fixture
def run_job(tmp_path: Path) -> Callable[..., RunResult]:
    """``run_job("iris", architecture_code=...)`` runs a job in tmp_path; with no dataset, tmp_path as is."""

    def run(dataset: str | None = None, **overrides: Any) -> RunResult:
        if dataset is not None:
            write_job(tmp_path, dataset, **overrides)
        return run_runner(tmp_path)

    return run


@pytest.fixture
def spawn_runner(tmp_path: Path) -> Callable[[str], tuple[subprocess.Popen, int]]:
    """``spawn_runner("iris")`` starts a runner on a fresh job and leaves talking to it to the test."""

    def spawn(dataset: str) -> tuple[subprocess.Popen, int]:
        write_job(tmp_path, dataset)
        return start_runner(tmp_path)

    return spawn
