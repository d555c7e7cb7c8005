"""Where a queued session stands: its place in its queue and whether any worker can take it.

What the session page says while it waits ("queued — position 2 · no GPU worker online"). Sessions
are taken in id order within a queue (Celery's FIFO with prefetch 1; the embedded pool's FIFO).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from analyses.models import Session, Worker
from training_worker.events import Status
from training_worker.gpus import GPU_QUEUE, queue_for
from training_worker.workers import OFFLINE_AFTER_SECONDS


def _queue_of(design: dict | None) -> str:
    runtime = ((design or {}).get("training") or {}).get("runtime") or {}
    try:
        return queue_for(runtime.get("gpus"))
    except ValueError:  # a design saved before runtime settings were checked: the default queue
        return queue_for(None)


def queue_info(session: Session) -> dict[str, Any] | None:
    """``{queue, position, workers_online}`` for a queued session; None once a worker took it."""
    if session.status != Status.QUEUED:
        return None
    queue = _queue_of(session.design)
    earlier = Session.objects.filter(status=Status.QUEUED, pk__lt=session.pk).values_list("design", flat=True)
    ahead = sum(1 for design in earlier if _queue_of(design) == queue)
    recent = timezone.now() - timedelta(seconds=OFFLINE_AFTER_SECONDS)
    online = [w for w in Worker.objects.filter(last_seen__gte=recent) if queue in (w.queues or [])]
    return {
        "queue": queue,
        "needs_gpu": queue == GPU_QUEUE,
        "position": ahead + 1,
        "workers_online": len(online),
    }
