"""Make sure the demo login exists and print its credentials (used by `make run`).

Only with the built-in simulator, or with QFLOWUI_DEMO=true (the Docker demo: a simulator
service as upstream; settings then accept only the public demo credentials). Against a real
QFlow gateway (QFLOW_BASE_URL set, so QFLOW_SIMULATOR is off) it creates no user at all, never
re-enables or resets a `demo` user left by an earlier demo run, and prints how to create the
first administrator instead.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERNAME = "demo"


class Command(BaseCommand):
    help = (
        "With the built-in simulator: create (or reset) the demo user and print its user name "
        "and password. Against a real gateway: create nothing, say how to create an admin."
    )

    def handle(self, *args: object, **options: object) -> None:
        if not (settings.QFLOW_SIMULATOR or getattr(settings, "QFLOWUI_DEMO", False)):
            self._real_gateway()
            return
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

    def _real_gateway(self) -> None:
        """No demo login next to real data: nothing is created, reset or re-enabled here."""
        users = get_user_model().objects
        line = "=" * 60
        self.stdout.write(line)
        self.stdout.write(f"  qflowui talks to a real QFlow gateway ({settings.QFLOW_BASE_URL}):")
        self.stdout.write("  no demo login is created.")
        if users.filter(is_superuser=True, is_active=True).exists():
            self.stdout.write("  Sign in with your own account; staff add users at /admin/.")
            self.stdout.write("  Another administrator:  python manage.py createsuperuser")
        else:
            self.stdout.write("  Create the first administrator, then sign in with it:")
            self.stdout.write("      python manage.py createsuperuser")
            self.stdout.write("  (from a checkout: .venv/bin/python manage.py createsuperuser)")
        self.stdout.write(f"  open http://127.0.0.1:{settings.PORT}/")
        self.stdout.write(line)
        if users.filter(username=DEMO_USERNAME, is_active=True).exists():
            self.stderr.write(
                self.style.WARNING(
                    f"WARNING: a user named '{DEMO_USERNAME}' exists and can sign in (left by an "
                    "earlier demo run?). Disable it: /admin/ -> Users -> demo -> untick Active, "
                    'or: python manage.py shell -c "from django.contrib.auth.models import '
                    f"User; User.objects.filter(username='{DEMO_USERNAME}')"
                    '.update(is_active=False)"'
                )
            )


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
