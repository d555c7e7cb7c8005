"""ASGI entry point: Django for HTTP, Channels for `/ws/`."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from analyses.consumers import SessionConsumer  # noqa: E402
from webapp.ws_auth import TokenOrCookieAuthMiddleware  # noqa: E402

websocket_urlpatterns = [path("ws/sessions/<int:session_id>/", SessionConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TokenOrCookieAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
