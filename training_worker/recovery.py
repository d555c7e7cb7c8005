"""Sessions whose supervisor is gone: the heartbeat tells, the row is marked failed ("worker lost").

The same loop re-dispatches queued work whose broker message was lost (training_worker.redispatch).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.utils import timezone

from analyses import live
from analyses.models import Session
from training_worker.events import Status

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
    return len(lost)


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
