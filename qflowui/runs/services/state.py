"""A run's state changes, and QFlow's words made fit to store: the pieces every job shares.

Every change is one conditional UPDATE (from the states it may come from) plus a RunEvent,
so two workers, a worker and a person, or a double click never both move the same run.
"""

from __future__ import annotations

import copy
import logging
import traceback
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from qflowui.core.masking import mask
from qflowui.qflow.errors import QflowError
from qflowui.runs.display import MAX_TEXT, masked_body_fields, shown_text
from qflowui.runs.models import Run, RunEvent, RunState
from qflowui.runs.services.dispatch import reconcile_enqueue

logger = logging.getLogger(__name__)

# Once QFlow has seen a run (or it ended), its body is kept masked: the exact body was only
# needed to post it. A run back in queued keeps the exact body: it is posted again.
MASKED_BODY_STATES = frozenset(
    {
        RunState.SUBMITTED,
        RunState.FAILED,
        RunState.UNKNOWN,
        RunState.NEEDS_REVIEW,
        RunState.NOT_STARTED,
    }
)
MAX_ERROR_CHARS = MAX_TEXT  # QFlow's messages as stored in Run.error


def transition(
    run_id: int,
    sources: Iterable[str],
    target: str,
    *,
    note: str = "",
    where: Q | None = None,
    **fields: Any,
) -> bool:
    """Move a run to `target` if it is in one of `sources` (and matches `where`); record the
    time and a RunEvent.

    QFlow's words (the note, `error`, `response`) are masked before they are stored; from
    submitted, failed, unknown, needs_review or not_started on, the body is stored masked,
    in the same UPDATE.
    """
    now = timezone.now()
    stamp = {} if target == RunState.QUEUED else {f"{target}_at": now}
    fields = _masked_fields(fields)
    rows = Run.objects.filter(pk=run_id, state__in=list(sources))
    if where is not None:
        rows = rows.filter(where)
    with transaction.atomic():
        if target in MASKED_BODY_STATES:
            body = rows.select_for_update().values("input", "variables").first()
            if body is None:
                return False
            fields.update(masked_body_fields(body["input"], body["variables"]))
        changed = rows.update(state=target, **stamp, **fields)
        if changed:
            RunEvent.objects.create(run_id=run_id, state=target, at=now, note=_note(note))
    return bool(changed)


def _note(text: str) -> str:
    return shown_text(text, RunEvent._meta.get_field("note").max_length)


def _masked_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A Run update's upstream text masked: `error` (and cut), `response`."""
    fields = dict(fields)
    if fields.get("error"):
        fields["error"] = safe_error(fields["error"])
    if fields.get("response") is not None:
        fields["response"] = mask(fields["response"])
    return fields


def safe_error(text: Any) -> str:
    """Upstream text (QFlow's message, an exception's str(), which may carry QFlow's body)
    fit to store, show or log: masked, then cut to MAX_ERROR_CHARS."""
    return shown_text(text, MAX_ERROR_CHARS)


def masked_error(exc: QflowError) -> QflowError:
    """A copy of a QFlow error whose message is masked, for raising where it gets logged
    (Celery's retry and failure lines print the exception)."""
    clean = copy.copy(exc)
    text = safe_error(str(exc))
    clean.args = (text,)
    clean.message = text
    if exc.detail:
        clean.detail = safe_error(exc.detail)
    return clean


