"""The sweeper: nothing waits forever for a message the broker lost.

Beat runs it every 30 s, and every worker runs it once when it starts (beat may be down).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from qflowui.runs.models import Run, RunState
from qflowui.runs.services.dispatch import run_enqueue
from qflowui.runs.services.state import mark_unknown

logger = logging.getLogger(__name__)


def queued_grace() -> timedelta:
    """A queued run younger than this is left to the enqueue of the request that made it."""
    return timedelta(seconds=settings.RUNS_QUEUED_GRACE_SECONDS)


def reenqueue_after() -> timedelta:
    """An enqueued run still queued after this is enqueued again (its message may be lost)."""
    return timedelta(seconds=settings.RUNS_REENQUEUE_AFTER_SECONDS)


def submitting_stale_after() -> timedelta:
    """Longer than the submit task's hard time limit: its worker is certainly gone."""
    return timedelta(seconds=settings.RUNS_SUBMITTING_STALE_SECONDS)


@dataclass
class SweepResult:
    enqueued: int = 0
    enqueue_failed: int = 0
    stale: int = 0


def runs_sweep(*, now: datetime | None = None) -> SweepResult:
    """Enqueue queued runs the broker never got; send runs stuck in submitting to reconcile."""
    now = now or timezone.now()
    result = SweepResult()
    due = (
        Run.objects.filter(state=RunState.QUEUED, queued_at__lte=now - queued_grace())
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=now - reenqueue_after()))
        # QFlow asked to wait: the run's own countdown message sends it when the wait is over.
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .order_by("queued_at")
        .values_list("pk", flat=True)
    )
    for run_id in due[:200]:
        if run_enqueue(run_id):
            result.enqueued += 1
        else:
            result.enqueue_failed += 1
            break  # the broker is still down: the next pass tries again
    stale = Run.objects.filter(
        state=RunState.SUBMITTING, submitting_at__lte=now - submitting_stale_after()
    ).values_list("pk", flat=True)
    for run_id in stale[:200]:
        reason = (
            "The worker submitting this run stopped without an answer (lost or killed); "
            "it may have reached QFlow. Looking for it in QFlow's execution list."
        )
        if mark_unknown(run_id, reason) == RunState.UNKNOWN:
            result.stale += 1
    if result.enqueued or result.enqueue_failed or result.stale:
        logger.info("runs sweep: %s", result)
    return result
