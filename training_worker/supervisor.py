"""Supervising one session: claim it, prepare its work dir, run the runner, store and relay events.

Runs in a Celery worker process, or in a thread of the embedded dispatcher: the same code either
way. Every event is stored first, then published; the database row is the truth.
"""

from __future__ import annotations

import contextlib
import json
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

from analyses import live
from analyses.models import Dataset, EpochMetric, Session, SessionLog
from training_worker.dataset_files import dataset_format
from training_worker.events import BadEvent, Status, parse_event
from training_worker.sandbox import kill_group, spawn_runner

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
ACTIVE = (Status.STARTING, Status.RUNNING)
MAX_LOG_LINES = 5_000  # per session; beyond it one notice, then user output is dropped


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
    (workdir / "output").mkdir(parents=True)
    dataset = session.mltask.analysis.dataset
    linked, data_format = _link_dataset(Path(dataset.file.path), workdir, "dataset")
    design = session.design
    test_dataset = None
    if design["split"].get("mode", "random") == "explicit":
        test_id = design["split"].get("test_dataset")
        test = Dataset.objects.filter(pk=test_id, project_id=dataset.project_id).first()
        if test is None:
            raise ValueError(
                f"the explicit test dataset {test_id} is no longer in the project; "
                "choose another in the split settings"
            )
        test_linked, test_format = _link_dataset(Path(test.file.path), workdir, "test_dataset")
        test_dataset = {
            "path": test_linked.name,
            "format": test_format,
            "id": test.pk,
            "name": test.name,
            **_link_images(test, workdir, "test_images"),  # its own folder: names resolve there
        }
    job = {
        "session_id": session.pk,
        "dataset": {"path": linked.name, "format": data_format, **_link_images(dataset, workdir)},
        "target": design["target"],
        "prediction_type": design["prediction_type"],
        "classes": design.get("classes"),
        # Every target, the first being the one above; 2+ for a multi-output model.
        "targets": design.get("targets") or [_first_target(design)],
        "features": design["features"],
        "split": design["split"],
        "test_dataset": test_dataset,
        "architecture_code": design["architecture_code"],
        "preprocessing_code": design.get("preprocessing_code", ""),
        "training": design["training"],
        "metric": design.get("metric"),
        "seed": int(design["split"].get("seed", 1337)),
        "train_metrics_sample": 10_000,
        "project_variables": design.get("project_variables", {}),
    }
    (workdir / "job.json").write_text(json.dumps(job, indent=1))
    return workdir


def _first_target(design: dict) -> dict:
    """A design saved before multi-output: its one target."""
    return {
        "name": design["target"],
        "prediction_type": design["prediction_type"],
        "classes": design.get("classes"),
    }


def _link_images(dataset: Dataset, workdir: Path, name: str = "images") -> dict[str, str]:
    """An image dataset's folder, as a symlink ``name`` in the work dir: ``{"images": name}``; {} if none.

    A link, not a copy: the runner only reads the images (a preprocess_image writing there would
    change the dataset; the sandbox does not prevent it).
    """
    folder = dataset.images_path
    if folder is None:
        return {}
    if not folder.is_dir():
        raise ValueError(f"the images of dataset {dataset.name!r} are missing from storage ({folder})")
    (workdir / name).symlink_to(folder.resolve(), target_is_directory=True)
    return {"images": name}


def _link_dataset(source: Path, workdir: Path, stem: str) -> tuple[Path, str]:
    data_format = dataset_format(source)  # datasets stored before the Parquet conversion are CSV
    linked = workdir / f"{stem}.{data_format}"
    try:
        os.link(source, linked)  # same file system: no copy of a big file
    except OSError:
        shutil.copyfile(source, linked)
    return linked, data_format


def supervise(session_id: int, worker_name: str) -> None:
    session = claim(session_id, worker_name)
    if session is None:
        return
    try:
        workdir = prepare_workdir(session)
        process, events_fd = spawn_runner(workdir)
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
        return
    Supervision(session, process, events_fd, workdir).run()


class Supervision:
    """The loop that relays one runner's events and the user's interrupt/abort requests."""

    def __init__(self, session: Session, process: subprocess.Popen, events_fd: int, workdir: Path):
        self.session_id = session.pk
        self.process = process
        self.events = os.fdopen(events_fd, "rb", buffering=0)
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
                self._check_requests()
                if self.aborted:
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
            Session.objects.filter(pk=self.session_id).update(progress=progress, heartbeat_at=timezone.now())
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
        count = 0
        try:
            assert self.process.stdout is not None
            for raw in self.process.stdout:
                text = raw.decode("utf-8", "replace").rstrip("\n")[:4000]
                self.last_log_lines.append(text)
                count += 1
                if count > MAX_LOG_LINES:
                    if count == MAX_LOG_LINES + 1:
                        text = f"[output truncated: more than {MAX_LOG_LINES} lines]"
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
        if row is None or row["abort_requested_at"] is not None:
            self.aborted = True
            kill_group(self.process)
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
                kill_group(self.process)
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
            kill_group(self.process)
            self.process.wait()
        kill_group(self.process)  # anything the user's code started in the group goes too
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
        if self.done is None:
            code = self.process.returncode
            how = (
                f"was killed by signal {-code}"
                if code is not None and code < 0
                else f"exited with code {code}"
            )
            tail = "\n".join(list(self.last_log_lines)[-10:])
            finish(
                self.session_id,
                Status.FAILED,
                error={
                    "phase": "runner",
                    "tab": None,
                    "line": None,
                    "message": f"The training process {how} before finishing"
                    + (" (out of memory?)" if code == -9 else "")
                    + ".",
                    "traceback": tail,
                },
            )
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
    Session.objects.filter(pk=session_id, status__in=ACTIVE).update(**fields)
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
