"""Celery entry points: thin, take ids, stable names. The work is in supervisor.py."""

from __future__ import annotations

import socket

from celery import shared_task


@shared_task(name="training_worker.tasks.train_session", ignore_result=True)
def train_session(session_id: int) -> None:
    from training_worker.supervisor import supervise

    supervise(session_id, worker_name=f"celery@{socket.gethostname()}")
