"""The Celery broker seen from the web and the tasks: is it reachable, and publishing to it
without ever blocking the caller for long."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from django.conf import settings

from qflowui.celery import app, ensure_broker_folders

logger = logging.getLogger(__name__)

_local = threading.local()


def broker_reachable(timeout: float = 2.0) -> bool:
    ensure_broker_folders()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        logger.warning("broker unreachable")
        return False


def send(task_name: str, args: tuple, *, countdown: float | None = None) -> bool:
    """Publish a task without blocking: bounded connects, no retry loop. False if not sent.

    The broker being down must not slow a page's answer or lose work: callers keep what is
    to be done in the database, and a sweeper sends what could not be sent here. A
    connection is kept per thread (a connect costs more than the publish); when it fails,
    one fresh connection is tried, since the broker may have restarted since.
    """
    reused = _cached_connection() is not None
    for attempt in (1, 2):
        try:
            _publish(_connection(fresh=attempt == 2), task_name, args, countdown)
            return True
        except Exception as exc:  # noqa: BLE001 - any broker failure: the sweeper takes over
            _drop_connection()
            # A fresh connection already failed: a second one would only double the wait.
            if attempt == 2 or not reused:
                logger.warning("could not enqueue %s%s: %s", task_name, args, type(exc).__name__)
                return False
    return False


def _publish(conn: Any, task_name: str, args: tuple, countdown: float | None) -> None:
    app.send_task(
        task_name,
        args=args,
        connection=conn,
        retry=False,
        countdown=countdown,
        ignore_result=True,
    )


def _cached_connection() -> Any:
    cached = getattr(_local, "broker", None)
    if cached is not None and cached[0] == app.conf.broker_write_url:
        return cached[1]
    return None


def _connection(*, fresh: bool) -> Any:
    if not fresh and (conn := _cached_connection()) is not None:
        return conn
    _drop_connection()
    ensure_broker_folders()
    url = app.conf.broker_write_url
    # Bounds connecting to and writing to the broker from a request (the run form: 100 ms).
    timeout = float(settings.RUNS_ENQUEUE_TIMEOUT_SECONDS)
    options = {"max_retries": 0, "socket_connect_timeout": timeout, "socket_timeout": timeout * 2}
    conn = app.connection_for_write(url, connect_timeout=timeout, transport_options=options)
    _local.broker = (url, conn)
    return conn


def _drop_connection() -> None:
    cached = getattr(_local, "broker", None)
    _local.broker = None
    if cached is not None:
        with contextlib.suppress(Exception):  # it is being thrown away
            cached[1].release()
