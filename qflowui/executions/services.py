"""Detail-page data: read the mirror, refresh it from QFlow only when that can change anything.

- A terminal execution whose steps are cached (`steps_synced_at`) costs no upstream call.
- Otherwise one `get_execution(includeSteps)` (+ `list_steps` when no steps came back), and
  `get_workflow` when the workflow or its definition is not mirrored yet: at most 3 calls.
- Step payloads are masked before they are stored; cached forever once the execution is
  terminal, fetched again while it runs.
- When QFlow is down, slow or wrong, the mirror's copy is served with a notice; only an
  execution unknown to both gives a 404 (or a 503 when QFlow could not be asked).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from qflowui.core.masking import mask_free_text, mask_payload, mask_text, nothing_to_mask
from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, Step, StepPayload, Workflow
from qflowui.mirror.sync import execution_fields, upsert_steps, workflow_apply
from qflowui.qflow import QflowClient, client_from_settings
from qflowui.qflow.errors import QflowBadResponse, QflowError, QflowNotFound

logger = logging.getLogger(__name__)

# A page must not hang on a slow QFlow: short timeouts and one retry, then the mirror.
PAGE_TIMEOUT_SECONDS = 5.0
PAYLOAD_TIMEOUT_SECONDS = 20.0
# Two tabs polling the same running execution share one refresh per this many seconds.
REFRESH_MIN_SECONDS = 2
# A workflow whose definition QFlow would not give is asked again after this long.
WORKFLOW_RETRY_SECONDS = 60
EXPORT_MAX_FETCHES = 60
# Decoded payloads kept per process, counted in JSON bytes (decoded they weigh ~3.6 times
# more: at most ~90 MB of RAM). One payload above half of it is never kept.
PAYLOAD_MEMO_BYTES = 24 * 1024 * 1024
KINDS = (StepPayload.INPUT, StepPayload.OUTPUT)

ClientFactory = Callable[[], QflowClient]


class ExecutionUnknown(LookupError):
    """Neither the mirror nor QFlow knows this execution."""


class ExecutionUnavailable(RuntimeError):
    """The mirror does not have it and QFlow could not be asked."""


def page_client() -> QflowClient:
    timeout = min(float(getattr(settings, "QFLOW_TIMEOUT_SECONDS", 10.0)), PAGE_TIMEOUT_SECONDS)
    return client_from_settings(timeout=timeout, max_retries=1, backoff=0.2, max_rate_wait=3.0)


def payload_client() -> QflowClient:
    timeout = max(float(getattr(settings, "QFLOW_TIMEOUT_SECONDS", 10.0)), PAYLOAD_TIMEOUT_SECONDS)
    return client_from_settings(timeout=timeout, max_retries=1, backoff=0.2, max_rate_wait=3.0)


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
        try:
            execution = _refresh(client, execution_id, notices)
            refreshed = True
        except QflowNotFound:
            raise ExecutionUnknown(execution_id) from None
        except QflowError as exc:
            logger.warning("execution %s: QFlow failed: %s", execution_id, mask_text(str(exc)))
            raise ExecutionUnavailable(str(exc)) from None
        except OperationalError:
            # Another request stored it at the same moment (SQLite's lock): use its copy.
            logger.warning("execution %s: storing it failed", execution_id, exc_info=True)
            execution = _mirrored(execution_id)
            if execution is None:
                raise ExecutionUnavailable("the database was busy; try again") from None
    elif needs_refresh(execution) and _claim_refresh(execution_id):
        try:
            execution = _refresh(client, execution_id, notices)
            refreshed = True
        except QflowNotFound:
            notices.append(
                "QFlow no longer returns this execution (it keeps 30 days); this is the last copy "
                "the dashboard saw."
            )
        except QflowError as exc:
            logger.warning("execution %s: QFlow failed: %s", execution_id, mask_text(str(exc)))
            notices.append(_stale_notice(exc, execution))
        except OperationalError:
            logger.warning("execution %s: storing it failed", execution_id, exc_info=True)
            execution = _mirrored(execution_id) or execution
    workflow = _definition_ensure(client, execution.workflow, notices)
    steps = list(execution.steps.all())
    return Detail(execution, workflow, steps, notices, refreshed, client.calls)


def _mirrored(execution_id: str) -> Execution | None:
    return Execution.objects.select_related("workflow").filter(pk=execution_id).first()


def _claim_refresh(key: str, seconds: int = REFRESH_MIN_SECONDS) -> bool:
    """True for the first caller in `seconds` (per cache): one refresh for many viewers."""
    return cache.add(f"qflowui:refresh:{key}", 1, seconds)


def _stale_notice(exc: QflowError, execution: Execution) -> str:
    when = timezone.localtime(execution.last_synced_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"QFlow could not be reached ({exc}). Showing the dashboard's copy from {when}."


def _refresh(client: _Lazy, execution_id: str, notices: list[str]) -> Execution:
    """Fetch the execution and its steps and store them (masked). Raises QflowError."""
    api = client()
    item = api.get_execution(execution_id, include_steps=True)
    steps = item.steps
    if not steps:
        steps = api.list_steps(execution_id)
    now = timezone.now()
    workflow = _workflow_for(api, item.workflow_id, notices)
    fields = execution_fields(item, workflow, now)
    with transaction.atomic():
        execution, _ = Execution.objects.update_or_create(
            id=execution_id, defaults={"workflow": workflow, **fields}
        )
        upsert_steps(execution, steps, now)
        if fields["is_terminal"] and execution.steps_synced_at is None:
            execution.steps_synced_at = now
            execution.save(update_fields=["steps_synced_at"])
    execution.workflow = workflow
    return execution


def _workflow_for(api: QflowClient, workflow_id: str | None, notices: list[str]) -> Workflow:
    """The mirrored workflow, created (with its definition) when it is new to the mirror."""
    if not workflow_id:
        raise QflowBadResponse("QFlow sent an execution without its workflow id")
    workflow, _ = Workflow.objects.get_or_create(pk=workflow_id)
    return _definition_ensure(lambda: api, workflow, notices)


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
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def payload_is_final(execution: Execution, row: StepPayload) -> bool:
    """A payload fetched after the execution was known to be over never changes again."""
    if not execution.is_terminal:
        return False
    since = execution.steps_synced_at or execution.ended_at
    return since is not None and row.fetched_at >= since


def cached_payload(execution: Execution, step: Step, kind: str) -> Payload | None:
    """The payload if it is cached and final (no upstream call), else None."""
    row = (
        StepPayload.objects.filter(execution=execution, node_id=step.node_id, kind=kind)
        .defer("body")
        .first()
    )
    if row is None or not payload_is_final(execution, row):
        return None
    return Payload(kind, _body(row), row.size, row.fetched_at, present=True)


def step_payload(
    execution: Execution,
    step: Step | None,
    kind: str,
    *,
    prefer_cached: bool = False,
    client_factory: ClientFactory = payload_client,
) -> Payload:
    """A step's input or output, masked: from the cache when final, else from QFlow.

    `prefer_cached` serves any stored copy (subtrees, searches and downloads of the payload
    the page is showing), fetching only when there is none.
    """
    if step is None:
        return Payload(kind, notice="This step did not run, so it has no data.")
    row = (
        StepPayload.objects.filter(execution=execution, node_id=step.node_id, kind=kind)
        .defer("body")
        .first()
    )
    if row is not None and (prefer_cached or payload_is_final(execution, row)):
        return Payload(kind, _body(row), row.size, row.fetched_at, present=True)
    client = _Lazy(client_factory)
    try:
        body = _fetch_payload(client(), execution, step.node_id, kind)
    except QflowNotFound:
        if not execution.is_terminal:
            return Payload(
                kind,
                notice=f"QFlow has no {kind} for this step yet.",
                upstream_calls=client.calls,
            )
        body = None  # QFlow keeps no data for this step: the same as JSON null to an analyst
    except QflowError as exc:
        logger.warning("payload %s/%s/%s: %s", execution.pk, step.node_id, kind, exc)
        if row is not None:
            return Payload(
                kind,
                _body(row),
                row.size,
                row.fetched_at,
                present=True,
                notice=f"QFlow could not be reached ({exc}); showing the copy fetched earlier.",
                upstream_calls=client.calls,
            )
        return Payload(
            kind, notice=f"QFlow could not be reached: {exc}.", upstream_calls=client.calls
        )
    row = _store_payload(execution, step.node_id, kind, body)
    return Payload(kind, row.body, row.size, row.fetched_at, True, upstream_calls=client.calls)


def _fetch_payload(api: QflowClient, execution: Execution, node_id: str, kind: str) -> Any:
    if kind == StepPayload.INPUT:
        return api.get_step_input(str(execution.pk), node_id, parse_json=True)
    return api.get_step_output(str(execution.pk), node_id, parse_json=True)


def payload_masked(raw: Any) -> tuple[Any, int]:
    """The payload masked for storage, and the size in bytes of its JSON text."""
    text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
    if nothing_to_mask(text):
        return raw, len(text.encode())
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
    if row.size > PAYLOAD_MEMO_BYTES // 2:
        return
    key = _memo_key(row)
    with _memo_lock:
        _memo[key] = (row.size, body)
        _memo.move_to_end(key)
        while sum(size for size, _ in _memo.values()) > PAYLOAD_MEMO_BYTES:
            _memo.popitem(last=False)


def _body(row: StepPayload) -> Any:
    key = _memo_key(row)
    with _memo_lock:
        hit = _memo.get(key)
        if hit is not None:
            _memo.move_to_end(key)
            return hit[1]
    if "body" in row.get_deferred_fields():
        row.refresh_from_db(fields=["body"])
    _memo_put(row, row.body)
    return row.body


def memo_clear() -> None:
    with _memo_lock:
        _memo.clear()


# --- export ----------------------------------------------------------------------------------


def execution_export(
    detail: Detail, *, client_factory: ClientFactory = payload_client
) -> dict[str, Any]:
    """The execution, its steps and their masked payloads as one JSON-ready document.

    For a terminal execution, payloads not cached yet are fetched (at most
    EXPORT_MAX_FETCHES) and cached; a running one exports what is cached.
    """
    execution = detail.execution
    rows = {(p.node_id, p.kind): p for p in StepPayload.objects.filter(execution=execution)}
    notes: list[str] = []
    fetches = 0
    client = _Lazy(client_factory)
    steps_out = []
    for step in detail.steps:
        payloads: dict[str, Any] = {}
        for kind in KINDS:
            row = rows.get((step.node_id, kind))
            if row is None and execution.is_terminal and fetches < EXPORT_MAX_FETCHES:
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
                except QflowError as exc:
                    notes.append(f"{step.node_id} {kind}: not fetched ({exc})")
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
