"""Run services: the outbox row, handing it to Celery, the one POST, reconciliation, the sweeper.

The POST to QFlow's /run starts real work (it may stop instances or rotate keys) and QFlow has
no idempotency key, so:

- a run is POSTed only by the task that moved it queued -> submitting (one conditional UPDATE);
- a run goes back to queued only when its POST certainly never reached QFlow;
- when the POST may have reached QFlow (timeout, 5xx, a worker lost mid-POST) the run is
  `unknown`, and reconciliation looks for it in the workflow's execution list. It never posts.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import threading
import traceback
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from qflowui.core.masking import mask
from qflowui.mirror.models import Execution, Workflow
from qflowui.mirror.sync import execution_fields
from qflowui.qflow import QflowClient, client_from_settings
from qflowui.qflow import types as qt
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
from qflowui.runs import audit
from qflowui.runs.display import MAX_TEXT, masked_body_fields, shown_text
from qflowui.runs.models import Run, RunEvent, RunState
from qflowui.runs.overrides import holds_mask, listed_value_matches, parse_variable_strings

logger = logging.getLogger(__name__)

# QFlow refused the request itself: it did not start anything, and sending it again won't help.
REFUSALS = (
    QflowRequestRejected,
    QflowForbidden,
    QflowNotFound,
    QflowAuthError,
    QflowConfigError,
    QflowInvalidId,
)
MAX_ATTEMPTS = 5  # claims of one run whose POST never reached QFlow
API_SOURCE = "PUBLIC_API"
# Once QFlow has seen a run (or it failed), its body is kept masked: the exact body was only
# needed to post it. A run back in queued keeps the exact body: it is posted again.
MASKED_BODY_STATES = frozenset({RunState.SUBMITTED, RunState.FAILED, RunState.UNKNOWN})
MAX_ERROR_CHARS = MAX_TEXT  # QFlow's messages as stored in Run.error


def _seconds(name: str, default: float) -> timedelta:
    return timedelta(seconds=float(getattr(settings, name, default)))


def enqueue_timeout() -> float:
    """Bounds connecting to and writing to the broker from the form's POST (budget: 100 ms)."""
    return float(getattr(settings, "RUNS_ENQUEUE_TIMEOUT_SECONDS", 0.05))


def queued_grace() -> timedelta:
    """A queued run younger than this is left to the enqueue of the request that made it."""
    return _seconds("RUNS_QUEUED_GRACE_SECONDS", 5)


def reenqueue_after() -> timedelta:
    """An enqueued run still queued after this is enqueued again (its message may be lost)."""
    return _seconds("RUNS_REENQUEUE_AFTER_SECONDS", 60)


def submitting_stale_after() -> timedelta:
    """Longer than the submit task's hard time limit: its worker is certainly gone."""
    return _seconds("RUNS_SUBMITTING_STALE_SECONDS", 240)


def reconcile_bound() -> timedelta:
    return _seconds("RUNS_RECONCILE_BOUND_SECONDS", 600)


def reconcile_delay() -> float:
    return float(getattr(settings, "RUNS_RECONCILE_DELAY_SECONDS", 3))


def clock_skew() -> timedelta:
    return _seconds("RUNS_CLOCK_SKEW_SECONDS", 120)


class IdempotencyConflict(Exception):
    """The form's key was already used by another user or for another body."""


class ReconcilePending(Exception):
    """No matching execution yet; the reconcile task retries (declared on its decorator)."""


# --- state changes ----------------------------------------------------------------------------


