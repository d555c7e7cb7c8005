"""What a queued session's page says: its place in its own queue, and whether a worker serves it."""

from __future__ import annotations

import pytest
from django.utils import timezone

from analyses.models import MLTask, Session, Worker
from tests.analyses.test_api import create_mltask
from training_worker.events import Status

pytestmark = pytest.mark.django_db


def test_position_counts_only_earlier_sessions_of_the_same_queue_and_workers_that_serve_it(
    clients, project, dataset
):
    mltask = MLTask.objects.get(pk=create_mltask(clients["owner"], project, dataset).json()["id"])
    design = mltask.design()

    def queued(gpus) -> Session:
        training = {**design["training"], "runtime": {"gpus": gpus, "memory_growth": True}}
        return Session.objects.create(mltask=mltask, design={**design, "training": training})

    first, on_gpu, second = queued("auto"), queued(1), queued(0)
    now = timezone.now()
    Worker.objects.create(name="cpu-1", host="h", slots=1, queues=["training"], started_at=now, last_seen=now)

    def queue(session: Session) -> dict:
        response = clients["viewer"].get(f"/api/sessions/{session.pk}/")
        assert response.status_code == 200
        return response.json()["queue"]

    assert queue(first) == {"queue": "training", "needs_gpu": False, "position": 1, "workers_online": 1}
    assert queue(second)["position"] == 2  # the GPU session between them is in another queue
    assert queue(on_gpu) == {"queue": "training.gpu", "needs_gpu": True, "position": 1, "workers_online": 0}

    Session.objects.filter(pk=first.pk).update(status=Status.RUNNING)
    assert queue(first) is None  # taken: no queue to speak of
    assert queue(second)["position"] == 1
    Worker.objects.filter(name="cpu-1").update(last_seen=now - timezone.timedelta(minutes=2))
    assert queue(second)["workers_online"] == 0  # its heartbeat stopped
