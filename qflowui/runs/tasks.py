"""Celery tasks of the run outbox: thin interfaces over qflowui.runs.services.

They take only a run id: the body lives in the database, secrets in settings. What they
raise (and Celery logs) carries QFlow's messages masked.
"""

from __future__ import annotations

from celery import shared_task

from qflowui.qflow.errors import QflowError, QflowRateLimited, QflowUnavailable
from qflowui.runs import services

# The POST can take the client's timeouts plus a token fetch; past the hard limit the child
# is killed, the message is redelivered, and the redelivery finds the run `submitting`.
SUBMIT_SOFT_LIMIT = 150
SUBMIT_HARD_LIMIT = 180


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
    retry_backoff_max=60,
    retry_jitter=False,
    max_retries=40,  # far past the 10-minute bound, after which the service gives up
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
    """Beat, every 30 s: enqueue what the broker never got, hand stuck submits to reconcile."""
    services.runs_sweep()
