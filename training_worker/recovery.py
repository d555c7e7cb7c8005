"""Sessions whose supervisor is gone: the heartbeat tells, the row is marked failed ("worker lost")."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from analyses import live
from analyses.models import Session
from training_worker.events import Status

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
