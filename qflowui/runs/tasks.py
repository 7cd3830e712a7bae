"""Celery tasks of the run outbox: thin interfaces over qflowui.runs.services.

They take only a run id: the body lives in the database, secrets in settings. What they
raise (and Celery logs) carries QFlow's messages masked.
"""

from __future__ import annotations

import logging
import math

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from qflowui.qflow.errors import QflowError, QflowRateLimited, QflowUnavailable
from qflowui.runs import services

logger = logging.getLogger(__name__)

# The POST can take the client's timeouts plus a token fetch; past the hard limit the child
# is killed, the message is redelivered, and the redelivery finds the run `submitting`.
# Redis's visibility timeout (CELERY_VISIBILITY_TIMEOUT_SECONDS) is set above it.
SUBMIT_HARD_LIMIT = settings.RUNS_SUBMIT_HARD_LIMIT_SECONDS
SUBMIT_SOFT_LIMIT = SUBMIT_HARD_LIMIT - 30
# Listing one workflow's executions (a few pages) is far quicker; bounded all the same.
RECONCILE_SOFT_LIMIT = 120
RECONCILE_HARD_LIMIT = 150
RECONCILE_BACKOFF_MAX = 60
# Retries reach past the bound, after which the service settles the run for good.
RECONCILE_RETRIES = 10 + math.ceil(
    settings.RUNS_RECONCILE_BOUND_MINUTES * 60 / RECONCILE_BACKOFF_MAX
)
SWEEP_ON_START_COUNTDOWN = 2.0


@shared_task(
    name="runs.submit",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=0,  # never retried: the claim decides, and an unclear POST goes to reconcile
    soft_time_limit=SUBMIT_SOFT_LIMIT,
    time_limit=SUBMIT_HARD_LIMIT,
)
def submit(run_id: int) -> None:
    services.run_submit(int(run_id))


@shared_task(
    name="runs.reconcile",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(services.ReconcilePending, QflowUnavailable, QflowRateLimited),
    retry_backoff=5,
    retry_backoff_max=RECONCILE_BACKOFF_MAX,
    retry_jitter=False,
    max_retries=RECONCILE_RETRIES,
    soft_time_limit=RECONCILE_SOFT_LIMIT,
    time_limit=RECONCILE_HARD_LIMIT,
)
def reconcile(run_id: int | None = None) -> None:
    """One unknown run (scheduled right after it became unknown), or all of them (beat)."""
    try:
        if run_id is None:
            services.runs_reconcile_all()
        else:
            services.run_reconcile(int(run_id))
    except QflowError as exc:
        # Celery logs the exception of a retry or a failure: QFlow's message masked, and
        # the same type, so autoretry_for still applies.
        raise services.masked_error(exc) from None


@shared_task(name="runs.sweep", ignore_result=True, acks_late=False)
def sweep() -> None:
    """Beat every 30 s, and each worker once at start: enqueue what the broker never got,
    hand stuck submits to reconcile."""
    services.runs_sweep()


@worker_ready.connect
def _sweep_soon_after_start(**_: object) -> None:
    # Beat is not the only rescuer: a worker that starts (after a crash, a deploy, a broker
    # outage) sends what waits in the outbox at once, even while beat is down. Harmless when
    # there is nothing to do, and the claim keeps a run from being posted twice.
    if settings.RUNS_SWEEP_ON_START:
        try:
            sweep.apply_async(countdown=SWEEP_ON_START_COUNTDOWN)
        except Exception:  # a missed early sweep is not worth a crash
            logger.warning("could not schedule the sweep at start", exc_info=True)
