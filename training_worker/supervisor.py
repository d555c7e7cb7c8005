"""Supervising one session: claim it, prepare its work dir, run the runner, store and relay events.

Runs in a Celery worker process, or in a thread of the embedded dispatcher: the same code either
way. Every event is stored first, then published; the database row is the truth.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import shutil
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from analyses import activity, live
from analyses.models import EpochMetric, Session, SessionLog
from training_worker import gpus, warm
from training_worker.events import MAX_EVENT_BYTES, BadEvent, Status, parse_event
from training_worker.sandbox import RunnerProcess, config_from_settings, spawn_runner
from training_worker.workdirs import write_workdir

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
ACTIVE = (Status.STARTING, Status.RUNNING)
MAX_LOG_LINES = 5_000  # per session; beyond it one notice, then user output is dropped
MAX_LINE_BYTES = 16_384  # an output line longer than this is relayed in pieces (stored: 4,000 chars)


def claim(session_id: int, worker_name: str) -> Session | None:
    """queued → starting, atomically: a second delivery of the same task finds nothing to do."""
    now = timezone.now()
    claimed = Session.objects.filter(pk=session_id, status=Status.QUEUED).update(
        status=Status.STARTING, worker=worker_name, heartbeat_at=now
    )
    if not claimed:
        return None
    session = Session.objects.select_related("mltask__analysis__dataset").get(pk=session_id)
    live.publish(
        session_id, {"type": "status", "status": Status.STARTING, "phase": "starting", "worker": worker_name}
    )
    return session


def session_dir(session_id: int) -> Path:
    return settings.DATA_DIR / "sessions" / str(session_id)


def prepare_workdir(session: Session) -> Path:
    """A work dir holding only this session's inputs: its dataset(s), their images and its job spec."""
    workdir = session_dir(session.pk)
    if workdir.exists():
        shutil.rmtree(workdir)
    write_workdir(workdir, session.mltask, session.design, session.created_by, session_id=session.pk)
    return workdir


def _start_runner(session: Session, environment: dict[str, str]) -> tuple[Path, RunnerProcess]:
    """The session's work dir and runner: the warm spare when it can serve this session (its work
    dir becomes the session's, ``sessions/<id>`` links to it), else a runner started now.
    ``environment``: what the runner must see (its GPUs), set before TensorFlow looks for devices."""
    spare = warm.take() if warm.can_serve(session.mltask, session.design) else None
    if spare is None:
        workdir = prepare_workdir(session)
        return workdir, spawn_runner(workdir, config_from_settings(), environment=environment)
    try:
        workdir = session_dir(session.pk)
        if workdir.is_symlink():
            workdir.unlink()
        elif workdir.exists():
            shutil.rmtree(workdir)
        write_workdir(
            spare.workdir, session.mltask, session.design, session.created_by, session_id=session.pk
        )
        workdir.symlink_to(spare.workdir.name, target_is_directory=True)
    except BaseException:
        spare.discard()
        raise
    log.info("session %s: the warm runner %s takes it", session.pk, spare.workdir.name)
    return workdir, spare.start(environment)


def _hold_gpus(session: Session) -> gpus.Lease | None:
    """The GPUs the session asks for (``training.runtime.gpus``), waiting while other sessions of
    this worker hold them; None when it was stopped meanwhile (then it is finished here)."""
    from training_worker.workers import local_gpus

    request = ((session.design.get("training") or {}).get("runtime") or {}).get("gpus", gpus.AUTO)

    def stopped() -> bool:
        Session.objects.filter(pk=session.pk).update(heartbeat_at=timezone.now())  # not lost: waiting
        row = Session.objects.filter(pk=session.pk).values("interrupt_requested_at", "abort_requested_at")
        return any(row.first().values())

    def waiting(busy: list[int]) -> None:
        phase = "waiting for GPU"
        Session.objects.filter(pk=session.pk).update(phase=phase)
        held = f" (GPU {', '.join(map(str, busy))} in use)" if busy else ""
        event = {"type": "status", "status": Status.STARTING, "phase": phase, "detail": held}
        live.publish(session.pk, event)

    lease = gpus.acquire(request, local_gpus(), Path(settings.DATA_DIR), should_stop=stopped, on_wait=waiting)
    if lease is None:
        finish(
            session.pk,
            Status.ABORTED,
            error={"phase": "starting", "message": "Stopped while waiting for a GPU: nothing was trained."},
        )
    return lease


