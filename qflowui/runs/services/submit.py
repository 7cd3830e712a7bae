"""The submit task's service: claim a queued run and POST it to QFlow, once.

The POST to QFlow's /run starts real work (it may stop instances or rotate keys) and QFlow has
no idempotency key, so:

- a run is POSTed only by the task that moved it queued -> submitting (one conditional
  UPDATE): that claim is the single gate, and the same run never has two POSTs in flight;
- a run goes back to queued only when its POST certainly never reached QFlow;
- when the POST may have reached QFlow (timeout, 5xx, a worker lost mid-POST) the run is
  `unknown`, and reconciliation looks for it by its correlation variable. It never posts.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from qflowui.core.masking import mask
from qflowui.mirror.sync import visit_soon
from qflowui.qflow import QflowClient, client_from_settings
from qflowui.qflow.errors import (
    QflowAuthError,
    QflowConfigError,
    QflowError,
    QflowForbidden,
    QflowInvalidId,
    QflowNotFound,
    QflowRateLimited,
    QflowRequestRejected,
    QflowUnavailable,
)
from qflowui.runs.models import Run, RunState
from qflowui.runs.services.dispatch import MAX_COUNTDOWN_SECONDS, run_enqueue
from qflowui.runs.services.execution import refresh_quietly
from qflowui.runs.services.state import (
    fail,
    mark_unknown,
    record_submitted,
    safe_error,
    traceback_text,
    transition,
)

logger = logging.getLogger(__name__)

# QFlow refused the request itself: it did not start anything, and sending it again won't help.
REFUSALS = (
    QflowRequestRejected,
    QflowForbidden,
    QflowNotFound,
    QflowConfigError,
    QflowInvalidId,
)
MAX_ATTEMPTS = 5  # claims of one run whose POST never reached QFlow


def run_submit(run_id: int, *, client: QflowClient | None = None) -> str | None:
    """Claim a queued run and POST it to QFlow once. Returns the run's state afterwards."""
    due = Q(not_before__isnull=True) | Q(not_before__lte=timezone.now())
    if not transition(
        run_id,
        {RunState.QUEUED},
        RunState.SUBMITTING,
        note="claimed by a worker",
        where=due,
        attempts=F("attempts") + 1,
    ):
        return _submit_unclaimed(run_id)
    run = Run.objects.get(pk=run_id)
    if run.attempts > MAX_ATTEMPTS:
        last = f" The last attempt: {run.error}" if run.error else ""
        fail(
            run_id,
            f"QFlow could not be reached in {MAX_ATTEMPTS} attempts; the run was not started."
            + last,
        )
        return RunState.FAILED
    try:
        client = client or client_from_settings()
        result = client.run_workflow(
            str(run.workflow_id), input=run.input, variables=run.posted_variables() or None
        )
    except QflowUnavailable as exc:
        said = safe_error(exc)
        if exc.maybe_accepted:
            return mark_unknown(run_id, f"{said}. Looking for it in QFlow's execution list.")
        return _requeue(run_id, f"{said}; the run did not reach QFlow and will be sent again.")
    # QFLOW-API.md §10 "Errors, rate limits, retention": the 401 body is the Qualys gateway's
    # own ("JWT expired", "Not authenticated"), and the rate limits are the gateway's (all
    # Qualys APIs, per subscription, with X-RateLimit-* headers; 409 or 429). Both are
    # answered by the gateway in front of QFlow before the request is handed to QFlow, so
    # QFlow started nothing and the run may be posted again. (The client relies on the same
    # for a 401: it posts once more with a fresh token.) The claim stays the only gate: the
    # run goes back to queued, and the next POST comes from a new claim.
    except QflowAuthError as exc:
        delay = _backoff(run.attempts)
        return _requeue(
            run_id,
            f"{safe_error(exc)}; QFlow's gateway refused the token before the run reached "
            f"QFlow, so it did not start. It will be sent again in {delay:.0f} s.",
            countdown=delay,
        )
    except QflowRateLimited as exc:
        delay = exc.wait_seconds if exc.wait_seconds is not None else _backoff(run.attempts)
        return _requeue(
            run_id,
            f"{safe_error(exc)}; the run did not start and will be sent again in {delay:.0f} s.",
            countdown=delay,
        )
    except REFUSALS as exc:
        response = {"status": exc.status_code, "message": safe_error(exc.detail)}
        fail(run_id, safe_error(exc), response=response)
        return RunState.FAILED
    except QflowError as exc:
        # QFlow answered, but not in a way we understand: it may have started the run.
        return mark_unknown(run_id, f"{safe_error(exc)}. Looking for it in QFlow's execution list.")
    except Exception as exc:  # noqa: BLE001 - logged below, with a masked traceback
        # A bug or the soft time limit mid-POST: whether QFlow got it is unknown.
        logger.error("run %s: submit failed unexpectedly\n%s", run_id, traceback_text(exc).rstrip())
        return mark_unknown(run_id, f"Submitting stopped unexpectedly ({type(exc).__name__}).")
    record_submitted(run_id, result.execution_id, response=mask(result.raw), reconciled=False)
    logger.info("run %s submitted as execution %s", run_id, result.execution_id)
    refresh_quietly(run_id, client)
    # What the run sets off (its later state, executions it starts) shows with the next pass.
    visit_soon(run.workflow_id)
    return RunState.SUBMITTED


def _backoff(attempts: int) -> float:
    return min(2.0 ** max(1, attempts), MAX_COUNTDOWN_SECONDS)


def _submit_unclaimed(run_id: int) -> str | None:
    run = Run.objects.filter(pk=run_id).only("state", "not_before").first()
    if run is None:
        logger.warning("run %s: no such run; nothing to submit", run_id)
        return None
    if run.state == RunState.QUEUED and run.not_before is not None:
        # Here before QFlow's wait is over (a countdown is capped; or the sweeper): come back.
        run_enqueue(run_id, countdown=(run.not_before - timezone.now()).total_seconds())
        return run.state
    if run.state == RunState.SUBMITTING:
        # Another delivery of this task claimed the run and may have posted it (a worker lost
        # mid-POST, a message delivered twice). Never post again: find out instead.
        return mark_unknown(
            run_id,
            "The submit task ran again while an earlier attempt held the run; that attempt "
            "may have reached QFlow, so the run is not sent again. Looking for it in QFlow's "
            "execution list.",
        )
    return run.state


def _requeue(run_id: int, reason: str, *, countdown: float | None = None) -> str:
    """Back to queued: QFlow certainly did not get this run. With a countdown, it is sent
    again after it; without, the sweeper sends it."""
    # From submitting only: an unknown run's body is already masked and must never be posted.
    not_before = None if countdown is None else timezone.now() + timedelta(seconds=countdown)
    if (
        transition(
            run_id,
            {RunState.SUBMITTING},
            RunState.QUEUED,
            note=reason,
            error=reason,
            enqueued_at=None,
            not_before=not_before,
        )
        and countdown is not None
    ):
        transaction.on_commit(lambda: run_enqueue(run_id, countdown=countdown), robust=True)
    return RunState.QUEUED
