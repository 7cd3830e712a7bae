"""The Celery application: configured from Django settings prefixed CELERY_."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from celery.signals import (
    after_setup_logger,
    beat_init,
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
)

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


@setup_logging.connect
def _configure_logging(loglevel: int | str | None = None, **_: object) -> None:
    """Worker and beat log like the web processes: settings.LOGGING (LOG_FORMAT plain or
    json, request ids), not Celery's own format. Connecting this signal stops Celery from
    taking over the root logger; the level stays the one given with --loglevel."""
    import copy
    import logging.config

    from django.conf import settings

    config = copy.deepcopy(settings.LOGGING)
    if loglevel:
        config.setdefault("root", {})["level"] = loglevel
    logging.config.dictConfig(config)
    ensure_broker_folders()  # after_setup_logger is not sent when this signal has a receiver


@beat_init.connect
def _beat_started(**_: object) -> None:
    global _in_beat
    _in_beat = True
    from qflowui.runs.heartbeat import beat_tick

    beat_tick(force=True)


@before_task_publish.connect
def _pass_the_request_id(headers: dict | None = None, **_: object) -> None:
    """A task sent while a request (or a task) runs carries its request id and user."""
    if headers is None:
        return
    from qflowui.core.requestid import task_headers

    headers.update(task_headers())


@task_prerun.connect
def _task_request_id(task: object = None, **_: object) -> None:
    from qflowui.core.requestid import task_started

    task_started(getattr(task, "request", None))


@task_postrun.connect
def _task_request_id_done(**_: object) -> None:
    from qflowui.core.requestid import task_finished

    task_finished()


@before_task_publish.connect
def _beat_sent_a_task(**_: object) -> None:
    # In the beat process every publish is a scheduled task: beat is alive. Elsewhere
    # (web, workers) publishing proves nothing about beat.
    if _in_beat:
        from qflowui.runs.heartbeat import beat_tick

        beat_tick()
