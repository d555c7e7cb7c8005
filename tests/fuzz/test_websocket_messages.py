"""Random frames and handshakes against `WS /ws/sessions/<id>/`, through the real ASGI application.

The stream is one-way (actions go through the JSON API, where roles are checked): whatever a
watcher sends (JSON of any shape, other text, binary) is ignored. The consumer keeps running and
keeps delivering live events, and nothing stored changes. Handshakes with random Authorization,
Origin and Cookie headers are accepted only for a member's token, refused otherwise, and never
crash the application.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from analyses import live
from analyses.design import default_design
from analyses.models import Analysis, ApiToken, EpochMetric, MLTask, Session, SessionLog
from tests.fuzz.conftest import examples
from webapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
# Messages that look like what a client might try: actions, the server's own event types.
LOOKALIKE = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "interrupt",
                "abort",
                "session.event",
                "session_event",
                "snapshot",
                "epoch",
                "done",
                "websocket.close",
            ]
        )
    },
    optional={"session_id": st.integers(), "event": JSON, "status": st.text(max_size=10)},
)
FRAME = st.one_of(
    st.tuples(st.just("json"), st.one_of(JSON, LOOKALIKE)),
    st.tuples(st.just("text"), st.text(min_size=1, max_size=200)),  # the test client sends no empty frame
    st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=200)),
)


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


def stored(session: Session) -> tuple:
    session.refresh_from_db()
    fields = (
        "status",
        "epochs_done",
        "interrupt_requested_at",
        "abort_requested_at",
        "error",
        "final_metrics",
    )
    return (
        tuple(getattr(session, name) for name in fields),
        EpochMetric.objects.filter(session=session).count(),
        SessionLog.objects.filter(session=session).count(),
        Session.objects.count(),
    )


# Each example runs in an event loop of its own; channels_redis binds its connections' locks to the
# first loop, so the in-memory layer carries the events here (the frames never reach the layer).
@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}})
def test_random_frames_are_ignored_and_the_stream_goes_on(session, users):
    headers = [(b"authorization", f"Token {ApiToken.issue(users['editor']).key}".encode())]
    before = stored(session)

    @settings(max_examples=examples(60))
    @given(frames=st.lists(FRAME, min_size=1, max_size=6))
    def fuzz(frames):
        async def scenario():
            communicator = WebsocketCommunicator(application, f"/ws/sessions/{session.pk}/", headers=headers)
            connected, _ = await communicator.connect(timeout=5)
            assert connected
            assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
            for kind, value in frames:
                if kind == "json":
                    await communicator.send_json_to(value)
                elif kind == "text":
                    await communicator.send_to(text_data=value)
                else:
                    await communicator.send_to(bytes_data=value)
            assert await communicator.receive_nothing(timeout=0.05)  # no answer to a client's frame
            event = {"type": "log", "stream": "stdout", "text": "still here"}
            await get_channel_layer().group_send(
                live.group_name(session.pk), {"type": "session.event", "event": event}
            )
            assert await communicator.receive_json_from(timeout=5) == event  # the consumer still runs
            await communicator.disconnect()

        asyncio.run(scenario())

    fuzz()
    assert stored(session) == before


HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)


def test_random_handshake_headers_are_refused_without_crashing(session, users):
    member = ApiToken.issue(users["viewer"]).key

    @settings(max_examples=examples(60))
    @given(
        authorization=st.one_of(
            st.none(),
            HEADER_TEXT,
            HEADER_TEXT.map(lambda text: "Token " + text),
            st.just(f"Token {member}"),
        ),
        origin=st.one_of(
            st.none(),
            HEADER_TEXT,
            st.sampled_from(["http://[::1", "http://testserver", "null", "http://evil.example", "://"]),
        ),
        cookie=st.one_of(st.none(), HEADER_TEXT, HEADER_TEXT.map(lambda text: "sessionid=" + text)),
    )
    def fuzz(authorization, origin, cookie):
        headers = [
            (name, value.encode("latin-1"))
            for name, value in ((b"authorization", authorization), (b"origin", origin), (b"cookie", cookie))
            if value is not None
        ]

        async def scenario():
            communicator = WebsocketCommunicator(application, f"/ws/sessions/{session.pk}/", headers=headers)
            connected, _ = await communicator.connect(timeout=5)
            member_token = authorization is not None and authorization.strip() == f"Token {member}"
            assert connected == member_token, (authorization, origin, cookie)
            if connected:
                assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
            await communicator.disconnect()

        asyncio.run(scenario())

    fuzz()
