"""One runner kept warm: started in its sandbox ahead of the next session, TensorFlow imported.

Importing TensorFlow takes most of a runner's start (about 9 s here), so a worker keeps one spare
runner waiting on its own empty work dir (``DATA_DIR/sessions/warm-<random>``). A session takes it:
the supervisor writes the session's files into that work dir, links ``sessions/<id>`` to it, and
sends ``start``; once the session is over, a spare for the next one is started (spawning takes
milliseconds; the spare imports TensorFlow on its own) from the process's keeper thread.

A spare is only used where nothing outside its work dir must be mounted for the session: the
sandbox mounts what the work dir links to (an image dataset's folder) when the runner starts, so
sessions on image datasets start a runner of their own. The spare lives as long as the process that
started it (it dies with it, like every runner): in a Celery worker, the pool child; in embedded
mode, the web process. ``WARM_RUNNER=0`` turns it off.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from analyses.models import Dataset, MLTask
from training_worker.sandbox import (
    RunnerProcess,
    config_from_settings,
    per_session_environment,
    spawn_runner,
)

log = logging.getLogger(__name__)


@dataclass
class WarmRunner:
    runner: RunnerProcess
    workdir: Path
    config: tuple  # the sandbox settings and data dir it was started with (see _current_config)

    def alive(self) -> bool:
        return self.runner.process.poll() is None

    def start(self, environment: dict[str, str] | None = None) -> RunnerProcess:
        """Tell it to read job.json and go; the wall-clock limit counts from now, not from the spawn.
        ``environment`` (its GPUs) is set in the runner before TensorFlow looks for devices."""
        _readable_inputs(self.workdir)
        self.runner.started = time.monotonic()
        assert self.runner.process.stdin is not None
        command = {"environment": per_session_environment(environment)}
        self.runner.process.stdin.write(b"start " + json.dumps(command).encode() + b"\n")
        self.runner.process.stdin.flush()
        return self.runner

    def discard(self) -> None:
        self.runner.kill()
        try:
            self.runner.process.wait(timeout=10)
        finally:
            self.runner.cleanup()
            shutil.rmtree(self.workdir, ignore_errors=True)


_spare: WarmRunner | None = None
_lock = threading.Lock()


def enabled() -> bool:
    return bool(getattr(settings, "WARM_RUNNER", True))


def can_serve(mltask: MLTask, design: dict) -> bool:
    """A spare mounts nothing but its work dir: not for designs whose datasets have image folders."""
    if not enabled():
        return False
    test_id = design.get("split", {}).get("test_dataset")
    test = Dataset.objects.filter(pk=test_id).first() if test_id else None
    return mltask.analysis.dataset.images_path is None and (test is None or test.images_path is None)


def _readable_inputs(workdir: Path) -> None:
    """Inputs linked in after the sandbox prepared the work dir must be readable by its runner uid."""
    for path in workdir.rglob("*"):
        if path.is_file() and not path.is_symlink() and not path.stat().st_mode & 0o004:
            path.chmod(path.stat().st_mode | 0o044)


def take() -> WarmRunner | None:
    """The spare runner, if one is up (and a new one on its way); None otherwise."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    if spare is not None and spare.config != _current_config():  # settings changed since: not ours
        spare.discard()
        spare = None
    if spare is not None and not spare.alive():
        log.warning(
            "the warm runner had exited (%s); starting one for this session", spare.runner.process.returncode
        )
        spare.discard()
        spare = None
    return spare


def replenish() -> None:
    """Start a spare unless one is up (or disabled); returns once it is spawned (milliseconds: it
    imports TensorFlow on its own). After a session rather than before it, so the spare's import
    does not slow the session.

    A runner is killed when the *thread* that spawned it ends (PR_SET_PDEATHSIG, bwrap
    --die-with-parent), and callers' threads may be short-lived (Django runs each request's sync
    code on a thread of its own, ended with the request): the spawn happens on this process's one
    keeper thread, which lives as long as the process."""
    if enabled():
        _keeper().submit(_start_spare).result(timeout=60)


_keeper_pool: tuple[int, ThreadPoolExecutor] | None = None


def _keeper() -> ThreadPoolExecutor:
    """The process's keeper thread (a fork does not inherit threads: a child makes its own)."""
    global _keeper_pool
    with _lock:
        if _keeper_pool is None or _keeper_pool[0] != os.getpid():
            _keeper_pool = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="warm-keeper"))
        return _keeper_pool[1]


def _start_spare() -> None:
    global _spare
    with _lock:
        if _spare is not None:
            return
        workdir = Path(settings.DATA_DIR) / "sessions" / f"warm-{secrets.token_hex(6)}"
        try:
            workdir.mkdir(parents=True)
            (workdir / "output").mkdir()
            config = _current_config()
            _spare = WarmRunner(spawn_runner(workdir, config[0], warm=True), workdir, config)
        except Exception:
            log.exception("could not start a warm runner; sessions will start their own")
            shutil.rmtree(workdir, ignore_errors=True)


def _current_config() -> tuple:
    return (config_from_settings(), str(settings.DATA_DIR))


def shutdown() -> None:
    """Stop the spare (process exit does it too: it dies with its parent)."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    if spare is not None:
        spare.discard()
