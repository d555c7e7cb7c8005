"""Celery entry points: thin, take ids, stable names. The work is in supervisor.py."""

from __future__ import annotations

import socket

from celery import shared_task


@shared_task(name="training_worker.tasks.train_session", ignore_result=True, bind=True)
def train_session(self, session_id: int) -> None:
    from training_worker.supervisor import supervise

    # The node name (`-n`), as the worker advertises itself (training_worker.workers).
    supervise(session_id, worker_name=self.request.hostname or f"celery@{socket.gethostname()}")


@shared_task(name="training_worker.tasks.score_dataset", ignore_result=True, bind=True)
def score_dataset(self, job_id: int) -> None:
    """A batch scoring job (training_worker.scoring_jobs)."""
    from training_worker.scoring_jobs import run_scoring_job

    run_scoring_job(job_id, worker_name=self.request.hostname or f"celery@{socket.gethostname()}")
