"""WSGI entry point (gunicorn qflowui.wsgi)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qflowui.settings")
# A web server: page queries get the statement timeout (DATABASE_STATEMENT_TIMEOUT_MS).
os.environ.setdefault("QFLOWUI_WEB_PROCESS", "true")

application = get_wsgi_application()
