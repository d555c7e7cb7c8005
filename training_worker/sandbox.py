"""Starting the runner: the only process where user code executes.

The runner gets a scrubbed environment (no secret key, database or broker credentials), its
session's work dir as cwd and HOME, its own process group (so abort can kill everything it
started), and it dies with its supervisor (PR_SET_PDEATHSIG, plus EOF on its control pipe).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from training_worker.events import EVENT_FD_VARIABLE

REPO_ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1
# Only what Python, TensorFlow and Keras need; nothing from the worker's environment leaks.
PASSED_THROUGH = ("LANG", "LC_ALL", "TZ", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL")


def runner_environment(workdir: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    env.update(
        PATH="/usr/local/bin:/usr/bin:/bin",
        HOME=str(workdir),
        TMPDIR=str(workdir / "tmp"),
        PYTHONPATH=str(REPO_ROOT),
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        MPLCONFIGDIR=str(workdir / "tmp"),
        KERAS_HOME=str(workdir / "keras"),
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    return env


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn_runner(workdir: Path) -> tuple[subprocess.Popen, int]:
    """Start the runner on `workdir`; returns the process and the read end of its event pipe."""
    (workdir / "tmp").mkdir(exist_ok=True)
    read_end, write_end = os.pipe()
    env = runner_environment(workdir)
    env[EVENT_FD_VARIABLE] = str(write_end)
    python = settings.RUNNER_PYTHON or sys.executable
    try:
        process = subprocess.Popen(
            [python, "-m", "training_worker.runner", str(workdir)],
            cwd=workdir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(write_end,),
            preexec_fn=_die_with_parent,
            start_new_session=True,  # its own process group: abort kills the group
            close_fds=True,
        )
    finally:
        os.close(write_end)
    return process, read_end


def kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
