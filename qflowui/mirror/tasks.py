"""Celery tasks of the mirror: thin wrappers around the sync service."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from qflowui.mirror.sync import mirror_sync

logger = logging.getLogger(__name__)


@shared_task(name="mirror.sync", ignore_result=True, acks_late=False)
def sync() -> int | None:
    """One sync pass (beat runs it every QFLOW_SYNC_INTERVAL_SECONDS). Returns its id, or
    None when it was skipped because QFlow asked us (409/429) to wait: no call is made."""
    run = mirror_sync()
    _alerts_after_the_pass()
    return run.pk


def _alerts_after_the_pass() -> None:
    """Saved views' alerts look at what the pass brought; they never hold it up or fail it
    (a lost enqueue is made up by beat's own alert pass)."""
    try:
        from qflowui.teamviews.tasks import alerts

        alerts.apply_async(expires=float(settings.QFLOWUI_ALERT_INTERVAL_SECONDS) * 5)
    except Exception:
        logger.warning("could not queue the alert pass after the sync", exc_info=True)


@worker_ready.connect
def _sync_soon_after_start(**_: object) -> None:
    # A new dashboard should not wait a whole beat interval for its first rows; the delay
    # gives the web server (which may be serving the simulator) time to start.
    if settings.QFLOW_SYNC_ON_START:
        try:
            sync.apply_async(countdown=5)
        except Exception:  # a missed early pass is not worth a crash
            logger.warning("could not schedule the first sync pass", exc_info=True)
