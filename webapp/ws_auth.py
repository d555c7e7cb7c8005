"""Websocket handshake authentication: session cookie (browsers, Origin checked) or Token header."""

from __future__ import annotations

from urllib.parse import urlparse

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _hostname(origin: str) -> str:
    """The Origin header's host; "" for one that is not a URL ("http://[::1" makes urlparse raise)."""
    try:
        return urlparse(origin).hostname or ""
    except ValueError:
        return ""


@database_sync_to_async
def _user_for_token(key: str):
    from analyses.models import ApiToken

    token = ApiToken.objects.select_related("user").filter(key=key, user__is_active=True).first()
    if token is None:
        return AnonymousUser()
    token.touch()
    return token.user


class TokenOrCookieAuthMiddleware:
    """A Token header wins; otherwise the cookie session is used, but only when the Origin is
    one of ours (a cookie alone would let any web page open the stream: CSWSH)."""

    def __init__(self, inner):
        self.inner = inner
        self.cookie_stack = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        authorization = _header(scope, b"authorization") or ""
        if authorization.lower().startswith("token "):
            user = await _user_for_token(authorization.split(" ", 1)[1].strip())
            return await self.inner({**scope, "user": user}, receive, send)
        origin = _header(scope, b"origin")
        if not origin or not validate_host(_hostname(origin), settings.ALLOWED_HOSTS):
            return await self.inner({**scope, "user": AnonymousUser()}, receive, send)
        return await self.cookie_stack(scope, receive, send)