def _transition(
    run_id: int, sources: Iterable[str], target: str, *, note: str = "", **fields: Any
) -> bool:
    """Move a run to `target` if it is in one of `sources`; record the time and a RunEvent.

    QFlow's words (the note, `error`, `response`) are masked before they are stored; from
    submitted, failed or unknown on, the body is stored masked, in the same UPDATE.
    """
    now = timezone.now()
    stamp = {} if target == RunState.QUEUED else {f"{target}_at": now}
    fields = _masked_fields(fields)
    sources = list(sources)
    with transaction.atomic():
        if target in MASKED_BODY_STATES:
            body = (
                Run.objects.select_for_update()
                .filter(pk=run_id, state__in=sources)
                .values("input", "variables")
                .first()
            )
            if body is None:
                return False
            fields.update(masked_body_fields(body["input"], body["variables"]))
        changed = Run.objects.filter(pk=run_id, state__in=sources).update(
            state=target, **stamp, **fields
        )
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


def _traceback_text(exc: BaseException) -> str:
    """A traceback for the log, masked: an exception's message may carry upstream text."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return "".join(safe_error(line) for line in lines)


def body_digest(workflow_id: Any, body: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"workflow": str(workflow_id), "body": body}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- the form's POST ----------------------------------------------------------------------------


def run_create(
    *,
    user: Any,
    workflow: Workflow,
    body: dict[str, Any],
    idempotency_key: uuid.UUID,
    request: HttpRequest | None = None,
) -> tuple[Run, bool]:
    """The outbox row for a run request, or the existing one for the same key: (run, created).

    The same form posted twice (double click, resend, two tabs, at the same moment) carries
    the same key and finds the same run. The key used by another user, or with another
    body, raises IdempotencyConflict.
    """
    digest = body_digest(workflow.pk, body)
    existing = Run.objects.filter(idempotency_key=idempotency_key).first()
    if existing is None:
        try:
            with transaction.atomic():
                run = Run.objects.create(
                    idempotency_key=idempotency_key,
                    created_by=user,
                    workflow=workflow,
                    workflow_name=workflow.name,
                    cloud=workflow.cloud,
                    input=body.get("input") or {},
                    variables=body.get("variables") or {},
                    body_sha256=digest,
                )
                RunEvent.objects.create(
                    run=run, state=RunState.QUEUED, at=run.queued_at, note="requested"
                )
                audit.audit_record(
                    action=audit.RUN_REQUESTED,
                    request=request,
                    user=user,
                    target=f"run {run.pk}",
                    detail=_audit_detail(workflow, body),
                )
                transaction.on_commit(lambda: run_enqueue(run.pk), robust=True)
            return run, True
        except IntegrityError:
            # A concurrent request with the same key committed first.
            existing = Run.objects.filter(idempotency_key=idempotency_key).first()
            if existing is None:
                raise
    if existing.created_by_id != user.pk or existing.body_sha256 != digest:
        reason = (
            "another user" if existing.created_by_id != user.pk else "a different workflow or body"
        )
        audit.audit_record(
            action=audit.RUN_KEY_CONFLICT,
            request=request,
            user=user,
            target=f"run {existing.pk}",
            detail={**_audit_detail(workflow, body), "reason": reason},
        )
        raise IdempotencyConflict(
            f"This form was already submitted for {reason}, so it was not run again. "
            "Open a new run form to start another run."
        )
    audit.audit_record(
        action=audit.RUN_DUPLICATE, request=request, user=user, target=f"run {existing.pk}"
    )
    return existing, False


def _audit_detail(workflow: Workflow, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "workflow": str(workflow.pk),
        "workflow_name": workflow.name,
        "variables": body.get("variables") or {},
        "input_keys": sorted(body.get("input") or {})[:20],
    }


# --- handing work to Celery ----------------------------------------------------------------------


_local = threading.local()


def _send(task_name: str, args: tuple, *, countdown: float | None = None) -> bool:
    """Publish a task without blocking: bounded connects, no retry loop.

    The broker being down must not slow the form's answer or lose the run: the row is
    already committed, and the sweeper enqueues what could not be enqueued here. A
    connection is kept per thread (a connect costs more than the publish); when it fails,
    one fresh connection is tried, since the broker may have restarted since.
    """
    reused = _cached_connection() is not None
    for attempt in (1, 2):
        try:
            _publish(_connection(fresh=attempt == 2), task_name, args, countdown)
            return True
        except Exception as exc:  # noqa: BLE001 - any broker failure: the sweeper takes over
            _drop_connection()
            # A fresh connection already failed: a second one would only double the wait.
            if attempt == 2 or not reused:
                logger.warning("could not enqueue %s%s: %s", task_name, args, type(exc).__name__)
                return False
    return False


def _publish(conn: Any, task_name: str, args: tuple, countdown: float | None) -> None:
    from qflowui.celery import app

    app.send_task(
        task_name,
        args=args,
        connection=conn,
        retry=False,
        countdown=countdown,
        ignore_result=True,
    )


def _cached_connection() -> Any:
    from qflowui.celery import app

    cached = getattr(_local, "broker", None)
    if cached is not None and cached[0] == app.conf.broker_write_url:
        return cached[1]
    return None


def _connection(*, fresh: bool) -> Any:
    from qflowui.celery import app

    if not fresh and (conn := _cached_connection()) is not None:
        return conn
    _drop_connection()
    url = app.conf.broker_write_url
    timeout = enqueue_timeout()
    options = {"max_retries": 0, "socket_connect_timeout": timeout, "socket_timeout": timeout * 2}
    conn = app.connection_for_write(url, connect_timeout=timeout, transport_options=options)
    _local.broker = (url, conn)
    return conn


def _drop_connection() -> None:
    cached = getattr(_local, "broker", None)
    _local.broker = None
    if cached is not None:
        with contextlib.suppress(Exception):  # it is being thrown away
            cached[1].release()


def run_enqueue(run_id: int) -> bool:
    """Hand a queued run to the submit task. False when the broker could not be reached."""
    sent = _send("runs.submit", (run_id,))
    fields: dict[str, Any] = {"enqueue_attempts": F("enqueue_attempts") + 1}
    if sent:
        fields["enqueued_at"] = timezone.now()
    Run.objects.filter(pk=run_id, state=RunState.QUEUED).update(**fields)
    return sent


def reconcile_enqueue(run_id: int, *, countdown: float | None = None) -> bool:
    delay = reconcile_delay() if countdown is None else countdown
    return _send("runs.reconcile", (run_id,), countdown=delay)


# --- the submit task --------------------------------------------------------------------------


def run_submit(run_id: int, *, client: QflowClient | None = None) -> str | None:
    """Claim a queued run and POST it to QFlow once. Returns the run's state afterwards."""
    if not _transition(
        run_id,
        {RunState.QUEUED},
        RunState.SUBMITTING,
        note="claimed by a worker",
        attempts=F("attempts") + 1,
    ):
        return _submit_unclaimed(run_id)
    run = Run.objects.get(pk=run_id)
    if run.attempts > MAX_ATTEMPTS:
        _fail(
            run_id,
            f"QFlow could not be reached in {MAX_ATTEMPTS} attempts; the run was not started.",
        )
        return RunState.FAILED
    try:
        client = client or client_from_settings()
        result = client.run_workflow(
            str(run.workflow_id), input=run.input, variables=run.variables or None
        )
    except QflowUnavailable as exc:
        said = safe_error(exc)
        if exc.maybe_accepted:
            return _mark_unknown(run_id, f"{said}. Looking for it in QFlow's execution list.")
        return _requeue(run_id, f"{said}; the run did not reach QFlow and will be sent again.")
    except QflowRateLimited as exc:
        return _requeue(run_id, f"{safe_error(exc)}; the run did not start and will be sent again.")
    except REFUSALS as exc:
        response = {"status": exc.status_code, "message": safe_error(exc.detail)}
        _fail(run_id, safe_error(exc), response=response)
        return RunState.FAILED
    except QflowError as exc:
        # QFlow answered, but not in a way we understand: it may have started the run.
        return _mark_unknown(
            run_id, f"{safe_error(exc)}. Looking for it in QFlow's execution list."
        )
    except Exception as exc:  # noqa: BLE001 - logged below, with a masked traceback
        # A bug or the soft time limit mid-POST: whether QFlow got it is unknown.
        logger.error(
            "run %s: submit failed unexpectedly\n%s", run_id, _traceback_text(exc).rstrip()
        )
        return _mark_unknown(run_id, f"Submitting stopped unexpectedly ({type(exc).__name__}).")
    record_submitted(run_id, result.execution_id, response=mask(result.raw), reconciled=False)
    logger.info("run %s submitted as execution %s", run_id, result.execution_id)
    _refresh_quietly(run_id, client)
    return RunState.SUBMITTED


