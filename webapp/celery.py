"""The Celery app: `celery -A webapp worker -Q training`. Configured from Django settings (CELERY_*)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["training_worker"])


@worker_process_init.connect
def _start_warm_runner(**_: object) -> None:
    """Each pool process keeps a runner warm for its next session (training_worker.warm)."""
    from training_worker import warm

    warm.replenish()
