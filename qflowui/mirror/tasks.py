"""Celery tasks of the mirror: thin wrappers around the sync service."""

from __future__ import annotations

from celery import shared_task

from qflowui.mirror.sync import mirror_sync


@shared_task(name="mirror.sync", ignore_result=True, acks_late=False)
def sync() -> int:
    """One sync pass (beat runs it every QFLOW_SYNC_INTERVAL_SECONDS). Returns its id."""
    return mirror_sync().pk