def _submit_unclaimed(run_id: int) -> str | None:
    run = Run.objects.filter(pk=run_id).only("state").first()
    if run is None:
        logger.warning("run %s: no such run; nothing to submit", run_id)
        return None
    if run.state == RunState.SUBMITTING:
        # Another delivery of this task claimed the run and may have posted it (a worker lost
        # mid-POST, a message delivered twice). Never post again: find out instead.
        return _mark_unknown(
            run_id,
            "The submit task ran again while an earlier attempt held the run; that attempt "
            "may have reached QFlow, so the run is not sent again. Looking for it in QFlow's "
            "execution list.",
        )
    return run.state


def _mark_unknown(run_id: int, reason: str, sources: Iterable[str] = (RunState.SUBMITTING,)) -> str:
    if _transition(run_id, sources, RunState.UNKNOWN, note=reason, error=reason):
        transaction.on_commit(lambda: reconcile_enqueue(run_id), robust=True)
    return RunState.UNKNOWN


def _requeue(run_id: int, reason: str) -> str:
    # From submitting only: an unknown run's body is already masked and must never be posted.
    _transition(
        run_id,
        {RunState.SUBMITTING},
        RunState.QUEUED,
        note=reason,
        error=reason,
        enqueued_at=None,
    )
    return RunState.QUEUED


