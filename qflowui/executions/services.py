"""Detail-page data: read the mirror, refresh it from QFlow only when that can change anything.

- A terminal execution whose steps are cached (`steps_synced_at`) costs no upstream call.
- Otherwise one `get_execution(includeSteps)` (+ `list_steps` when no steps came back), and
  `get_workflow` when the workflow or its definition is not mirrored yet: at most 3 calls.
- Step payloads are masked before they are stored; cached forever once the execution is
  terminal, fetched again while it runs. A payload not cached yet is fetched by a Celery task
  (`executions.fetch_payload`) while the panel polls; without a broker or a live worker, by
  the page itself within the page budget.
- When QFlow is down, slow or wrong, the mirror's copy is served with a notice; only an
  execution unknown to both gives a 404 (or a 503 when QFlow could not be asked).
- A user never waits long on QFlow: every call made for a page has the page budget
  (`client_from_settings(purpose="page")`), and a not-found or failed answer is remembered
  briefly, so the 5 s live refresh of a purged execution does not ask QFlow every time.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from qflowui.core import jsonio
from qflowui.core.masking import mask_free_text, mask_payload, mask_text, nothing_to_mask
from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, Step, StepPayload, Workflow
from qflowui.mirror.refresh import execution_refresh
from qflowui.mirror.sync import workflow_apply
from qflowui.qflow import QflowClient, client_from_settings
from qflowui.qflow.errors import (
    QflowError,
    QflowNotFound,
    QflowRateLimited,
    QflowUnavailable,
)

logger = logging.getLogger(__name__)

# Two tabs polling the same running execution share one refresh per this many seconds.
REFRESH_MIN_SECONDS = 2
# A workflow whose definition QFlow would not give is asked again after this long.
WORKFLOW_RETRY_SECONDS = 60
# Negative cache: QFlow's "not found" (a purged execution) and its failures, remembered.
NOT_FOUND_MEMO_SECONDS = 60
FAILURE_MEMO_SECONDS = 10
EXPORT_MAX_FETCHES = 60
# An export stops fetching payloads after this long (or at QFlow's first failure to answer).
EXPORT_FETCH_SECONDS = 10.0
# A payload fetch claimed by a task: longer than the task's hard time limit (see tasks.py),
# so a claim outlives its task and a lost task is retried once the claim expires.
PAYLOAD_CLAIM_SECONDS = 90
PAYLOAD_DONE_SECONDS = 10
# Celery workers say they are alive this often, and the word lasts this long.
WORKER_HEARTBEAT_SECONDS = 10
WORKER_ALIVE_SECONDS = 30
# Decoded payloads kept per process, counted in RAM as decoded (jsonio.sizeof: a 10 MB
# inventory weighs ~40 MB decoded, a 10 MB array of numbers ~60 MB). One payload above half
# of it is never kept.
PAYLOAD_MEMO_BYTES = 96 * 1024 * 1024
KINDS = (StepPayload.INPUT, StepPayload.OUTPUT)

ClientFactory = Callable[[], QflowClient]


class ExecutionUnknown(LookupError):
    """Neither the mirror nor QFlow knows this execution."""


class ExecutionUnavailable(RuntimeError):
    """The mirror does not have it and QFlow could not be asked."""


def page_client() -> QflowClient:
    """For calls a user waits for: QFLOW_PAGE_BUDGET_SECONDS in all, at most one retry."""
    return client_from_settings(purpose="page")


def task_client() -> QflowClient:
    """For the payload task: longer timeouts, nobody is holding a web thread for it."""
    return client_from_settings(purpose="task")


class _Lazy:
    """Builds the client on first use, so a fully cached page never fetches a token."""

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory
        self._client: QflowClient | None = None

    def __call__(self) -> QflowClient:
        if self._client is None:
            self._client = self._factory()
        return self._client

    @property
    def calls(self) -> int:
        return self._client.calls if self._client is not None else 0


@dataclass
class Detail:
    execution: Execution
    workflow: Workflow
    steps: list[Step]
    notices: list[str] = field(default_factory=list)
    refreshed: bool = False
    upstream_calls: int = 0


def needs_refresh(execution: Execution) -> bool:
    return not (execution.is_terminal and execution.steps_synced_at is not None)


def execution_load(execution_id: str, *, client_factory: ClientFactory = page_client) -> Detail:
    """The execution with its workflow and steps, refreshed from QFlow when it may change."""
    execution_id = str(execution_id)
    client = _Lazy(client_factory)
    notices: list[str] = []
    refreshed = False
    execution = _mirrored(execution_id)
    if execution is None:
        remembered = _upstream_remembered(execution_id)
        if remembered is not None:
            if remembered["missing"]:
                raise ExecutionUnknown(execution_id)
            raise ExecutionUnavailable(remembered["message"])
        try:
            execution = execution_refresh(client(), execution_id, steps=True)
            refreshed = True
        except QflowNotFound as exc:
            _upstream_remember(execution_id, exc)
            raise ExecutionUnknown(execution_id) from None
        except QflowError as exc:
            logger.warning("execution %s: QFlow failed: %s", execution_id, mask_text(str(exc)))
            _upstream_remember(execution_id, exc)
            raise ExecutionUnavailable(str(exc)) from None
        except OperationalError:
            # Another request stored it at the same moment (SQLite's lock): use its copy.
            logger.warning("execution %s: storing it failed", execution_id, exc_info=True)
            execution = _mirrored(execution_id)
            if execution is None:
                raise ExecutionUnavailable("the database was busy; try again") from None
    elif needs_refresh(execution) and (remembered := _upstream_remembered(execution_id)):
        # QFlow said so a moment ago: the live refresh does not ask again before it expires.
        if remembered["missing"]:
            notices.append(GONE_NOTICE)
        else:
            notices.append(_stale_notice(remembered["message"], execution))
    elif needs_refresh(execution) and _claim_refresh(execution_id):
        try:
            execution = execution_refresh(client(), execution_id, steps=True)
            refreshed = True
        except QflowNotFound as exc:
            _upstream_remember(execution_id, exc)
            notices.append(GONE_NOTICE)
        except QflowError as exc:
            logger.warning("execution %s: QFlow failed: %s", execution_id, mask_text(str(exc)))
            _upstream_remember(execution_id, exc)
            notices.append(_stale_notice(str(exc), execution))
        except OperationalError:
            logger.warning("execution %s: storing it failed", execution_id, exc_info=True)
            execution = _mirrored(execution_id) or execution
    workflow = _definition_ensure(client, execution.workflow, notices)
    steps = list(execution.steps.all())
    return Detail(execution, workflow, steps, notices, refreshed, client.calls)


def _mirrored(execution_id: str) -> Execution | None:
    return Execution.objects.select_related("workflow").filter(pk=execution_id).first()


GONE_NOTICE = (
    "QFlow no longer returns this execution (it keeps 30 days); this is the last copy "
    "the dashboard saw."
)


def _claim_refresh(key: str, seconds: int = REFRESH_MIN_SECONDS) -> bool:
    """True for the first caller in `seconds` (per cache): one refresh for many viewers."""
    return cache.add(f"qflowui:refresh:{key}", 1, seconds)


def _upstream_key(execution_id: str) -> str:
    return f"qflowui:upstream:execution:{execution_id}"


def _upstream_remember(execution_id: str, exc: QflowError) -> None:
    """Remember QFlow's "not found" for a minute and its failures for a few seconds."""
    missing = isinstance(exc, QflowNotFound)
    cache.set(
        _upstream_key(execution_id),
        {"missing": missing, "message": str(exc)},
        NOT_FOUND_MEMO_SECONDS if missing else FAILURE_MEMO_SECONDS,
    )