def supervise(session_id: int, worker_name: str) -> None:
    session = claim(session_id, worker_name)
    if session is None:
        return
    lease = None
    try:
        lease = _hold_gpus(session)
        if lease is None:
            return
        Session.objects.filter(pk=session_id).update(
            devices={"gpus": lease.gpus, "waited_seconds": round(lease.waited_seconds, 1)}
        )
        workdir, runner = _start_runner(session, lease.environment())
    except Exception as exc:
        log.exception("could not start the runner of session %s", session_id)
        finish(
            session_id,
            Status.FAILED,
            error={
                "phase": "runner",
                "tab": None,
                "line": None,
                "message": f"The platform could not start training: {exc}",
            },
        )
        if lease is not None:
            lease.release()
        return
    # What contains this run (and what does not, on a degraded host): shown on the session page.
    Session.objects.filter(pk=session_id).update(isolation=runner.isolation)
    try:
        Supervision(session, runner, workdir).run()
    finally:
        lease.release()
        warm.replenish()  # this thread lives on (the pool's): a spare for the next session


class Supervision:
    """The loop that relays one runner's events and the user's interrupt/abort requests."""

    def __init__(self, session: Session, runner: RunnerProcess, workdir: Path):
        self.session_id = session.pk
        self.runner = runner
        self.process = runner.process
        self.events = os.fdopen(runner.events_fd, "rb", buffering=0)
        self.timed_out = False  # killed at the wall-clock limit
        self.workdir = workdir
        self.done: dict[str, Any] | None = None
        self.interrupt_sent_at: float | None = None
        self.aborted = False
        self.last_heartbeat = 0.0
        self.last_log_lines: deque[str] = deque(maxlen=20)  # shown when the runner dies
        self.last_request_check = 0.0
        self.log_thread = threading.Thread(target=self._relay_output, daemon=True)

    def run(self) -> None:
        self.log_thread.start()
        selector = selectors.DefaultSelector()
        selector.register(self.events, selectors.EVENT_READ)
        buffer = b""
        try:
            while True:
                ready = selector.select(timeout=POLL_SECONDS)
                if ready:
                    chunk = self.events.read(65536)
                    if not chunk:
                        break  # the runner closed its event pipe: it has exited or is exiting
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self._handle_line(line)
                    if len(buffer) > MAX_EVENT_BYTES:  # can never be an event: the worker keeps no more
                        log.warning("session %s: dropped an oversized runner event", self.session_id)
                        buffer = b"\xff"  # what follows up to the next newline is refused as not JSON
                self._check_requests()
                if self.aborted:
                    break
                if self.runner.over_time():
                    self.timed_out = True
                    self.runner.kill()
                    break
        finally:
            selector.close()
            self.events.close()
            self._reap()
            self.log_thread.join(timeout=5)
            self._finish()

    # ------------------------------------------------------------ events from the runner

    def _handle_line(self, line: bytes) -> None:
        try:
            event = parse_event(line)
        except BadEvent as exc:
            log.warning("session %s: ignored a bad runner event (%s)", self.session_id, exc)
            return
        kind = event["type"]
        if kind == "status":
            self._on_status(event)
        elif kind == "model":
            Session.objects.filter(pk=self.session_id).update(
                model_info={k: v for k, v in event.items() if k != "type"}
            )
        elif kind == "progress":
            progress = {k: event[k] for k in ("epoch", "batch", "of")}
            fields: dict = {"progress": progress, "heartbeat_at": timezone.now()}
            if isinstance(event.get("epochs"), int) and event["epochs"] > 0:  # advanced mode decides them
                fields["epochs_total"] = event["epochs"]
            Session.objects.filter(pk=self.session_id).update(**fields)
        elif kind == "kept":
            kept = {k: event.get(k) for k in ("epoch", "metric", "value", "keep")}
            session = Session.objects.get(pk=self.session_id)
            session.model_info = {**(session.model_info or {}), "kept": kept}
            session.save(update_fields=["model_info"])
        elif kind == "epoch":
            self._on_epoch(event)
        elif kind == "done":
            self.done = event
            return  # published by _finish, once the final status is stored
        live.publish(self.session_id, event)

    def _on_status(self, event: dict) -> None:
        phase = str(event.get("phase", ""))[:30]
        now = timezone.now()
        Session.objects.filter(pk=self.session_id, status=Status.STARTING).update(
            status=Status.RUNNING, started_at=now
        )
        Session.objects.filter(pk=self.session_id).update(phase=phase, heartbeat_at=now)
        event["status"] = Status.RUNNING

    def _on_epoch(self, event: dict) -> None:
        EpochMetric.objects.update_or_create(
            session_id=self.session_id,
            epoch=event["epoch"],
            defaults={
                "seconds": event["seconds"],
                "values": event["values"],
                "partial": bool(event.get("partial")),
            },
        )
        Session.objects.filter(pk=self.session_id).update(
            epochs_done=event["epoch"], heartbeat_at=timezone.now()
        )

    def _relay_output(self) -> None:
        """User prints, warnings and tracebacks: stored, then streamed to the console panel."""
        close_old_connections()
        count = size = 0
        cap = self.runner.limits.output_bytes
        try:
            stdout = self.process.stdout
            assert stdout is not None
            for raw in iter(lambda: stdout.readline(MAX_LINE_BYTES), b""):  # never a whole huge line
                text = raw.decode("utf-8", "replace").rstrip("\n")[:4000]
                self.last_log_lines.append(text)
                count += 1
                size += len(raw)
                if count > MAX_LOG_LINES or size > cap:  # read on (the runner must not block), keep none
                    if count == MAX_LOG_LINES + 1 or (size > cap and size - len(raw) <= cap):
                        text = (
                            f"[output truncated: more than {MAX_LOG_LINES} lines]"
                            if count > MAX_LOG_LINES
                            else f"[output truncated: more than {_megabytes(cap)} of output]"
                        )
                    else:
                        continue
                SessionLog.objects.create(session_id=self.session_id, stream="stdout", text=text)
                live.publish(self.session_id, {"type": "log", "stream": "stdout", "text": text})
        except Exception:
            log.warning("session %s: output relay stopped", self.session_id, exc_info=True)
        finally:
            close_old_connections()

    # ------------------------------------------------------------ requests from the user

    def _check_requests(self) -> None:
        # The loop wakes for every event chunk; the row is polled at most every POLL_SECONDS.
        if time.monotonic() - self.last_request_check < POLL_SECONDS:
            return
        self.last_request_check = time.monotonic()
        row = (
            Session.objects.filter(pk=self.session_id)
            .values("interrupt_requested_at", "abort_requested_at", "status")
            .first()
        )
        now = time.monotonic()
        # Deleted, aborted, or already final: the reaper failed it ("worker lost") while this
        # supervisor was frozen or cut off from the database. Its runner must not train on unseen.
        if row is None or row["abort_requested_at"] is not None or row["status"] not in ACTIVE:
            self.aborted = True
            self.runner.kill()
            return
        if row["interrupt_requested_at"] is not None:
            if self.interrupt_sent_at is None:
                self.interrupt_sent_at = now
                self._send("interrupt")
            elif (
                now - self.interrupt_sent_at > settings.INTERRUPT_GRACE_SECONDS
                and self.process.poll() is None
            ):
                log.warning(
                    "session %s ignored interrupt for %ss: killing it",
                    self.session_id,
                    settings.INTERRUPT_GRACE_SECONDS,
                )
                self.aborted = True
                self.runner.kill()
                return
        if now - self.last_heartbeat >= settings.SESSION_HEARTBEAT_SECONDS:
            self.last_heartbeat = now
            Session.objects.filter(pk=self.session_id).update(heartbeat_at=timezone.now())

    def _send(self, command: str) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(command.encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    # ------------------------------------------------------------ the end

    def _reap(self) -> None:
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.runner.kill()
            self.process.wait()
        # Anything the user's code started goes too; its cgroup is removed, its files become ours.
        self.runner.cleanup()
        if self.process.stdin:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def _finish(self) -> None:
        if self.aborted and (self.done is None or self.done.get("status") == Status.FAILED):
            grace = (
                self.interrupt_sent_at is not None
                and not Session.objects.filter(pk=self.session_id, abort_requested_at__isnull=False).exists()
            )
            message = (
                f"Did not stop within {settings.INTERRUPT_GRACE_SECONDS} s of the interrupt, "
                "so it was killed."
                if grace
                else "Aborted: the runner was killed; no model was kept."
            )
            finish(self.session_id, Status.ABORTED, error={"phase": "aborted", "message": message})
            return
        tail = "\n".join(list(self.last_log_lines)[-10:])
        if self.timed_out and (self.done is None or self.done.get("status") == Status.FAILED):
            seconds = self.runner.limits.wall_clock_seconds
            message = (
                f"Stopped after the time limit of {_duration(seconds)}: a session may run at most "
                "that long here. Train on fewer epochs or rows, or ask an administrator."
            )
            error = {"phase": "runner", "tab": None, "line": None, "message": message, "traceback": tail}
            finish(self.session_id, Status.FAILED, error=error)
            return
        if self.done is None:
            finish(self.session_id, Status.FAILED, error=self._death(tail))
            return
        artifacts = {
            name: str((self.workdir / rel).relative_to(settings.DATA_DIR))
            for name, rel in (self.done.get("artifacts") or {}).items()
            if _inside(self.workdir, self.workdir / rel) and (self.workdir / rel).exists()
        }
        finish(
            self.session_id,
            Status(self.done["status"]),
            final_metrics=self.done.get("final_metrics") or {},
            error=self.done.get("error"),
            artifacts=artifacts,
        )

    def _death(self, tail: str) -> dict[str, Any]:
        """Why the runner ended without a done event: a limit it hit, a signal, an exit status."""
        code = self.process.returncode
        signal_number = self.runner.exit_signal()
        if self.runner.oom_killed():
            limit = _megabytes(self.runner.limits.memory_bytes)
            how = (
                f"was killed: it used more than its memory limit of {limit}"
                " (use a smaller model, batch size or sample of rows)"
            )
        elif signal_number is not None:
            how = f"was killed by signal {signal_number}" + (
                " (out of memory?)" if signal_number == 9 and not self.runner.cgroups.memory else ""
            )
        else:
            how = f"exited with code {code}"
        if self.runner.process_limit_hit():
            how += f"; it reached its limit of {self.runner.limits.processes} processes and threads"
        message = f"The training process {how} before finishing."
        return {"phase": "runner", "tab": None, "line": None, "message": message, "traceback": tail}


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def _megabytes(size: int) -> str:
    if size >= 1024**3 and size % 1024**3 == 0:
        return f"{size // 1024**3} GiB"
    return f"{size / 1024**2:g} MiB"


def _inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def finish(
    session_id: int,
    status: Status,
    *,
    final_metrics: dict | None = None,
    error: dict | None = None,
    artifacts: dict | None = None,
) -> None:
    """Store the final status (only from an active one), then tell the watchers."""
    fields: dict[str, Any] = {"status": status, "ended_at": timezone.now(), "error": error}
    if final_metrics is not None:
        fields["final_metrics"] = final_metrics
    if artifacts is not None:
        fields["artifacts"] = artifacts
    ended = Session.objects.filter(pk=session_id, status__in=ACTIVE).update(**fields)
    session = Session.objects.get(pk=session_id)
    live.publish(
        session_id,
        {
            "type": "done",
            "status": session.status,
            "final_metrics": session.final_metrics or {},
            "error": session.error,
        },
    )
    if ended:  # this call ended it: one entry in the project's feed (never raises)
        activity.session_ended(session)
