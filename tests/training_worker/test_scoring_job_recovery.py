"""Work whose worker is gone is marked failed: scoring jobs by their worker's heartbeat."""

from __future__ import annotations

import pytest
from django.utils import timezone

from analyses.models import MLTask, ScoringJob, Session, Worker
from tests.analyses.test_api import create_mltask
from training_worker.recovery import JOB_LOST_MESSAGE, fail_lost_scoring_jobs

pytestmark = pytest.mark.django_db


def test_a_running_scoring_job_fails_once_its_worker_stops_advertising(clients, project, dataset) -> None:
    mltask = MLTask.objects.get(pk=create_mltask(clients["owner"], project, dataset).json()["id"])
    session = Session.objects.create(mltask=mltask, design=mltask.design(), status="succeeded")
    long_ago = timezone.now() - timezone.timedelta(minutes=5)
    now = timezone.now()
    Worker.objects.create(name="alive", host="h", slots=1, queues=["training"], started_at=now, last_seen=now)
    Worker.objects.create(
        name="gone", host="h", slots=1, queues=["training"], started_at=now, last_seen=long_ago
    )

    def job(worker: str, started) -> ScoringJob:
        return ScoringJob.objects.create(
            session=session, dataset=dataset, status="running", worker=worker, started_at=started
        )

    on_alive, on_gone, never_seen, just_started = (
        job("alive", long_ago),
        job("gone", long_ago),
        job("vanished", long_ago),
        job("gone", now),  # too recent to judge: its worker may not have said anything yet
    )
    assert fail_lost_scoring_jobs(60) == 2
    for kept in (on_alive, just_started):
        kept.refresh_from_db()
        assert kept.status == "running"
    for lost in (on_gone, never_seen):
        lost.refresh_from_db()
        assert lost.status == "failed" and lost.error["message"] == JOB_LOST_MESSAGE and lost.ended_at