def _upstream_remembered(execution_id: str) -> dict[str, Any] | None:
    return cache.get(_upstream_key(execution_id))


def _stale_notice(message: str, execution: Execution) -> str:
    when = timezone.localtime(execution.last_synced_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"QFlow could not be reached ({message}). Showing the dashboard's copy from {when}."


def _definition_ensure(
    client: Callable[[], QflowClient], workflow: Workflow, notices: list[str]
) -> Workflow:
    """Fetch the workflow's definition if the mirror lacks it (once per WORKFLOW_RETRY_SECONDS)."""
    if workflow.definition is not None or not _claim_refresh(
        f"wf:{workflow.pk}", WORKFLOW_RETRY_SECONDS
    ):
        return workflow
    try:
        return _workflow_fetch(client(), workflow)
    except QflowError as exc:
        notices.append(f"The workflow's definition could not be fetched from QFlow: {exc}.")
        return workflow


def _workflow_fetch(api: QflowClient, workflow: Workflow) -> Workflow:
    item = api.get_workflow(str(workflow.pk))
    workflow_apply(workflow, item)
    workflow.last_synced_at = timezone.now()
    workflow.save()
    return workflow


# --- payloads --------------------------------------------------------------------------------


@dataclass
class Payload:
    kind: str
    body: Any = None
    size: int = 0
    fetched_at: datetime | None = None
    present: bool = False  # False: not fetched (or the step never ran)
    notice: str = ""
    upstream_calls: int = 0


def masked_size(body: Any) -> int:
    return len(jsonio.dumps(body))


def payload_is_final(execution: Execution, row: StepPayload) -> bool:
    """A payload fetched after the execution was known to be over never changes again."""
    if not execution.is_terminal:
        return False
    since = execution.steps_synced_at or execution.ended_at
    return since is not None and row.fetched_at >= since


def _stored(execution: Execution, node_id: str, kind: str) -> StepPayload | None:
    return (
        StepPayload.objects.filter(execution=execution, node_id=node_id, kind=kind)
        .defer("body")
        .first()
    )


def _from_row(row: StepPayload, notice: str = "", upstream_calls: int = 0) -> Payload:
    return Payload(
        row.kind, _body(row), row.size, row.fetched_at, True, notice, upstream_calls=upstream_calls
    )


def step_payload(
    execution: Execution,
    step: Step | None,
    kind: str,
    *,
    prefer_cached: bool = False,
    client_factory: ClientFactory = page_client,
) -> Payload:
    """A step's input or output, masked: from the cache when final, else from QFlow now,
    within the page budget (the page's own fetch, when no task can do it).

    `prefer_cached` serves any stored copy (subtrees, searches and downloads of the payload
    the page is showing), fetching only when there is none.
    """
    if step is None:
        return Payload(kind, notice="This step did not run, so it has no data.")
    row = _stored(execution, step.node_id, kind)
    if row is not None and (prefer_cached or payload_is_final(execution, row)):
        return _from_row(row)
    state = _fetch_state(execution.pk, step.node_id, kind)
    if state is not None and state["state"] == FAILED:
        return _failed_payload(kind, state["message"], row)
    return _fetch_and_store(execution, step.node_id, kind, _Lazy(client_factory), row)


def _fetch_and_store(
    execution: Execution, node_id: str, kind: str, client: _Lazy, row: StepPayload | None
) -> Payload:
    """Ask QFlow for the payload and store it; a failure is remembered for a few seconds."""
    try:
        body = _fetch_payload(client(), execution, node_id, kind)
    except QflowNotFound:
        if not execution.is_terminal:
            message = f"QFlow has no {kind} for this step yet."
            _fetch_state_set(execution.pk, node_id, kind, FAILED, message=message)
            return Payload(kind, notice=message, upstream_calls=client.calls)
        body = None  # QFlow keeps no data for this step: the same as JSON null to an analyst
    except QflowError as exc:
        logger.warning("payload %s/%s/%s: %s", execution.pk, node_id, kind, mask_text(str(exc)))
        _fetch_state_set(execution.pk, node_id, kind, FAILED, message=str(exc))
        return _failed_payload(kind, str(exc), row, client.calls)
    stored = _store_payload(execution, node_id, kind, body)
    return Payload(
        kind, stored.body, stored.size, stored.fetched_at, True, upstream_calls=client.calls
    )


def _failed_payload(
    kind: str, message: str, row: StepPayload | None, upstream_calls: int = 0
) -> Payload:
    if message.startswith("QFlow has no"):
        return Payload(kind, notice=message, upstream_calls=upstream_calls)
    if row is not None:
        notice = f"QFlow could not be reached ({message}); showing the copy fetched earlier."
        return _from_row(row, notice, upstream_calls)
    return Payload(
        kind, notice=f"QFlow could not be reached: {message}.", upstream_calls=upstream_calls
    )


# A payload not cached yet is fetched by a task while the page polls. The state of that fetch
# lives in the shared cache, so every web process and worker sees it:
#   fetching  a task was enqueued (one per payload: the first viewer's `cache.add` wins)
#   done      the task stored the payload
#   failed    QFlow said no or did not answer (remembered FAILURE_MEMO_SECONDS)
FETCHING, DONE, FAILED = "fetching", "done", "failed"


@dataclass
class Pending:
    """A payload a task is fetching; the page shows progress and polls."""

    kind: str
    since: float  # epoch seconds when the fetch was asked for

    @property
    def elapsed(self) -> int:
        return max(0, int(time.time() - self.since))


def _fetch_key(execution_id: Any, node_id: str, kind: str) -> str:
    node = hashlib.sha256(node_id.encode()).hexdigest()[:32]
    return f"qflowui:payload:{execution_id}:{node}:{kind}"


def _fetch_state(execution_id: Any, node_id: str, kind: str) -> dict[str, Any] | None:
    return cache.get(_fetch_key(execution_id, node_id, kind))


def _fetch_state_set(
    execution_id: Any, node_id: str, kind: str, state: str, *, since: float = 0.0, message: str = ""
) -> None:
    seconds = {FETCHING: PAYLOAD_CLAIM_SECONDS, DONE: PAYLOAD_DONE_SECONDS}.get(
        state, FAILURE_MEMO_SECONDS
    )
    value = {"state": state, "since": since or time.time(), "message": message}
    cache.set(_fetch_key(execution_id, node_id, kind), value, seconds)


def payload_request(
    execution: Execution, step: Step | None, kind: str, *, inline: bool = True
) -> Payload | Pending | None:
    """A step's payload for a first view: at once when cached (or failed a moment ago),
    else a task fetches it (Pending). Single flight: one task per payload, whoever asks.

    Without a broker or a live worker it is fetched here, within the page budget, or, with
    ``inline=False``, None is returned (the panel then loads it through the tree view).
    """
    if step is None:
        return Payload(kind, notice="This step did not run, so it has no data.")
    row = _stored(execution, step.node_id, kind)
    if row is not None and payload_is_final(execution, row):
        return _from_row(row)
    state = _fetch_state(execution.pk, step.node_id, kind)
    if state is None and workers_alive():
        claim = {"state": FETCHING, "since": time.time(), "message": ""}
        key = _fetch_key(execution.pk, step.node_id, kind)
        if cache.add(key, claim, PAYLOAD_CLAIM_SECONDS):
            if _enqueue_fetch(str(execution.pk), step.node_id, kind):
                return Pending(kind, claim["since"])
            cache.delete(key)  # the broker is down: fetch here instead
        else:
            state = cache.get(key)  # another viewer's claim, won a moment ago
    if state is not None:
        if state["state"] == FETCHING:
            return Pending(kind, state["since"])
        if state["state"] == FAILED:
            return _failed_payload(kind, state["message"], row)
        if state["state"] == DONE and row is not None:
            return _from_row(row)
    if not inline:
        return None
    return _fetch_and_store(execution, step.node_id, kind, _Lazy(page_client), row)


def payload_poll(
    execution: Execution, step: Step | None, kind: str, since: float
) -> Payload | Pending:
    """What a panel polling since ``since`` shows now: the payload, progress, or why not."""
    if step is None:
        return Payload(kind, notice="This step did not run, so it has no data.")
    row = _stored(execution, step.node_id, kind)
    state = _fetch_state(execution.pk, step.node_id, kind)
    if row is not None and (
        payload_is_final(execution, row)
        or (state is not None and state["state"] == DONE)
        # Stored after the fetch was asked for (a worker that does not share our cache).
        or row.fetched_at.timestamp() >= since - 1
    ):
        return _from_row(row)
    if state is not None and state["state"] == FETCHING:
        return Pending(kind, state["since"])
    if state is not None and state["state"] == FAILED:
        return _failed_payload(kind, state["message"], row)
    # The claim ran out without an answer: the task was lost or QFlow never answered.
    message = f"QFlow did not send the {kind} in time; open the step again to retry"
    return _failed_payload(kind, message, row)


def payload_fetch(execution_id: str, node_id: str, kind: str) -> str:
    """The task's job: fetch one payload from QFlow (task budget), store it masked, and say
    how it went in the fetch state the polling pages read. Returns that state."""
    execution = Execution.objects.filter(pk=execution_id).first()
    if execution is None or kind not in KINDS:
        cache.delete(_fetch_key(execution_id, node_id, kind))
        return FAILED
    state = _fetch_state(execution_id, node_id, kind)
    if state is None or state["state"] != FETCHING:
        return state["state"] if state else DONE  # the claim expired: nobody waits for it
    since = float(state["since"])
    row = _stored(execution, node_id, kind)
    if row is not None and payload_is_final(execution, row):
        _fetch_state_set(execution_id, node_id, kind, DONE, since=since)
        return DONE
    payload = _fetch_and_store(execution, node_id, kind, _Lazy(task_client), row)
    if payload.present and not payload.notice:
        _fetch_state_set(execution_id, node_id, kind, DONE, since=since)
        return DONE
    return FAILED  # _fetch_and_store remembered why


def payload_fetch_abandoned(execution_id: str, node_id: str, kind: str, reason: str) -> None:
    """The task ran out of time or failed unexpectedly: polling pages stop and say so."""
    _fetch_state_set(execution_id, node_id, kind, FAILED, message=reason)


def workers_alive() -> bool:
    """A Celery worker consuming our queue said it was alive in the last WORKER_ALIVE_SECONDS."""
    return bool(cache.get(worker_alive_key(default_queue())))


def worker_alive_key(queue: str) -> str:
    return f"qflowui:worker-alive:{queue}"


def default_queue() -> str:
    from qflowui.celery import app

    return str(app.conf.task_default_queue)


def _enqueue_fetch(execution_id: str, node_id: str, kind: str) -> bool:
    """Hand the fetch to a worker; False (and the page fetches itself) when the broker does
    not take it at once."""
    from qflowui.core import broker

    return broker.send("executions.fetch_payload", (execution_id, node_id, kind))


def _fetch_payload(api: QflowClient, execution: Execution, node_id: str, kind: str) -> Any:
    if kind == StepPayload.INPUT:
        return api.get_step_input(str(execution.pk), node_id, parse_json=True)
    return api.get_step_output(str(execution.pk), node_id, parse_json=True)


def payload_masked(raw: Any) -> tuple[Any, int]:
    """The payload masked for storage, and the size in bytes of its JSON text (written once,
    by orjson: a tenth of the stdlib's time for 10 MB)."""
    data = jsonio.dumps(raw)
    size = len(data)
    text = data.decode()
    del data  # a 10 MB payload: one copy of its text at a time
    if nothing_to_mask(text):
        return raw, size
    del text
    body = mask_payload(raw)
    return body, masked_size(body)


def _store_payload(execution: Execution, node_id: str, kind: str, raw: Any) -> StepPayload:
    """Mask and store (insert or replace) a payload; returns the row as stored."""
    body, size = payload_masked(raw)
    keys = {"execution": execution, "node_id": node_id, "kind": kind}
    values = {"body": body, "size": size, "fetched_at": timezone.now()}
    # One statement per write, never read-then-write in one transaction: SQLite then waits
    # for its lock (the input and output of a panel are fetched at the same time) instead of
    # failing at once with "database is locked".
    if not StepPayload.objects.filter(**keys).update(**values):
        try:
            with transaction.atomic():
                StepPayload.objects.create(**keys, **values)
        except IntegrityError:
            StepPayload.objects.filter(**keys).update(**values)
    row = StepPayload(**keys, **values)
    _memo_put(row, body)
    return row


# Decoding a 10 MB payload from the database costs ~150-250 ms; subtree fetches, "show more"
# and searches of the payload an analyst is reading reuse the decoded copy.
_memo: OrderedDict[tuple[str, str, str, datetime], tuple[int, Any]] = OrderedDict()
_memo_lock = threading.Lock()


def _memo_key(row: StepPayload) -> tuple[str, str, str, datetime]:
    return (str(row.execution_id), row.node_id, row.kind, row.fetched_at)


def _memo_put(row: StepPayload, body: Any) -> None:
    if row.size > PAYLOAD_MEMO_BYTES // 2:  # decoded, it weighs more than its JSON text
        return
    weight = jsonio.sizeof(body)
    if weight > PAYLOAD_MEMO_BYTES // 2:
        return
    key = _memo_key(row)
    with _memo_lock:
        _memo[key] = (weight, body)
        _memo.move_to_end(key)
        while sum(size for size, _ in _memo.values()) > PAYLOAD_MEMO_BYTES:
            _memo.popitem(last=False)


# One decode of a payload at a time per process: the views that want a payload someone is
# decoding (8 analysts opening the same 10 MB output, each poll of a panel whose fetch just
# ended) wait for that copy instead of each holding one of their own (~40 MB apiece).
_decoding: dict[tuple[str, str, str, datetime], Future] = {}


def _body(row: StepPayload) -> Any:
    key = _memo_key(row)
    with _memo_lock:
        hit = _memo.get(key)
        if hit is not None:
            _memo.move_to_end(key)
            return hit[1]
        pending = _decoding.get(key)
        if pending is None:
            pending = _decoding[key] = Future()
            owner = True
        else:
            owner = False
    if not owner:
        try:
            return pending.result()
        except Exception:  # noqa: BLE001 - the owner's failure is its own: try once more here
            logger.debug("payload %s: decoding again after another view failed to", key)
    try:
        if "body" in row.get_deferred_fields():
            row.refresh_from_db(fields=["body"])
        _memo_put(row, row.body)
        if owner:
            pending.set_result(row.body)
        return row.body
    except BaseException as exc:
        if owner:
            pending.set_exception(exc)
        raise
    finally:
        if owner:
            with _memo_lock:
                _decoding.pop(key, None)


def memo_clear() -> None:
    with _memo_lock:
        _memo.clear()


# --- export ----------------------------------------------------------------------------------


def execution_export(
    detail: Detail, *, client_factory: ClientFactory = page_client
) -> dict[str, Any]:
    """The execution, its steps and their masked payloads as one JSON-ready document.

    For a terminal execution, payloads not cached yet are fetched (at most
    EXPORT_MAX_FETCHES, for at most EXPORT_FETCH_SECONDS, each call within the page budget,
    none after QFlow failed to answer once) and cached; a running one exports what is cached.
    """
    execution = detail.execution
    rows = {(p.node_id, p.kind): p for p in StepPayload.objects.filter(execution=execution)}
    notes: list[str] = []
    fetches = 0
    stop_fetching_at = time.monotonic() + EXPORT_FETCH_SECONDS
    unreachable = ""
    client = _Lazy(client_factory)
    steps_out = []
    for step in detail.steps:
        payloads: dict[str, Any] = {}
        for kind in KINDS:
            row = rows.get((step.node_id, kind))
            if (
                row is None
                and execution.is_terminal
                and fetches < EXPORT_MAX_FETCHES
                and not unreachable
                and time.monotonic() < stop_fetching_at
            ):
                fetches += 1
                try:
                    row = _store_payload(
                        execution,
                        step.node_id,
                        kind,
                        _fetch_payload(client(), execution, step.node_id, kind),
                    )
                except QflowNotFound:
                    row = _store_payload(execution, step.node_id, kind, None)
                except (QflowUnavailable, QflowRateLimited) as exc:
                    # A slow or busy QFlow: the export does not wait on it again and again.
                    unreachable = str(exc)
                    notes.append(f"{step.node_id} {kind}: not fetched ({exc})")
                except QflowError as exc:
                    notes.append(f"{step.node_id} {kind}: not fetched ({exc})")
            elif row is None and unreachable:
                notes.append(f"{step.node_id} {kind}: not fetched (QFlow did not answer)")
            elif row is None and execution.is_terminal:
                notes.append(f"{step.node_id} {kind}: not fetched (the export's limit reached)")
            elif row is None:
                notes.append(f"{step.node_id} {kind}: not fetched yet")
            payloads[kind] = row.body if row is not None else None
        steps_out.append(
            {
                "nodeId": step.node_id,
                "nodeType": step.node_type,
                "status": step.status,
                "eventOrder": step.event_order,
                "startDate": _iso(step.started_at),
                "endDate": _iso(step.ended_at),
                "error": mask_free_text(step.error) or None,
                "record": mask_payload(step.raw),
                **payloads,
            }
        )
    workflow = detail.workflow
    return {
        "exportedAt": _iso(timezone.now()),
        "execution": {
            "id": str(execution.pk),
            "status": execution.status,
            "terminal": execution.is_terminal,
            "workflow": {
                "id": str(workflow.pk),
                "name": workflow.name,
                "revision": workflow.revision,
            },
            "source": execution.source,
            "executionType": execution.execution_type,
            "startDate": _iso(execution.started_at),
            "endDate": _iso(execution.ended_at),
            "durationMs": execution.duration_ms,
            "triggeredBy": execution.triggered_by,
            "categories": mask_payload(execution.categories),
            "variables": mask_payload(execution.variables),
            "tags": mask_payload(execution.tags),
            "parentExecutionId": _str(execution.parent_execution_id),
            "linkedExecutionIds": execution.linked_execution_ids,
            "record": mask_payload(execution.raw),
        },
        "steps": steps_out,
        "notes": notes,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None


def failed_step(steps: list[Step]) -> Step | None:
    """The step that made the execution fail: the first failed/timed-out one, else cancelled."""
    for wanted in ((st.FAILED, st.TIMED_OUT), (st.CANCELLED,)):
        for step in steps:
            if step.status_class in wanted:
                return step
    return None