def _fail(run_id: int, reason: str, **fields: Any) -> bool:
    return _transition(
        run_id,
        {RunState.SUBMITTING, RunState.UNKNOWN},
        RunState.FAILED,
        note=reason,
        error=reason,
        **fields,
    )


def record_submitted(run_id: int, execution_id: str, *, response: Any, reconciled: bool) -> bool:
    """Store the execution a run started. QFlow's own answer beats what reconciliation guessed."""
    now = timezone.now()
    with transaction.atomic():
        holder = (
            Run.objects.select_for_update()
            .filter(execution_id=execution_id)
            .exclude(pk=run_id)
            .first()
        )
        if holder is not None:
            if reconciled or not holder.reconciled:
                logger.error(
                    "run %s: execution %s already belongs to run %s",
                    run_id,
                    execution_id,
                    holder.pk,
                )
                return False
            _release_guess(holder, execution_id, run_id)
        fields = {"execution_id": execution_id, "reconciled": reconciled, "error": ""}
        if response is not None:
            fields["response"] = mask(response)
        note = (
            f"found as execution {execution_id} in QFlow's execution list"
            if reconciled
            else f"QFlow started execution {execution_id}"
        )
        if _transition(
            run_id, {RunState.SUBMITTING, RunState.UNKNOWN}, RunState.SUBMITTED, note=note, **fields
        ):
            return True
        if reconciled:
            return False
        # Reconciliation got there first (or gave up): QFlow's answer is the truth.
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.state in (RunState.SUBMITTED, RunState.FAILED):
            Run.objects.filter(pk=run_id).update(
                state=RunState.SUBMITTED,
                submitted_at=run.submitted_at or now,
                **fields,
                **masked_body_fields(run.input, run.variables),
            )
            if run.state != RunState.SUBMITTED or str(run.execution_id) != str(execution_id):
                RunEvent.objects.create(run_id=run_id, state=RunState.SUBMITTED, at=now, note=note)
            return True
        return False


