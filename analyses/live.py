"""Publishing stored session events to the browsers watching them (channel group `session-<id>`).

Called from the supervising task (a Celery worker process, or a thread of the embedded
dispatcher) after the event is stored. A failed publish never fails training.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

log = logging.getLogger(__name__)

# The in-memory layer's queues belong to the web server's event loop; a thread must hand its
# sends to that loop rather than run them on a loop of its own. Consumers register it on connect.
_server_loop: asyncio.AbstractEventLoop | None = None


def register_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    _server_loop = loop


def group_name(session_id: int) -> str:
    return f"session-{session_id}"


def publish(session_id: int, event: dict[str, Any]) -> None:
    """Send one event (already stored) to the session's watchers, stamped ``sent_at`` (Unix seconds,
    when it was handed to the channel layer: bench/websocket_fanout.py measures delivery from it)."""
    message = {"type": "session.event", "event": {**event, "sent_at": time.time()}}
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        if isinstance(layer, InMemoryChannelLayer):
            _publish_in_memory(layer, group_name(session_id), message)
        else:
            async_to_sync(layer.group_send)(group_name(session_id), message)
    except Exception:  # a dead channel layer must not stop training
        log.warning("could not publish %s event of session %s", event.get("type"), session_id, exc_info=True)


def _publish_in_memory(layer: InMemoryChannelLayer, group: str, message: dict) -> None:
    loop = _server_loop
    if loop is None or loop.is_closed():
        return  # no websocket ever connected in this process: nobody is listening
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.create_task(layer.group_send(group, message))
    else:
        # Not waited on: a busy or stopping server must never stall training. The loop runs the
        # sends in the order they were handed over.
        asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
