"""gunicorn settings of the Docker image (`gunicorn qflowui.wsgi -c python:qflowui.gunicorn_conf`).

WEB_CONCURRENCY sets the worker processes (blank or unset: 3), as gunicorn itself reads it;
a blank value (an empty line copied from .env.example) must not stop the server. Options on
the command line still win over these.
"""

from __future__ import annotations

import os

# The container's port; publish it where you like (docker-compose.yml: QFLOWUI_HTTP_PORT).
bind = "0.0.0.0:8000"
workers = int(os.environ.get("WEB_CONCURRENCY", "").strip() or 3)
threads = 4
timeout = 60
# Workers' heartbeat files in memory, not on the container's overlay filesystem.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - a tmpfs in every container
accesslog = "-"
