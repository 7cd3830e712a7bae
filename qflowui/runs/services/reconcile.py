"""Runs whose POST answer was lost: found by their correlation variable, or decided by a person.

A run is never matched to an execution by guesswork. QFlow records the variables a run posts
on its execution (the execution list shows them as "key=value" strings), and every run posts
`qflowuiRunId=<its public id>` (settings.RUNS_CORRELATION_VARIABLE): the execution carrying
it is the run's, and no other is. Without one:

- while the bound has not passed (RUNS_RECONCILE_BOUND_MINUTES after the POST), keep looking:
  QFlow's list may lag, and its clock may differ (RUNS_RECONCILE_LOOKBACK_MINUTES);
- then `not_started` when QFlow has no execution that could be the run, or `needs_review`
  when some could: the run's page lists them and a Runner decides.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from qflowui.core.masking import mask_variable_strings
from qflowui.qflow import QflowClient, client_from_settings
from qflowui.qflow import types as qt
from qflowui.qflow.errors import QflowError
from qflowui.runs import audit
from qflowui.runs.models import Run, RunState
from qflowui.runs.services.execution import refresh_quietly
from qflowui.runs.services.state import record_submitted, safe_error, transition

logger = logging.getLogger(__name__)

API_SOURCE = "PUBLIC_API"
PAGE_SIZE = 100
MAX_PAGES = 10  # 1,000 executions of one workflow within the window


class ReconcilePending(Exception):
    """No execution carries the run's id yet; the reconcile task retries (on its decorator)."""


def lookback() -> timedelta:
    return timedelta(minutes=settings.RUNS_RECONCILE_LOOKBACK_MINUTES)


def reconcile_bound() -> timedelta:
    return timedelta(minutes=settings.RUNS_RECONCILE_BOUND_MINUTES)


def posted_at(run: Run) -> datetime:
    """When the POST whose answer was lost was sent (its claim)."""
    return run.submitting_at or run.queued_at


def looking_until(run: Run) -> datetime:
    return posted_at(run) + reconcile_bound()


# --- the correlation variable ---------------------------------------------------------------


def listed_variables(item: qt.Execution) -> list[tuple[str, str]]:
    """An execution's variables as (key, value) text, however QFlow lists them: "k=v" strings
    (spaces and quotes around either side tolerated), {"key", "value"} objects, or the
    `overrideVariables` of the run's envelope."""
    pairs: list[tuple[str, str]] = []
    overrides = item.raw.get("overrideVariables") if isinstance(item.raw, dict) else None
    for entry in [*(item.variables or []), *(overrides if isinstance(overrides, list) else [])]:
        if isinstance(entry, str) and "=" in entry:
            key, _, value = entry.partition("=")
        elif isinstance(entry, dict) and "key" in entry:
            key, value = entry.get("key"), entry.get("value")
        else:
            continue
        if isinstance(value, list) and len(value) == 1:
            value = value[0]  # a definition-style ["value"]
        pairs.append((_unquoted(key), _unquoted(value)))
    return [(key, value) for key, value in pairs if key]


def _unquoted(text: Any) -> str:
    text = str(text if text is not None else "").strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def _same_id(value: str, public_id: uuid.UUID) -> bool:
    try:
        return uuid.UUID(value) == public_id
    except ValueError:
        return False


def carries(item: qt.Execution, key: str, public_id: uuid.UUID) -> bool:
    """Does this execution carry `key=<public_id>`: was it started by that run?"""
    return any(k == key and _same_id(v, public_id) for k, v in listed_variables(item))


# --- reconciliation ---------------------------------------------------------------------------


