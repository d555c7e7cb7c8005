"""Sending a queued session to whatever runs training: Celery workers, or the embedded executor.

Both paths end in the same function, `supervisor.supervise(session_id)`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def dispatch_session(session_id: int) -> None:
    """Call after the session row is committed (transaction.on_commit). A session that asks for
    GPUs goes to the queue only GPU workers consume (training_worker.gpus.queue_for)."""
    if settings.DISTRIBUTED:
        from analyses.models import Session
        from training_worker.gpus import queue_for
        from training_worker.tasks import train_session

        design = Session.objects.filter(pk=session_id).values_list("design", flat=True).first() or {}
        request = ((design.get("training") or {}).get("runtime") or {}).get("gpus")
        train_session.apply_async(args=[session_id], queue=queue_for(request))
    else:
        from training_worker.supervisor import supervise

        embedded_executor().submit(_run_embedded, "training session", supervise, session_id)


def embedded_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=embedded_slots(), thread_name_prefix="training")
        return _executor


def embedded_slots() -> int:
    """EMBEDDED_WORKERS, or one per GPU (one on a CPU machine) when it is 0."""
    from training_worker.gpus import worker_slots
    from training_worker.workers import local_gpus

    return settings.EMBEDDED_WORKERS or worker_slots(local_gpus())


def _run_embedded(what: str, run: Callable[..., None], object_id: int) -> None:
    """A thread of the embedded pool runs ``run(object_id, worker_name="embedded")``: with fresh
    database connections, and never letting an exception kill the pool's thread."""
    close_old_connections()
    try:
        run(object_id, worker_name="embedded")
    except Exception:
        log.exception("%s %s crashed in the embedded dispatcher", what, object_id)
    finally:
        close_old_connections()


def requeue_waiting_sessions() -> int:
    """Embedded mode keeps its queue in memory: on start-up, queued sessions are dispatched again."""
    from analyses.models import Session
    from training_worker.events import Status

    waiting = list(Session.objects.filter(status=Status.QUEUED).order_by("id").values_list("pk", flat=True))
    for session_id in waiting:
        dispatch_session(session_id)
    return len(waiting)


def dispatch_scoring(job_id: int) -> None:
    """A queued batch scoring job (analyses.models.ScoringJob), sent as a session is; call it after
    the job row is committed. It runs on the CPU workers' queue: predicting needs no GPU."""
    if settings.DISTRIBUTED:
        from training_worker.tasks import score_dataset

        score_dataset.apply_async(args=[job_id], queue="training")
    else:
        from training_worker.scoring_jobs import run_scoring_job

        embedded_executor().submit(_run_embedded, "scoring job", run_scoring_job, job_id)
