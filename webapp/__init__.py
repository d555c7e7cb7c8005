"""The Django project: settings from the environment, URLs, ASGI routing and the Celery app."""

from webapp.celery import app as celery_app

__all__ = ["celery_app"]
