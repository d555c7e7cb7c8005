"""`WS /ws/sessions/<id>/` through the real ASGI application: who may watch, and what they get."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from analyses import live
from analyses.design import default_design
from analyses.models import Analysis, ApiToken, MLTask, Session
from webapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session(project, dataset, users):
    analysis = Analysis.objects.create(project=project, dataset=dataset, name="a")
    mltask = MLTask.objects.create(
        analysis=analysis,
        target="species",
        prediction_type="multiclass",
        classes=["setosa", "versicolor", "virginica"],
        **default_design(dataset, "species", "multiclass"),
    )
    return Session.objects.create(
        mltask=mltask, design=mltask.design(), created_by=users["owner"], epochs_total=3
    )


def token_headers(user) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Token {ApiToken.issue(user).key}".encode())]


async def connect(session_id: int, headers):
    communicator = WebsocketCommunicator(application, f"/ws/sessions/{session_id}/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


def test_member_gets_a_snapshot_then_live_events(session, users):
    headers = token_headers(users["viewer"])

    async def scenario():
        communicator, connected, _ = await connect(session.pk, headers)
        assert connected
        snapshot = await communicator.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot" and snapshot["id"] == session.pk
        assert snapshot["status"] == "queued" and snapshot["metrics"] == []
        # The supervisor publishes from another thread (the embedded dispatcher's), as in production.
        publisher = threading.Thread(
            target=live.publish,
            args=(
                session.pk,
                {"type": "epoch", "epoch": 1, "seconds": 0.1, "values": {"Test Accuracy": 0.9}},
            ),
        )
        publisher.start()
        event = await communicator.receive_json_from(timeout=5)
        publisher.join()
        assert isinstance(event.pop("sent_at"), float)  # when it was published (bench/websocket_fanout.py)
        assert event == {"type": "epoch", "epoch": 1, "seconds": 0.1, "values": {"Test Accuracy": 0.9}}
        await communicator.disconnect()

    asyncio.run(scenario())


def test_outsider_is_refused_before_accept(session, users):
    headers = token_headers(users["stranger"])

    async def scenario():
        communicator, connected, _ = await connect(session.pk, headers)
        assert not connected
        await communicator.disconnect()

    asyncio.run(scenario())


def test_unknown_session_is_refused_like_a_forbidden_one(session, users):
    headers = token_headers(users["owner"])

    async def scenario():
        communicator, connected, _ = await connect(session.pk + 1000, headers)
        assert not connected

    asyncio.run(scenario())


def test_cookie_from_a_foreign_origin_is_refused(session, users):
    client = Client()
    client.force_login(users["owner"])
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario(origin: bytes):
        communicator, connected, _ = await connect(session.pk, [(b"cookie", cookie), (b"origin", origin)])
        if connected:
            await communicator.disconnect()
        return connected

    assert asyncio.run(scenario(b"http://127.0.0.1:8000")) is True
    assert asyncio.run(scenario(b"https://evil.example.com")) is False


def test_bad_token_is_refused(session):
    async def scenario():
        communicator, connected, _ = await connect(session.pk, [(b"authorization", b"Token nope")])
        assert not connected

    asyncio.run(scenario())
