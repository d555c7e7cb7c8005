"""Workers say they are up: their GPUs, task slots and queues, every few seconds (``GET /api/workers/``).

A Celery worker advertises from its main process (``webapp/celery.py``: on ``worker_ready`` a
heartbeat thread starts, on shutdown the row goes); the embedded executor advertises from the web
process. A worker whose heartbeat stopped (killed, host lost) shows as offline after
``OFFLINE_AFTER_SECONDS`` and is forgotten after an hour.
"""

from __future__ import annotations

import logging
import socket
import threading
from datetime import timedelta
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from training_worker import gpus as gpu_module

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
OFFLINE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS
FORGET_AFTER = timedelta(hours=1)

_stop = threading.Event()
_thread: threading.Thread | None = None
_gpus_of_this_process: list[gpu_module.Gpu] | None = None


def local_gpus() -> list[gpu_module.Gpu]:
    """This process's GPUs, detected once (nvidia-smi takes a moment)."""
    global _gpus_of_this_process
    if _gpus_of_this_process is None:
        _gpus_of_this_process = gpu_module.detect()
    return _gpus_of_this_process


def advertise(name: str, slots: int | None = None) -> None:
    """Say ``name`` is up now, with this host's GPUs, and keep saying it every few seconds."""
    global _thread
    found = local_gpus()
    slots = slots or gpu_module.worker_slots(found)
    _beat(name, found, slots, first=True)
    _stop.clear()
    _thread = threading.Thread(
        target=_heartbeats, args=(name, found, slots), name="worker-heartbeat", daemon=True
    )
    _thread.start()


def withdraw(name: str) -> None:
    """The worker is going away (clean shutdown)."""
    from analyses.models import Worker

    _stop.set()
    try:
        Worker.objects.filter(name=name).delete()
    except Exception:  # shutting down: the row will show as offline instead
        log.warning("could not remove worker %s from the list", name, exc_info=True)


def _heartbeats(name: str, found: list[gpu_module.Gpu], slots: int) -> None:
    while not _stop.wait(HEARTBEAT_SECONDS):
        try:
            _beat(name, found, slots)
        except Exception:  # the database may be briefly away; the next beat tries again
            log.warning("worker heartbeat failed", exc_info=True)
        finally:
            close_old_connections()


def _beat(name: str, found: list[gpu_module.Gpu], slots: int, first: bool = False) -> None:
    from analyses.models import Worker

    now = timezone.now()
    fields: dict[str, Any] = {
        "host": socket.gethostname(),
        "gpus": [gpu.as_json() for gpu in found],
        "slots": slots,
        "queues": gpu_module.worker_queues(found),
        "last_seen": now,
    }
    if first:
        fields["started_at"] = now
        Worker.objects.update_or_create(name=name, defaults=fields)
        Worker.objects.filter(last_seen__lt=now - FORGET_AFTER).delete()
    elif not Worker.objects.filter(name=name).update(**fields):
        Worker.objects.create(name=name, started_at=now, **fields)


def workers_json() -> list[dict[str, Any]]:
    """Every worker seen in the last hour: online or not, GPUs (and which session holds each)."""
    from analyses.models import Session, Worker
    from training_worker.events import Status

    now = timezone.now()
    running = Session.objects.filter(status__in=[Status.STARTING, Status.RUNNING]).exclude(worker="")
    held: dict[tuple[str, int], int] = {}
    busy_slots: dict[str, int] = {}
    for session_id, worker, devices in running.values_list("pk", "worker", "devices"):
        busy_slots[worker] = busy_slots.get(worker, 0) + 1
        for index in (devices or {}).get("gpus", []):
            held[(worker, index)] = session_id
    listed = []
    for worker in Worker.objects.filter(last_seen__gte=now - FORGET_AFTER):
        listed.append(
            {
                "name": worker.name,
                "host": worker.host,
                "online": (now - worker.last_seen).total_seconds() <= OFFLINE_AFTER_SECONDS,
                "gpus": [{**gpu, "session": held.get((worker.name, gpu["index"]))} for gpu in worker.gpus],
                "slots": worker.slots,
                "busy_slots": busy_slots.get(worker.name, 0),
                "queues": worker.queues,
                "started_at": worker.started_at.isoformat(),
                "last_seen": worker.last_seen.isoformat(),
            }
        )
    return listed
