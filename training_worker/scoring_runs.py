"""Running the sandboxed scorer (training_worker.scoring) from a trusted process, and reading back
what it wrote.

Shared by the predict endpoint (the web process, like the Validate button's dry run) and batch
scoring jobs (a worker, training_worker.scoring_jobs). The scorer is the runner, started by
training_worker.sandbox exactly as for training (or the warm spare, which has TensorFlow imported
already), on a throw-away work dir holding links to the session's ``model.keras`` and
``preprocessing.joblib``, the input, and ``job.json``. Its events are parsed and length-limited
(training_worker.events), and its output file is checked (names, row count, types, class labels)
before anything uses it: the runner ran user code, so nothing it wrote is trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings

from analyses.models import Session
from training_worker import warm
from training_worker.events import Status
from training_worker.prediction_table import column_names
from training_worker.runner_output import follow
from training_worker.sandbox import RunnerProcess, config_from_settings, spawn_runner
from training_worker.trained_models import link_or_copy

OUTPUT = "output/predictions.parquet"
MODEL_FILES = {"model": "model.keras", "preprocessing": "preprocessing.joblib"}
# Scoring sees no GPU: TensorFlow would take the memory of GPUs that training sessions hold.
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}


class NoModel(Exception):
    """The session has no saved model to score with; the message says why."""


class ScoringFailed(Exception):
    """The scorer did not produce predictions; ``error`` is ``{phase, tab, line, message}``."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message") or "Scoring failed.")
        self.error = error


# ---------------------------------------------------------------- what a session's model needs


def session_targets(session: Session) -> list[tuple[str, list[str] | None]]:
    """[(target, classes or None)] of the session's model, the first target first."""
    design = session.design or {}
    targets = design.get("targets") or [{"name": design["target"], "classes": design.get("classes")}]
    return [
        (t["name"], None if t.get("classes") is None else [str(c) for c in t["classes"]]) for t in targets
    ]


def input_features(session: Session) -> list[dict[str, Any]]:
    """The design's input features ({name, type, ...}), in the order the model was trained on them."""
    return [f for f in (session.design or {}).get("features") or [] if f.get("role") == "input"]


def model_files(session: Session) -> dict[str, Path]:
    """The session's ``model.keras`` and ``preprocessing.joblib``; NoModel says why when it has none.

    Written by a runner (untrusted): regular files inside the session's own work dir, no links.
    """
    if session.status not in (Status.SUCCEEDED, Status.INTERRUPTED):
        raise NoModel(
            f"Session {session.pk} is {session.status}: only a finished or interrupted session has a "
            "trained model to use."
        )
    data_dir = Path(settings.DATA_DIR)
    root = (data_dir / "sessions" / str(session.pk)).resolve()
    found = {}
    for name in MODEL_FILES:
        relative = (session.artifacts or {}).get(name)
        path = data_dir / relative if relative else None
        if path is None or path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(root):
            raise NoModel(f"Session {session.pk} has no saved model (its {MODEL_FILES[name]} is not stored).")
        found[name] = path
    return found


# ---------------------------------------------------------------- one run of the scorer


@dataclass
class Workspace:
    """A scorer's work dir: the warm spare's, or a fresh one under ``DATA_DIR/scoring``."""

    workdir: Path
    spare: warm.WarmRunner | None
    runner: RunnerProcess | None = None

    @property
    def warm(self) -> bool:
        return self.spare is not None


@contextlib.contextmanager
def workspace(name: str, use_spare: bool) -> Iterator[Workspace]:
    """A work dir for one scorer, removed afterwards. ``use_spare``: take the warm spare if one is
    up (it mounts nothing but its work dir: not for inputs with an image folder)."""
    spare = warm.take() if use_spare and warm.enabled() else None
    if spare is not None:
        workdir = spare.workdir
    else:
        root = Path(settings.DATA_DIR) / "scoring"
        root.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
        workdir.chmod(0o755)  # as a session's: the sandbox's runner uid must enter it
    space = Workspace(workdir, spare)
    try:
        yield space
    finally:
        if spare is not None and space.runner is None:  # never started: nobody else stops it
            spare.discard()
        shutil.rmtree(workdir, ignore_errors=True)
        warm.replenish()  # spawned on warm's keeper thread: it outlives this request's thread


def write_job(space: Workspace, session: Session, input_spec: dict[str, Any]) -> dict[str, Any]:
    """Link the session's model files into the work dir and write ``job.json`` (mode ``score``)."""
    design = session.design or {}
    training = design.get("training") or {}
    for name, path in model_files(session).items():
        link_or_copy(path, space.workdir / MODEL_FILES[name])
    (space.workdir / "output").mkdir(exist_ok=True)
    job = {
        "mode": "score",
        "session_id": session.pk,
        "architecture_code": design.get("architecture_code", ""),
        "variables": design.get("project_variables", {}),
        "metric": design.get("metric"),
        "training": {"metrics": training.get("metrics")},
        "runtime": training.get("runtime"),
        "seed": int((design.get("split") or {}).get("seed", 1337)),
        "batch_size": int(training.get("batch_size") or 32),
        "model": MODEL_FILES["model"],
        "preprocessing": MODEL_FILES["preprocessing"],
        "input": input_spec,
        "output": OUTPUT,
    }
    (space.workdir / "job.json").write_text(json.dumps(job))
    return job