def _release_guess(holder: Run, execution_id: str, owner_id: int) -> None:
    """A reconciled run claimed an execution that QFlow says belongs to another run."""
    note = f"execution {execution_id} belongs to run {owner_id}; looking again"
    Run.objects.filter(pk=holder.pk).update(
        state=RunState.UNKNOWN,
        execution_id=None,
        reconciled=False,
        submitted_at=None,
        unknown_at=timezone.now(),
    )
    RunEvent.objects.create(run_id=holder.pk, state=RunState.UNKNOWN, note=note)
    transaction.on_commit(lambda: reconcile_enqueue(holder.pk), robust=True)


# --- reconciliation -------------------------------------------------------------------------------


def run_reconcile(run_id: int, *, client: QflowClient | None = None) -> str | None:
    """Find an unknown run's execution in QFlow's list; never post. ReconcilePending if not yet."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.state != RunState.UNKNOWN:
        return run.state if run else None
    client = client or client_from_settings()
    since, until = _window(run)
    for item in _candidates(client, run, since, until):
        if record_submitted(run.pk, item.id, response=None, reconciled=True):
            logger.info("run %s reconciled as execution %s", run.pk, item.id)
            _refresh_quietly(run.pk, client)
            return RunState.SUBMITTED
    waited = timezone.now() - (run.unknown_at or run.queued_at)
    if waited >= reconcile_bound():
        minutes = round(reconcile_bound().total_seconds() / 60)
        _fail(
            run.pk,
            f"QFlow did not confirm this run, and no matching execution (source {API_SOURCE}, "
            f"started after {since:%H:%M:%S} UTC, same variables) appeared in the workflow's "
            f"execution list within {minutes} minutes. It most likely did not start; check "
            "QFlow before running it again.",
        )
        return RunState.FAILED
    raise ReconcilePending(f"run {run.pk}: no matching execution yet")


def _window(run: Run) -> tuple[datetime, datetime]:
    skew = clock_skew()
    started = run.submitting_at or run.queued_at
    ended = run.unknown_at or timezone.now()
    return started - skew, ended + skew


def _candidates(
    client: QflowClient, run: Run, since: datetime, until: datetime
) -> list[qt.Execution]:
    """Executions that may be this run, best first; those another run holds are left out."""
    items: list[qt.Execution] = []
    for page_number in range(1, 6):
        page = client.list_executions(
            str(run.workflow_id),
            page_number=page_number,
            page_size=100,
            start_at=since,
            end_at=until,
            order="createdAt",
        )
        items.extend(page.items)
        if len(page.items) < 100 or page_number * 100 >= page.total:
            break
    matches = [item for item in items if _matches(item, run, since, until)]
    held = {
        str(pk)
        for pk in Run.objects.filter(execution_id__in=[m.id for m in matches])
        .exclude(pk=run.pk)
        .values_list("execution_id", flat=True)
    }
    matches = [m for m in matches if m.id not in held]
    matches.sort(key=lambda m: (_created(m), m.id))
    if len(matches) > 1 and run.input:
        matches = _prefer_same_input(client, run, matches)
    return matches


def _created(item: qt.Execution) -> datetime:
    return item.created_at or item.start_date or datetime.max.replace(tzinfo=UTC)


def _matches(item: qt.Execution, run: Run, since: datetime, until: datetime) -> bool:
    if item.source and item.source.upper() != API_SOURCE:
        return False
    if item.workflow_id and str(item.workflow_id) != str(run.workflow_id):
        return False
    created = item.created_at or item.start_date
    if created is None or not since <= created <= until:
        return False
    listed = {v.key: v.value for v in parse_variable_strings(item.variables)}
    for key, value in (run.variables or {}).items():
        shown = listed.get(key)
        if shown is None or set(shown) == {"*"} or holds_mask(shown) or holds_mask(value):
            continue  # not listed, or masked (there, or in our stored copy): no evidence
        if not listed_value_matches(shown, value):
            return False
    raw_input = item.raw.get("input")
    return not isinstance(raw_input, dict) or _same_input(raw_input, run.input)


def _same_input(upstream: Any, stored: Any) -> bool:
    """Our stored input is masked once QFlow has seen the run: compare the masked forms."""
    return upstream == stored or mask(upstream) == mask(stored)


def _prefer_same_input(
    client: QflowClient, run: Run, matches: list[qt.Execution]
) -> list[qt.Execution]:
    """Several candidates: those whose trigger emitted our input first (a few calls at most)."""

    def rank(item: qt.Execution) -> int:
        try:
            emitted = client.get_step_output(item.id, "trigger")
        except QflowError:
            return 1
        return 0 if _same_input(emitted, run.input) else 2

    ranked = {m.id: rank(m) for m in matches[:5]}
    return sorted(matches, key=lambda m: ranked.get(m.id, 1))


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
        if state in (RunState.SUBMITTED, RunState.FAILED):
            counts[state] += 1
    return counts


# --- the sweeper ----------------------------------------------------------------------------------


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
        if _mark_unknown(run_id, reason) == RunState.UNKNOWN:
            result.stale += 1
    if result.enqueued or result.enqueue_failed or result.stale:
        logger.info("runs sweep: %s", result)
    return result


# --- the execution a run started ------------------------------------------------------------------


def run_execution_refresh(
    run: Run, *, client: QflowClient | None = None, max_age: float = 2.0
) -> tuple[Execution | None, str]:
    """The run's execution from the mirror, refreshed from QFlow unless terminal or fresh.

    Returns (execution or None, a notice for the page when QFlow could not be asked).
    """
    if not run.execution_id:
        return None, ""
    mirrored = Execution.objects.filter(pk=run.execution_id).first()
    now = timezone.now()
    if mirrored is not None and (
        mirrored.is_terminal or mirrored.last_synced_at >= now - timedelta(seconds=max_age)
    ):
        return mirrored, ""
    try:
        client = client or client_from_settings(max_retries=0)
        item = client.get_execution(str(run.execution_id))
    except QflowNotFound:
        return mirrored, "QFlow does not list this execution yet."
    except QflowError as exc:
        said = safe_error(exc)
        logger.info("run %s: execution refresh failed: %s", run.pk, said)
        return mirrored, f"Could not refresh the execution from QFlow: {said}"
    workflow = run.workflow
    if item.workflow_id and str(item.workflow_id) != str(run.workflow_id):
        workflow = Workflow.objects.filter(pk=item.workflow_id).first() or workflow
    fields = execution_fields(item, workflow, now)
    try:
        mirrored, _ = Execution.objects.update_or_create(
            pk=run.execution_id, defaults={"workflow": workflow, **fields}
        )
    except (OperationalError, IntegrityError):
        # Another process (the worker, a sync, another page) upserted it at the same moment;
        # on SQLite that is a lock error. Its copy is as fresh as ours.
        logger.info("run %s: execution upsert raced another writer", run.pk)
        mirrored = Execution.objects.filter(pk=run.execution_id).first()
    return mirrored, ""


def _refresh_quietly(run_id: int, client: QflowClient | None) -> None:
    """Put a just-started execution in the mirror so its page exists at once; best effort."""
    try:
        run = Run.objects.select_related("workflow").get(pk=run_id)
        run_execution_refresh(run, client=client, max_age=0)
    except Exception as exc:  # noqa: BLE001 - best effort, logged with a masked traceback
        logger.warning(
            "run %s: could not mirror its execution yet\n%s",
            run_id,
            _traceback_text(exc).rstrip(),
        )