def run_reconcile(run_id: int, *, client: QflowClient | None = None) -> str | None:
    """Find an unknown run's execution by its correlation variable; never post.

    Raises ReconcilePending while nothing carries it and the bound has not passed.
    """
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.state != RunState.UNKNOWN:
        return run.state if run else None
    client = client or client_from_settings()
    now = timezone.now()
    since = posted_at(run) - lookback()
    listed, complete = _listed(client, run, since, now + lookback())
    if run.correlation_key:
        ours = [item for item in listed if carries(item, run.correlation_key, run.public_id)]
        if len(ours) == 1:
            note = f"found by its correlation variable {run.correlation}: execution {ours[0].id}"
            if record_submitted(run.pk, ours[0].id, response=None, reconciled=True, note=note):
                logger.info("run %s reconciled as execution %s", run.pk, ours[0].id)
                refresh_quietly(run.pk, client)
                return RunState.SUBMITTED
        if ours:
            return _needs_review(
                run,
                ours,
                f"{len(ours)} executions carry this run's correlation variable {run.correlation}"
                if len(ours) > 1
                else f"Execution {ours[0].id} carries this run's correlation variable "
                f"{run.correlation} but another run holds it",
            )
    if now < looking_until(run):
        raise ReconcilePending(f"run {run.pk}: no execution carries its id yet")
    candidates = _plausible(listed, run)
    window = f"from {since:%Y-%m-%d %H:%M} UTC until now"
    if not complete:
        # Not every execution of the window was read: "none of them" cannot be said.
        return _needs_review(
            run,
            candidates,
            f"The workflow has more executions {window} than qflowui reads "
            f"({MAX_PAGES * PAGE_SIZE}), so it cannot tell that none is this run",
        )
    if candidates:
        if run.correlation_key:
            why = (
                f"No execution carries this run's correlation variable {run.correlation}, but "
                f"QFlow lists no variables for {_count(candidates)} started through the API "
                "around then, so they cannot be ruled out"
            )
        else:
            why = (
                "This run was sent without a correlation variable (RUNS_CORRELATION_VARIABLE "
                f"was off), so it cannot be matched automatically; {_count(candidates)} "
                "started through the API around then"
            )
        return _needs_review(run, candidates, why)
    minutes = round(reconcile_bound().total_seconds() / 60)
    if run.correlation_key:
        reason = (
            f"QFlow has no execution for this run: none of the workflow's executions {window} "
            f"carries its correlation variable {run.correlation}, {minutes} minutes after it "
            "was sent. It did not start; it can be run again."
        )
    else:
        reason = (
            "QFlow has no execution for this run: no execution of this workflow was started "
            f"through the API around then ({window}), {minutes} minutes after it was sent. "
            "It did not start; it can be run again."
        )
    transition(run.pk, {RunState.UNKNOWN}, RunState.NOT_STARTED, note=reason, error=reason)
    logger.info("run %s: not started (no execution for it in QFlow)", run.pk)
    return RunState.NOT_STARTED


def _count(items: list[Any]) -> str:
    return "1 execution" if len(items) == 1 else f"{len(items)} executions"


def _needs_review(run: Run, items: list[qt.Execution], why: str) -> str:
    reason = f"{why}. A Runner decides on this page whether one of them is this run."
    if not items:
        reason = f"{why}. A Runner decides on this page whether it started (check QFlow)."
    candidates = [_candidate(item) for item in items]
    transition(
        run.pk,
        {RunState.UNKNOWN},
        RunState.NEEDS_REVIEW,
        note=reason,
        error=reason,
        candidates=candidates,
    )
    logger.info("run %s: needs review (%d candidates)", run.pk, len(candidates))
    return RunState.NEEDS_REVIEW


def _candidate(item: qt.Execution) -> dict[str, Any]:
    created = _created(item)
    return {
        "id": str(item.id),
        "created_at": created.isoformat() if created else None,
        "status": safe_error(item.status)[:60],
        "variables": [
            safe_error(text)[:300]
            for text in mask_variable_strings([f"{k}={v}" for k, v in listed_variables(item)])
        ][:50],
    }


def _created(item: qt.Execution) -> datetime | None:
    return item.created_at or item.start_date


def _listed(
    client: QflowClient, run: Run, since: datetime, until: datetime
) -> tuple[list[qt.Execution], bool]:
    """The workflow's executions created in [since, until], and whether that is all of them."""
    items: list[qt.Execution] = []
    for page_number in range(1, MAX_PAGES + 1):
        page = client.list_executions(
            str(run.workflow_id),
            page_number=page_number,
            page_size=PAGE_SIZE,
            start_at=since,
            end_at=until,
            order="createdAt",
        )
        items.extend(page.items)
        if len(page.items) < PAGE_SIZE or page_number * PAGE_SIZE >= page.total:
            return items, True
    return items, False


def _plausible(items: list[qt.Execution], run: Run) -> list[qt.Execution]:
    """Executions that could be this run (no evidence says otherwise), oldest first.

    Same workflow, started through the API, created within the lookback of the POST, not
    held by another run and not carrying another run's correlation variable. With a
    correlation variable posted, an execution whose variables QFlow lists is not the run
    unless it carries it (checked before): only those listed without any variable remain.
    """
    since = posted_at(run) - lookback()
    until = (run.unknown_at or timezone.now()) + lookback()
    keys = set(
        Run.objects.exclude(correlation_key="").values_list("correlation_key", flat=True).distinct()
    )
    found = []
    for item in items:
        created = _created(item)
        if item.source and item.source.upper() != API_SOURCE:
            continue
        if item.workflow_id and str(item.workflow_id) != str(run.workflow_id):
            continue
        if created is None or not since <= created <= until:
            continue
        variables = listed_variables(item)
        if run.correlation_key and variables:
            continue
        if any(key in keys and not _same_id(value, run.public_id) for key, value in variables):
            continue  # another run's execution
        found.append(item)
    held = {
        str(pk)
        for pk in Run.objects.filter(execution_id__in=[i.id for i in found])
        .exclude(pk=run.pk)
        .values_list("execution_id", flat=True)
    }
    found = [item for item in found if str(item.id) not in held]
    found.sort(key=lambda i: (_created(i) or datetime.max.replace(tzinfo=UTC), str(i.id)))
    return found