@dataclass
class Outcome:
    done: dict[str, Any] | None
    output_tail: str
    timed_out: bool
    isolation: dict[str, Any] = field(default_factory=dict)


def run(
    space: Workspace, timeout: float | None = None, on_progress: Callable[[int, int], None] | None = None
) -> Outcome:
    """Start the scorer on the prepared work dir and follow it to its end (or ``timeout`` seconds,
    default: the sandbox's wall-clock limit). ``on_progress(rows, of)`` gets its ``scored`` events."""
    runner = (
        space.spare.start(CPU_ONLY)
        if space.spare is not None
        else spawn_runner(space.workdir, config_from_settings(), environment=CPU_ONLY)
    )
    space.runner = runner
    limit = timeout if timeout is not None else runner.limits.wall_clock_seconds
    done: dict[str, Any] | None = None

    def on_event(event: dict[str, Any]) -> None:
        nonlocal done
        if event["type"] == "scored" and on_progress is not None:
            on_progress(event["rows"], event["of"])
        elif event["type"] == "done":
            done = event

    followed = follow(runner, limit, on_event)
    return Outcome(done, followed.output_tail, followed.timed_out, runner.isolation)


def check_outcome(outcome: Outcome, limit_text: str) -> None:
    """ScoringFailed with the scorer's own error, or why it gave none."""
    done = outcome.done
    if done is not None and done.get("status") == Status.SUCCEEDED:
        return
    if done is not None and isinstance(done.get("error"), dict):
        raw = done["error"]  # the runner's: only what it may say, in the shapes it may say it
        line = raw.get("line")
        raise ScoringFailed(
            {
                "phase": str(raw.get("phase") or "runner")[:30],
                "tab": raw.get("tab") if raw.get("tab") in ("architecture", "preprocessing") else None,
                "line": line if isinstance(line, int) and not isinstance(line, bool) else None,
                "message": str(raw.get("message") or "Scoring failed.")[:4000],
                "traceback": str(raw.get("traceback") or "")[-8000:],
            }
        )
    why = f"was stopped after {limit_text}" if outcome.timed_out else "ended without an answer"
    tail = outcome.output_tail[-2000:].strip() or "(none)"
    raise ScoringFailed(
        {
            "phase": "runner",
            "tab": None,
            "line": None,
            "message": f"The scorer {why}. Its last output: {tail}",
        }
    )


# ---------------------------------------------------------------- what it wrote


def open_output(space: Workspace) -> pq.ParquetFile:
    """The scorer's Parquet file: a regular file of the work dir, opened without following links."""
    path = space.workdir / OUTPUT
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise _bad_output(f"no predictions file ({exc.strerror})") from None
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise _bad_output("the predictions file is not a regular file")
    try:
        return pq.ParquetFile(handle)
    except (pa.ArrowException, OSError) as exc:
        handle.close()
        raise _bad_output(f"the predictions file is not valid Parquet ({exc})") from None


def checked_batch(batch: pa.RecordBatch | pa.Table, targets: list[tuple[str, list[str] | None]]) -> pa.Table:
    """A piece of the scorer's output as the prediction columns must be: exactly the expected names,
    probabilities as float64, labels among the classes (classification) or float64 values."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    expected = column_names(targets)
    if table.column_names != expected:
        raise _bad_output(f"columns {table.column_names[:10]} instead of {expected[:10]}")
    multi = len(targets) > 1
    columns = []
    try:
        for target, classes in targets:
            suffix = f" ({target})" if multi else ""
            prediction = table.column(f"prediction{suffix}")
            if classes is None:
                columns.append(pc.cast(prediction, pa.float64()))
            else:
                labels = pc.cast(prediction, pa.string())
                if not pc.all(pc.is_in(labels, value_set=pa.array(classes))).as_py():
                    raise _bad_output(f"predicted labels outside the classes {classes[:10]}")
                columns.append(labels)
            columns += [
                pc.cast(table.column(f"proba_{label}{suffix}"), pa.float64()) for label in classes or []
            ]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _bad_output(f"values of the wrong type ({exc})") from None
    return pa.table(columns, names=expected)


def _bad_output(why: str) -> ScoringFailed:
    return ScoringFailed(
        {"phase": "runner", "tab": None, "line": None, "message": f"The scorer's output was refused: {why}."}
    )
