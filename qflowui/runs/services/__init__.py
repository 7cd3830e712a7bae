"""Run services, one module per job: create (the form's POST), submit (the one POST to QFlow),
reconcile (a lost answer: the correlation variable, or a person), sweep (lost messages).

`state` holds the state changes they share, `dispatch` the hand-over to Celery, `execution`
the execution a run started. Views, tasks and tests import from here.
"""

from __future__ import annotations

from qflowui.core.broker import send as _send  # the seam where tests record enqueues
from qflowui.runs.services.create import IdempotencyConflict, body_digest, run_create
from qflowui.runs.services.dispatch import reconcile_enqueue, run_enqueue
from qflowui.runs.services.execution import run_execution_refresh
from qflowui.runs.services.reconcile import (
    DID_NOT_START,
    STARTED,
    Decision,
    ReconcilePending,
    carries,
    listed_variables,
    looking_until,
    run_reconcile,
    run_review,
    runs_reconcile_all,
)
from qflowui.runs.services.state import (
    MASKED_BODY_STATES,
    MAX_ERROR_CHARS,
    masked_error,
    record_submitted,
    safe_error,
)
from qflowui.runs.services.submit import MAX_ATTEMPTS, REFUSALS, run_submit
from qflowui.runs.services.sweep import SweepResult, runs_sweep

__all__ = [
    "DID_NOT_START",
    "MASKED_BODY_STATES",
    "MAX_ATTEMPTS",
    "MAX_ERROR_CHARS",
    "REFUSALS",
    "STARTED",
    "Decision",
    "IdempotencyConflict",
    "ReconcilePending",
    "SweepResult",
    "_send",
    "body_digest",
    "carries",
    "listed_variables",
    "looking_until",
    "masked_error",
    "reconcile_enqueue",
    "record_submitted",
    "run_create",
    "run_enqueue",
    "run_execution_refresh",
    "run_reconcile",
    "run_review",
    "run_submit",
    "runs_reconcile_all",
    "runs_sweep",
    "safe_error",
]
