"""`manage.py serve`: the web process (uvicorn), and in embedded mode the training dispatcher too.

uvicorn rather than daphne: daphne holds a whole request body in memory before the application
sees any of it (a 217 MB upload peaked at 2.3 GB resident), while uvicorn hands the body over in
chunks and stops reading the socket while the application is behind, so Django spools an upload
to disk with bounded memory. Websockets (Channels) go through uvicorn's ``websockets`` protocol.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand

from training_worker.recovery import fail_lost_sessions, start_reaper


class Command(BaseCommand):
    help = "Serve DL Studio over ASGI (HTTP + websockets, uvicorn) on --host/--port."

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
            from training_worker.scoring_jobs import recover_embedded_jobs

            recover_embedded_jobs()  # scoring jobs likewise: a running one is lost, queued ones go again
            from training_worker import warm, workers
            from training_worker.dispatch import embedded_slots

            warm.replenish()  # this process runs the sessions: keep a runner ready for the first one
            workers.advertise("embedded", slots=embedded_slots())
        start_reaper(settings.SESSION_LOST_AFTER_SECONDS)
        self.stdout.write(self.style.SUCCESS(f"DL Studio is serving at http://{host}:{port}/"))
        self.stdout.flush()
        import uvicorn

        uvicorn.run(
            settings.ASGI_APPLICATION.replace(".application", ":application"),
            host=host,
            port=port,
            ws="websockets",
            lifespan="off",  # Django and Channels do not speak the lifespan protocol
            # X-Forwarded-For/-Proto from the reverse proxy; FORWARDED_ALLOW_IPS narrows whom to trust.
            proxy_headers=True,
            forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "*"),
            log_config=None,  # Django's LOGGING configures the uvicorn loggers
            access_log=False,
        )
