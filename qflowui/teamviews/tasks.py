"""Celery task of the saved views' alerts: a thin wrapper around the alert pass."""

from __future__ import annotations

from celery import shared_task

from qflowui.teamviews.alerts import alerts_pass


@shared_task(name="teamviews.alerts", ignore_result=True, acks_late=False)
def alerts() -> int:
    """One alert pass (after each sync pass, and on beat for retries). Returns the number of
    executions delivered. Safe to run twice at once: deliveries are claimed, never doubled."""
    return alerts_pass().sent
