"""`WS /ws/sessions/<id>/`: a snapshot of the stored session, then its live events."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.http import Http404

from analyses import live
from analyses.access import get_session_for
from analyses.serializers import session_detail

CLOSE_NOT_FOUND = 4404


class SessionConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        live.register_server_loop(asyncio.get_running_loop())
        user = self.scope.get("user")
        session_id = int(self.scope["url_route"]["kwargs"]["session_id"])
        try:
            await database_sync_to_async(get_session_for)(user, session_id)
        except (Http404, PermissionDenied):
            await self.close(code=CLOSE_NOT_FOUND)  # refused before accept: the handshake fails
            return
        # Subscribe before reading the snapshot so nothing falls between the two; the page
        # de-duplicates epochs it gets twice.
        self.group = live.group_name(session_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await database_sync_to_async(lambda: session_detail(get_session_for(user, session_id)))()
        await self.accept()
        await self.send_json({"type": "snapshot", **snapshot})

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """The stream is one-way; actions go through the JSON API, where roles are checked. Whatever a
        watcher sends (JSON, other text, binary) is ignored: decoding it would let a malformed frame
        crash the consumer (tests/fuzz/test_websocket_messages.py)."""

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every handler: a hop to the sync thread
        # and back, per event and per watcher (with 200 watchers, most of the server's time).
        # Relaying an event touches no database, so it goes straight through (bench/websocket_fanout.py).
        if message["type"] == "session.event":
            await self.session_event(message)
        else:
            await super().dispatch(message)

    async def session_event(self, message: dict) -> None:
        await self.send_json(message["event"])
