"""Pre-flight validation of an ML task's design (the Validate button, ``POST /api/mltasks/{id}/validate/``).

A dry run of the real runner in the real sandbox: preprocessing fitted on the first rows (the
real input names and, for most handlings, the real shapes), ``build_model``, the output-layer
check, ``compile_model`` and, in advanced mode, ``build_sequence``; no training. User code never
runs in this process: it is spawned exactly as for a session, from a throw-away work dir.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from analyses.models import MLTask
from training_worker import warm
from training_worker.runner_output import follow
from training_worker.sandbox import RunnerProcess, config_from_settings, spawn_runner
from training_worker.workdirs import VALIDATION_ROWS, write_workdir

# A dry run that has not answered by then is stopped (TensorFlow's import alone takes ~10 s cold).
VALIDATION_TIMEOUT_SECONDS = 120


def validate_design(mltask: MLTask, user: Any) -> dict[str, Any]:
    """``{ok, input_shapes, n_classes, params, summary, errors: [{phase, tab, line, message}],
    seconds, rows}`` for the ML task's saved design."""
    started = time.monotonic()
    design = mltask.design() | {"project_variables": mltask.project.variables}
    spare = warm.take() if warm.can_serve(mltask, design) else None
    if spare is not None:
        workdir = spare.workdir
    else:
        root = Path(settings.DATA_DIR) / "validations"
        root.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"mltask-{mltask.pk}-", dir=root))
        workdir.chmod(0o755)  # as a session's work dir: the sandbox's runner uid must enter it
    runner = None
    try:
        write_workdir(workdir, mltask, design, user, validate=True)
        runner = spare.start() if spare is not None else spawn_runner(workdir, config_from_settings())
        events, output = _dry_run(runner)  # it cleans the runner up
    finally:
        if spare is not None and runner is None:  # never started: nobody else will stop it
            spare.discard()
        shutil.rmtree(workdir, ignore_errors=True)
        warm.replenish()  # the request thread lives on: the next check (or session) finds one ready
    model = next((e for e in reversed(events) if e["type"] == "model"), {})
    done = next((e for e in reversed(events) if e["type"] == "done"), None)
    if done is None:
        error = {
            "phase": "runner",
            "tab": None,
            "line": None,
            "message": (
                "The dry run ended without an answer "
                f"(stopped after {VALIDATION_TIMEOUT_SECONDS} s at most). "
                f"Its last output: {output[-2000:].strip() or '(none)'}"
            ),
        }
    else:
        error = done.get("error")
    return {
        "ok": done is not None and done.get("status") == "succeeded",
        "input_shapes": model.get("input_shapes"),
        "n_classes": model.get("n_classes"),
        "params": model.get("params"),
        "summary": model.get("summary"),
        "errors": [] if not error else [{k: error.get(k) for k in ("phase", "tab", "line", "message")}],
        "rows": VALIDATION_ROWS,
        "seconds": round(time.monotonic() - started, 2),
        "warm": spare is not None,  # a runner with TensorFlow already imported did it
    }


def _dry_run(runner: RunnerProcess) -> tuple[list[dict[str, Any]], str]:
    """The runner's events until it exits (or the time limit), and the end of its output."""
    events: list[dict[str, Any]] = []
    followed = follow(runner, VALIDATION_TIMEOUT_SECONDS, events.append)
    return events, followed.output_tail
