"""Detail-page data: read the mirror, refresh it from QFlow only when that can change anything.

- A terminal execution whose steps are cached (`steps_synced_at`) costs no upstream call.
- Otherwise one `get_execution(includeSteps)` (+ `list_steps` when no steps came back), and
  `get_workflow` when the workflow or its definition is not mirrored yet: at most 3 calls.
- A step payload (stored and decoded in qflowui/executions/payloads.py) not cached yet is
  fetched by a Celery task (`executions.fetch_payload`) while the panel polls
  (`payload_request`, `payload_poll`, `payload_fetch`); without a broker or a live worker,
  by the page itself within the page budget.
- When QFlow is down, slow or wrong, the mirror's copy is served with a notice; only an
  execution unknown to both gives a 404 (or a 503 when QFlow could not be asked).
- A user never waits long on QFlow: every call made for a page has the page budget
  (`client_from_settings(purpose="page")`), and a not-found or failed answer is remembered
  briefly, so the 5 s live refresh of a purged execution does not ask QFlow every time.

The export is in qflowui/executions/export.py; its names, the payloads' and the clients'
are importable from here too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import OperationalError
from django.utils import timezone

from qflowui.core.masking import mask_free_text as mask_free_text
from qflowui.core.masking import mask_payload as mask_payload
from qflowui.core.masking import mask_text
from qflowui.core.masking import nothing_to_mask as nothing_to_mask
from qflowui.executions import payloads
from qflowui.executions.clients import ClientFactory as ClientFactory
from qflowui.executions.clients import Lazy, page_client, task_client
from qflowui.executions.export import EXPORT_FETCH_SECONDS as EXPORT_FETCH_SECONDS
from qflowui.executions.export import EXPORT_MAX_FETCHES as EXPORT_MAX_FETCHES
from qflowui.executions.export import execution_export as execution_export
from qflowui.executions.payloads import (
    DONE,
    FAILED,
    FETCHING,
    PAYLOAD_CLAIM_SECONDS,
    Payload,
    Pending,
    payload_is_final,
)
from qflowui.executions.payloads import FAILURE_MEMO_SECONDS as FAILURE_MEMO_SECONDS
from qflowui.executions.payloads import KINDS as KINDS
from qflowui.executions.payloads import PAYLOAD_DONE_SECONDS as PAYLOAD_DONE_SECONDS
from qflowui.executions.payloads import PAYLOAD_MEMO_BYTES as PAYLOAD_MEMO_BYTES
from qflowui.executions.payloads import masked_size as masked_size
from qflowui.executions.payloads import memo_clear as memo_clear
from qflowui.executions.payloads import payload_masked as payload_masked
from qflowui.executions.payloads import step_payload as step_payload
from qflowui.mirror.failures import first_failing
from qflowui.mirror.models import Execution, Step, Workflow
from qflowui.mirror.refresh import execution_refresh
from qflowui.mirror.sync import workflow_apply
from qflowui.qflow import QflowClient
from qflowui.qflow.errors import QflowError, QflowNotFound

logger = logging.getLogger(__name__)

# Two tabs polling the same running execution share one refresh per this many seconds.
REFRESH_MIN_SECONDS = 2
# A workflow whose definition QFlow would not give is asked again after this long.
WORKFLOW_RETRY_SECONDS = 60
# Negative cache: QFlow's "not found" (a purged execution) and its failures, remembered.
NOT_FOUND_MEMO_SECONDS = 60
# Celery workers say they are alive this often, and the word lasts this long.
WORKER_HEARTBEAT_SECONDS = 10
WORKER_ALIVE_SECONDS = 30


class ExecutionUnknown(LookupError):
    """Neither the mirror nor QFlow knows this execution."""


class ExecutionUnavailable(RuntimeError):
    """The mirror does not have it and QFlow could not be asked."""


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
    client = Lazy(client_factory)
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
    row = payloads.stored(execution, step.node_id, kind)
    if row is not None and payload_is_final(execution, row):
        return payloads.from_row(row)
    state = payloads.fetch_state(execution.pk, step.node_id, kind)
    if state is None and workers_alive():
        claim = {"state": FETCHING, "since": time.time(), "message": ""}
        key = payloads.fetch_key(execution.pk, step.node_id, kind)
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
            return payloads.failed_payload(kind, state["message"], row)
        if state["state"] == DONE and row is not None:
            return payloads.from_row(row)
    if not inline:
        return None
    return payloads.fetch_and_store(execution, step.node_id, kind, Lazy(page_client), row)


def payload_poll(
    execution: Execution, step: Step | None, kind: str, since: float
) -> Payload | Pending:
    """What a panel polling since ``since`` shows now: the payload, progress, or why not."""
    if step is None:
        return Payload(kind, notice="This step did not run, so it has no data.")
    row = payloads.stored(execution, step.node_id, kind)
    state = payloads.fetch_state(execution.pk, step.node_id, kind)
    if row is not None and (
        payload_is_final(execution, row)
        or (state is not None and state["state"] == DONE)
        # Stored after the fetch was asked for (a worker that does not share our cache).
        or row.fetched_at.timestamp() >= since - 1
    ):
        return payloads.from_row(row)
    if state is not None and state["state"] == FETCHING:
        return Pending(kind, state["since"])
    if state is not None and state["state"] == FAILED:
        return payloads.failed_payload(kind, state["message"], row)
    # The claim ran out without an answer: the task was lost or QFlow never answered.
    message = f"QFlow did not send the {kind} in time; open the step again to retry"
    return payloads.failed_payload(kind, message, row)


def payload_fetch(execution_id: str, node_id: str, kind: str) -> str:
    """The task's job: fetch one payload from QFlow (task budget), store it masked, and say
    how it went in the fetch state the polling pages read. Returns that state."""
    execution = Execution.objects.filter(pk=execution_id).first()
    if execution is None or kind not in KINDS:
        cache.delete(payloads.fetch_key(execution_id, node_id, kind))
        return FAILED
    state = payloads.fetch_state(execution_id, node_id, kind)
    if state is None or state["state"] != FETCHING:
        return state["state"] if state else DONE  # the claim expired: nobody waits for it
    since = float(state["since"])
    row = payloads.stored(execution, node_id, kind)
    if row is not None and payload_is_final(execution, row):
        payloads.fetch_state_set(execution_id, node_id, kind, DONE, since=since)
        return DONE
    payload = payloads.fetch_and_store(execution, node_id, kind, Lazy(task_client), row)
    if payload.present and not payload.notice:
        payloads.fetch_state_set(execution_id, node_id, kind, DONE, since=since)
        return DONE
    return FAILED  # _fetch_and_store remembered why


def payload_fetch_abandoned(execution_id: str, node_id: str, kind: str, reason: str) -> None:
    """The task ran out of time or failed unexpectedly: polling pages stop and say so."""
    payloads.fetch_state_set(execution_id, node_id, kind, FAILED, message=reason)


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


def failed_step(steps: list[Step]) -> Step | None:
    """The step that made the execution fail: the first failed/timed-out one, else cancelled."""
    return first_failing(steps)
