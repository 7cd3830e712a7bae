"""Make sure the demo login exists and print its credentials (used by `make run`)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERNAME = "demo"


class Command(BaseCommand):
    help = "Create (or reset) the demo user and print its user name and password."

    def handle(self, *args: object, **options: object) -> None:
        password = _demo_password()
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=DEMO_USERNAME)
        if created or not user.check_password(password):
            user.set_password(password)
        user.is_staff = True
        user.is_superuser = True
        user.save()
        line = "=" * 60
        self.stdout.write(line)
        self.stdout.write(f"  qflowui demo login:  user {DEMO_USERNAME}  password {password}")
        self.stdout.write(f"  open http://127.0.0.1:{settings.PORT}/")
        self.stdout.write(line)


def _demo_password() -> str:
    """QFLOWUI_DEMO_PASSWORD, else a random one kept in var/ so it stays the same across runs."""
    configured = os.environ.get("QFLOWUI_DEMO_PASSWORD", "").strip()
    if configured:
        return configured
    path = Path(settings.VAR_DIR) / "demo-password.txt"
    if path.exists():
        stored = path.read_text().strip()
        if stored:
            return stored
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password
