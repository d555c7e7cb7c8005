"""GET /api/health/: is each real component reachable?"""

from __future__ import annotations

from django.conf import settings
from django.db import connection


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _broker() -> str:
    if not settings.DISTRIBUTED:
        return "embedded"
    try:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _workers() -> list[str]:
    if not settings.DISTRIBUTED:
        return ["embedded"]
    from webapp.celery import app

    try:
        replies = app.control.inspect(timeout=1.0).ping() or {}
    except Exception:
        return []
    return sorted(replies)


def report(detailed: bool) -> dict:
    database = _database()
    broker = _broker()
    result = {
        "status": "ok" if database == "ok" and broker in ("ok", "embedded") else "degraded",
        "database": database,
        "broker": broker,
        "channel_layer": "redis" if settings.DISTRIBUTED else "in-memory",
    }
    if detailed:
        result["workers"] = _workers()
    return result
