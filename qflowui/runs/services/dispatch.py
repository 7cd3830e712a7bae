"""Handing run work to Celery: the submit task and the reconcile task, never blocking long."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from qflowui.runs.models import Run, RunState

# A countdown never longer than this: a message a worker holds for its ETA counts against
# Redis's visibility timeout, and it must stay well below the sweeper's re-enqueue age so the
# sweeper never sends a second message for a run whose first is merely waiting.
MAX_COUNTDOWN_SECONDS = 30.0


def _send(task_name: str, args: tuple, *, countdown: float | None = None) -> bool:
    # Looked up on the package at call time: `qflowui.runs.services._send` is the one seam
    # where tests record what would be handed to the broker (qflowui.core.broker.send).
    from qflowui.runs import services

    return services._send(task_name, args, countdown=countdown)


def run_enqueue(run_id: int, *, countdown: float | None = None) -> bool:
    """Hand a queued run to the submit task. False when the broker could not be reached."""
    if countdown is not None:
        countdown = max(0.0, min(float(countdown), MAX_COUNTDOWN_SECONDS))
    sent = _send("runs.submit", (run_id,), countdown=countdown)
    fields: dict[str, Any] = {"enqueue_attempts": F("enqueue_attempts") + 1}
    if sent:
        fields["enqueued_at"] = timezone.now()
    Run.objects.filter(pk=run_id, state=RunState.QUEUED).update(**fields)
    return sent


def reconcile_enqueue(run_id: int, *, countdown: float | None = None) -> bool:
    delay = settings.RUNS_RECONCILE_DELAY_SECONDS if countdown is None else countdown
    return _send("runs.reconcile", (run_id,), countdown=delay)