def runs_reconcile_all(*, client: QflowClient | None = None) -> dict[str, int]:
    """Beat's pass over every unknown run (the per-run task normally gets there first)."""
    counts = {"checked": 0, "submitted": 0, "failed": 0}
    pending = Run.objects.filter(state=RunState.UNKNOWN).order_by("unknown_at")
    for run_id in pending.values_list("pk", flat=True)[:50]:
        counts["checked"] += 1
        try:
            client = client or client_from_settings()
            state = run_reconcile(run_id, client=client)
        except ReconcilePending:
            continue
        except QflowError as exc:
            logger.warning("reconcile pass stopped: %s", safe_error(exc))
            break
        if state in (RunState.SUBMITTED, RunState.NEEDS_REVIEW, RunState.NOT_STARTED):
            counts[state] = counts.get(state, 0) + 1
    return counts


# --- a person decides -------------------------------------------------------------------------

STARTED = "started"  # "this is it"
DID_NOT_START = "not_started"


@dataclass(frozen=True)
class Decision:
    changed: bool  # False: nothing was changed (decided already, or refused)
    message: str
    refused: bool = False


def run_review(
    run_id: int,
    *,
    user: Any,
    decision: str,
    execution_id: str | None = None,
    request: HttpRequest | None = None,
) -> Decision:
    """A Runner's answer for a needs_review run: "this is it" (one of its candidates) or
    "it did not start". The first answer wins; the same answer again changes nothing."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return Decision(False, "No such run.", refused=True)
    who = user.get_username()
    if decision == STARTED:
        execution_id = str(execution_id or "")
        if execution_id not in {str(c.get("id")) for c in run.candidates or []}:
            return Decision(False, "That execution is not one of this run's candidates.", True)
        note = f"{who} decided: this run is execution {execution_id}"
        if record_submitted(
            run.pk,
            execution_id,
            response=None,
            reconciled=True,
            chosen_by=user,
            note=note,
            sources=(RunState.NEEDS_REVIEW,),
        ):
            _audit(request, user, run, decision, execution_id)
            return Decision(True, f"Recorded: this run is execution {execution_id}.")
    elif decision == DID_NOT_START:
        note = f"{who} decided: it did not start"
        reason = f"QFlow has no execution for this run: {who} checked and decided it did not start."
        if transition(
            run.pk,
            {RunState.NEEDS_REVIEW},
            RunState.NOT_STARTED,
            note=note,
            error=reason,
            reviewed_by=user,
        ):
            _audit(request, user, run, decision, None)
            return Decision(True, "Recorded: this run did not start. It can be run again.")
    else:
        return Decision(False, "Choose “this is it” or “it did not start”.", refused=True)
    return _already(run.pk, decision, execution_id)


def _already(run_id: int, decision: str, execution_id: str | None) -> Decision:
    """The run had left needs_review: the same answer again is fine, another is refused."""
    run = Run.objects.select_related("reviewed_by").get(pk=run_id)
    same = (decision == DID_NOT_START and run.state == RunState.NOT_STARTED) or (
        decision == STARTED
        and run.state == RunState.SUBMITTED
        and str(run.execution_id) == execution_id
    )
    if same:
        return Decision(False, "This was already recorded; nothing changed.")
    if run.state == RunState.NEEDS_REVIEW:
        holder = Run.objects.filter(execution_id=execution_id).exclude(pk=run_id).first()
        where = f" (run {holder.pk})" if holder else ""
        return Decision(
            False, f"Execution {execution_id} already belongs to another run{where}.", True
        )
    by = f" by {run.reviewed_by.get_username()}" if run.reviewed_by else ""
    return Decision(
        False,
        f"This run was already decided{by}: it is {run.get_state_display().lower()}. "
        "Nothing changed.",
        refused=True,
    )


def _audit(
    request: HttpRequest | None, user: Any, run: Run, decision: str, execution_id: str | None
) -> None:
    detail: dict[str, Any] = {"decision": decision, "workflow": str(run.workflow_id)}
    if execution_id:
        detail["execution"] = execution_id
    audit.audit_record(
        action=audit.RUN_REVIEWED, request=request, user=user, target=f"run {run.pk}", detail=detail
    )