def traceback_text(exc: BaseException) -> str:
    """A traceback for the log, masked: an exception's message may carry upstream text."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return "".join(safe_error(line) for line in lines)


def mark_unknown(run_id: int, reason: str, sources: Iterable[str] = (RunState.SUBMITTING,)) -> str:
    """QFlow may have the run: look for it (reconcile), never post it again."""
    if transition(run_id, sources, RunState.UNKNOWN, note=reason, error=reason):
        transaction.on_commit(lambda: reconcile_enqueue(run_id), robust=True)
    return RunState.UNKNOWN


def fail(run_id: int, reason: str, **fields: Any) -> bool:
    return transition(
        run_id,
        {RunState.SUBMITTING, RunState.UNKNOWN},
        RunState.FAILED,
        note=reason,
        error=reason,
        **fields,
    )


# From these a run can still be tied to the execution it started.
_RECORDABLE = (RunState.SUBMITTING, RunState.UNKNOWN, RunState.NEEDS_REVIEW)
# ... and QFlow's own answer, arriving late, corrects these.
_CORRECTABLE = (RunState.SUBMITTED, RunState.FAILED, RunState.NEEDS_REVIEW, RunState.NOT_STARTED)


def record_submitted(
    run_id: int,
    execution_id: str,
    *,
    response: Any,
    reconciled: bool,
    chosen_by: Any = None,
    note: str = "",
    sources: Iterable[str] = _RECORDABLE,
) -> bool:
    """Tie a run to the execution it started. False when that execution belongs to another run.

    Three kinds of evidence, strongest first: QFlow's own answer to the POST
    (reconciled=False); the run's correlation variable on the execution (reconciled=True);
    a person's choice (chosen_by). Stronger evidence takes an execution away from a run
    that holds it on weaker evidence (that run is looked up again); never the other way.
    """
    now = timezone.now()
    with transaction.atomic():
        holder = (
            Run.objects.select_for_update()
            .filter(execution_id=execution_id)
            .exclude(pk=run_id)
            .first()
        )
        if holder is not None:
            if _strength(reconciled, chosen_by) <= _holder_strength(holder):
                logger.error(
                    "run %s: execution %s already belongs to run %s",
                    run_id,
                    execution_id,
                    holder.pk,
                )
                return False
            _release(holder, execution_id, run_id)
        fields: dict[str, Any] = {
            "execution_id": execution_id,
            "reconciled": reconciled,
            "error": "",
            "not_before": None,
        }
        if chosen_by is not None:
            fields["reviewed_by"] = chosen_by
        if response is not None:
            fields["response"] = mask(response)
        if not note:
            note = (
                f"QFlow started execution {execution_id}"
                if not reconciled
                else f"found as execution {execution_id} in QFlow's execution list"
            )
        if transition(run_id, sources, RunState.SUBMITTED, note=note, **fields):
            return True
        if reconciled:
            return False
        # Reconciliation or a person got there first (or gave up): QFlow's answer is the truth.
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.state in _CORRECTABLE:
            Run.objects.filter(pk=run_id).update(
                state=RunState.SUBMITTED,
                submitted_at=run.submitted_at or now,
                **{**fields, "reviewed_by": None},
                **masked_body_fields(run.input, run.variables),
            )
            if run.state != RunState.SUBMITTED or str(run.execution_id) != str(execution_id):
                RunEvent.objects.create(run_id=run_id, state=RunState.SUBMITTED, at=now, note=note)
            return True
        return False


def _strength(reconciled: bool, chosen_by: Any) -> int:
    if not reconciled:
        return 3  # QFlow's answer
    return 1 if chosen_by is not None else 2


def _holder_strength(holder: Run) -> int:
    return _strength(holder.reconciled, holder.reviewed_by_id)


def _release(holder: Run, execution_id: str, owner_id: int) -> None:
    """A run held an execution on weaker evidence than another run has: look it up again."""
    note = f"execution {execution_id} belongs to run {owner_id}; looking again"
    Run.objects.filter(pk=holder.pk).update(
        state=RunState.UNKNOWN,
        execution_id=None,
        reconciled=False,
        reviewed_by=None,
        submitted_at=None,
        unknown_at=timezone.now(),
    )
    RunEvent.objects.create(run_id=holder.pk, state=RunState.UNKNOWN, note=note)
    transaction.on_commit(lambda: reconcile_enqueue(holder.pk), robust=True)
