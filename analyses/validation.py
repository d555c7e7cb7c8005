"""Pre-flight validation of an ML task's design (the Validate button, ``POST /api/mltasks/{id}/validate/``).

A dry run of the real runner in the real sandbox: preprocessing fitted on the first rows (the
real input names and, for most handlings, the real shapes), ``build_model``, the output-layer
check, ``compile_model`` and, in advanced mode, ``build_sequence``; no training. User code never
runs in this process: it is spawned exactly as for a session, from a throw-away work dir.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from analyses.models import MLTask
from training_worker import warm
from training_worker.events import MAX_EVENT_BYTES, BadEvent, parse_event
from training_worker.sandbox import RunnerProcess, config_from_settings, spawn_runner
from training_worker.workdirs import VALIDATION_ROWS, write_workdir

# A dry run that has not answered by then is stopped (TensorFlow's import alone takes ~10 s cold).
VALIDATION_TIMEOUT_SECONDS = 120
MAX_OUTPUT_BYTES = 64 * 1024


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
    deadline = time.monotonic() + VALIDATION_TIMEOUT_SECONDS
    events: list[dict[str, Any]] = []
    pending = {runner.events_fd: b"", runner.process.stdout.fileno(): b""}
    output = b""
    selector = selectors.DefaultSelector()
    for fd in pending:
        selector.register(fd, selectors.EVENT_READ)
    try:
        while pending.keys() & {runner.events_fd} and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(timeout=left):
                chunk = os.read(key.fd, 65536)
                if not chunk:  # that end closed: the runner exited
                    selector.unregister(key.fd)
                    del pending[key.fd]
                elif key.fd == runner.events_fd:
                    *lines, pending[key.fd] = (pending[key.fd] + chunk).split(b"\n")
                    events += _parsed(lines)
                    if len(pending[key.fd]) > MAX_EVENT_BYTES:  # never an event: keep nothing of it
                        pending[key.fd] = b"\xff"  # the rest of that line is refused as not JSON
                else:  # the user's prints and warnings: only the end matters for a message
                    output = (output + chunk)[-MAX_OUTPUT_BYTES:]
        if runner.events_fd in pending:
            runner.kill()
    finally:
        selector.close()
        os.close(runner.events_fd)
        if runner.process.stdin is not None:
            runner.process.stdin.close()
        try:
            runner.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.process.wait()
        runner.process.stdout.close()
        runner.cleanup()
    return events, output.decode("utf-8", "replace")


def _parsed(lines: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for line in lines:
        try:
            events.append(parse_event(line))
        except BadEvent:
            continue  # never trust the runner's output: skip what is not an event
    return events
