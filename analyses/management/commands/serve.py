"""`manage.py serve`: the web process (daphne), and in embedded mode the training dispatcher too."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from training_worker.recovery import fail_lost_sessions, start_reaper


class Command(BaseCommand):
    help = "Serve DL Studio over ASGI (HTTP + websockets) on --host/--port."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        if not settings.DISTRIBUTED:
            # One process holds every runner in embedded mode: whatever it was running when it
            # stopped is lost, and its queue lived in memory.
            from training_worker.dispatch import requeue_waiting_sessions

            lost = fail_lost_sessions(older_than_seconds=0)
            waiting = requeue_waiting_sessions()
            if lost or waiting:
                self.stdout.write(f"Recovered: {lost} lost session(s) marked failed, {waiting} re-queued.")
        start_reaper(settings.SESSION_LOST_AFTER_SECONDS)
        self.stdout.write(self.style.SUCCESS(f"DL Studio is serving at http://{host}:{port}/"))
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(
            [
                "-b",
                host,
                "-p",
                str(port),
                "--proxy-headers",
                settings.ASGI_APPLICATION.replace(".application", ":application"),
            ]
        )
