"""Work whose worker is gone is marked failed ("worker lost"): sessions by their own heartbeat,
batch scoring jobs by their worker's (training_worker.workers).

The same loop re-dispatches queued work whose broker message was lost (training_worker.redispatch).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.utils import timezone

from analyses import activity, live
from analyses.models import ScoringJob, Session, Worker
from training_worker.events import Status
from training_worker.workers import OFFLINE_AFTER_SECONDS

log = logging.getLogger(__name__)

LOST_MESSAGE = "Worker lost: the process supervising this session stopped (restart or crash). Train again."


def fail_lost_sessions(older_than_seconds: float) -> int:
    """starting/running sessions with no heartbeat for `older_than_seconds` → failed."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    lost = list(
        Session.objects.filter(
            status__in=(Status.STARTING, Status.RUNNING), heartbeat_at__lte=cutoff
        ).values_list("pk", flat=True)
    )
    error = {"phase": "runner", "tab": None, "line": None, "message": LOST_MESSAGE}
    for session_id in lost:
        if Session.objects.filter(pk=session_id, status__in=(Status.STARTING, Status.RUNNING)).update(
            status=Status.FAILED, ended_at=timezone.now(), error=error
        ):
            live.publish(
                session_id, {"type": "done", "status": Status.FAILED, "final_metrics": {}, "error": error}
            )
            activity.session_ended(Session.objects.get(pk=session_id))  # the platform's feed entry
    return len(lost)


JOB_LOST_MESSAGE = "Worker lost: the worker running this scoring job stopped (restart or crash). Score again."


def fail_lost_scoring_jobs(older_than_seconds: float) -> int:
    """Running scoring jobs whose worker has not said it is up for ``older_than_seconds`` → failed.
    A job's own progress is no heartbeat (a large model may predict one chunk for minutes); its
    worker's advertisement is."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    alive = Worker.objects.filter(last_seen__gt=cutoff).values_list("name", flat=True)
    lost = ScoringJob.objects.filter(status=ScoringJob.Status.RUNNING, started_at__lte=cutoff).exclude(
        worker__in=list(alive)
    )
    return lost.update(
        status=ScoringJob.Status.FAILED,
        ended_at=timezone.now(),
        error={"phase": "runner", "tab": None, "line": None, "message": JOB_LOST_MESSAGE},
    )


def start_reaper(lost_after_seconds: float) -> threading.Thread:
    """A daemon thread of the web process that fails sessions whose supervisor went silent and,
    in distributed mode, dispatches again queued work whose broker message was lost
    (training_worker.redispatch).

    Several web processes may each run one: the updates are conditional, so they agree.
    """
    from django.conf import settings

    redispatch_after = float(getattr(settings, "SESSION_REDISPATCH_AFTER_SECONDS", 60))

    def reap_forever() -> None:
        from django.db import close_old_connections

        from training_worker.redispatch import redispatch_lost_work

        last_redispatch = time.monotonic()
        while True:
            time.sleep(max(1.0, min(lost_after_seconds, redispatch_after) / 3))
            try:
                if count := fail_lost_sessions(lost_after_seconds):
                    log.warning("marked %s session(s) failed: worker lost", count)
                if count := fail_lost_scoring_jobs(max(lost_after_seconds, OFFLINE_AFTER_SECONDS)):
                    log.warning("marked %s scoring job(s) failed: worker lost", count)
            except Exception:
                log.warning("the reaper could not check sessions", exc_info=True)
            finally:
                close_old_connections()
            if not settings.DISTRIBUTED or time.monotonic() - last_redispatch < redispatch_after / 3:
                continue
            last_redispatch = time.monotonic()
            try:
                redispatch_lost_work(redispatch_after)
            except Exception:  # Redis away: the next pass tries again
                log.warning("the reconciler could not check queued work", exc_info=True)
            finally:
                close_old_connections()

    thread = threading.Thread(target=reap_forever, name="session-reaper", daemon=True)
    thread.start()
    return thread
