"""`manage.py trainingworker`: a Celery training worker sized to this machine's GPUs.

One task slot per GPU (one on a CPU machine); a GPU worker consumes both queues (``training`` and
``training.gpu``), a CPU worker ``training`` only, so sessions that ask for GPUs wait for a GPU
worker rather than land on a CPU one (training_worker/gpus.py). ``WORKER_GPUS`` overrides what
nvidia-smi finds; ``WORKER_CONCURRENCY`` overrides the slot count. Arguments after ``--`` go to Celery.
"""

from __future__ import annotations

import os
import shutil
import sys

from django.core.management.base import BaseCommand

from training_worker import gpus as gpu_module
from training_worker.workers import local_gpus


def celery_command(extra: list[str]) -> list[str]:
    found = local_gpus()
    slots = int(os.environ.get("WORKER_CONCURRENCY") or gpu_module.worker_slots(found))
    celery = shutil.which("celery", path=os.path.dirname(sys.executable)) or "celery"
    return [
        celery,
        "-A",
        "webapp",
        "worker",
        "-Q",
        ",".join(gpu_module.worker_queues(found)),
        "--concurrency",
        str(slots),
        "-O",
        "fair",
        "--loglevel",
        "INFO",
        *extra,
    ]


class Command(BaseCommand):
    help = "Start a Celery training worker: one task slot per GPU, queues by what the machine has."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="print the Celery command and exit")
        parser.add_argument("celery_args", nargs="*", help="more Celery worker arguments (after --)")

    def handle(self, *args, dry_run: bool, celery_args: list[str], **options):
        command = celery_command(celery_args)
        found = local_gpus()
        described = ", ".join(f"{gpu.index}: {gpu.name}" for gpu in found) or "none"
        self.stderr.write(f"GPUs: {described}; starting: {' '.join(command)}")
        if dry_run:
            self.stdout.write(" ".join(command))
            return
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(command[0], command)
