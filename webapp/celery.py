"""The Celery app (`manage.py trainingworker` starts a worker sized to the GPUs). Configured from
Django settings (CELERY_*)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["training_worker"])


@worker_process_init.connect
def _start_warm_runner(**_: object) -> None:
    """Each pool process keeps a runner warm for its next session (training_worker.warm)."""
    from training_worker import warm

    warm.replenish()


@worker_ready.connect
def _advertise(sender: object = None, **_: object) -> None:
    """The main process says which GPUs, slots and queues it has, every few seconds."""
    from training_worker import workers

    controller = getattr(sender, "controller", None)  # sender: the consumer; its WorkController
    workers.advertise(_node_name(sender), slots=getattr(controller, "concurrency", None) or None)


@worker_shutdown.connect
def _withdraw(sender: object = None, **_: object) -> None:
    from training_worker import workers

    workers.withdraw(_node_name(sender))


def _node_name(sender: object) -> str:
    import socket

    return str(getattr(sender, "hostname", None) or f"celery@{socket.gethostname()}")
