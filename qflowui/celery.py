"""The Celery application: configured from Django settings prefixed CELERY_."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from celery.signals import after_setup_logger, beat_init, before_task_publish

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qflowui.settings")

app = Celery("qflowui")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_in_beat = False  # set in the process that runs Celery beat


def ensure_broker_folders() -> None:
    """kombu's filesystem transport needs its folders to exist before it connects."""
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder"):
        folder = options.get(key)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)


@after_setup_logger.connect
def _prepare(**_: object) -> None:
    ensure_broker_folders()


@beat_init.connect
def _beat_started(**_: object) -> None:
    global _in_beat
    _in_beat = True
    from qflowui.runs.heartbeat import beat_tick

    beat_tick(force=True)


@before_task_publish.connect
def _beat_sent_a_task(**_: object) -> None:
    # In the beat process every publish is a scheduled task: beat is alive. Elsewhere
    # (web, workers) publishing proves nothing about beat.
    if _in_beat:
        from qflowui.runs.heartbeat import beat_tick

        beat_tick()
