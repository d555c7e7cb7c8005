"""First-run setup for `make run`: the first admin and the demo project (both idempotent)."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from analyses.demo import load_demo


class Command(BaseCommand):
    help = "Create the first admin (DJANGO_SUPERUSER_USERNAME/PASSWORD, else generated) and the demo project."

    def add_arguments(self, parser):
        parser.add_argument("--no-demo", action="store_true", help="skip the demo datasets")

    def handle(self, *args, no_demo: bool = False, **options):
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        admin = User.objects.filter(username=username).first()
        if admin is None:
            generated = password is None
            password = password or secrets.token_urlsafe(12)
            admin = User.objects.create_superuser(
                username, os.environ.get("DJANGO_SUPERUSER_EMAIL", ""), password
            )
            if generated:  # printed once, now; only its hash is kept
                self.stdout.write(self.style.WARNING(f"Created admin {username!r} with password: {password}"))
            else:
                self.stdout.write(f"Created admin {username!r} (password from DJANGO_SUPERUSER_PASSWORD).")
        if not no_demo and load_demo(admin) is not None:
            self.stdout.write("Loaded the Demo project: breast_cancer, diabetes, iris, wine.")
        self.stdout.write(f"Log in as {username!r}.")
