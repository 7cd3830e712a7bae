"""Refresh one execution from QFlow into the mirror: the one place that does it.

Used by the detail page (with its steps), the run page and the sync's revisit of unfinished
executions. One answer to write races, whoever the writers are (pages, workers, a sync
pass): QFlow's answers are applied in the order QFlow produced them, never in the order
they arrived. A row is only overwritten by an answer at least as new (``updatedAt``), and a
finished execution is never turned back into a running one; an older answer is dropped and
the stored row returned. Everything stored is masked (``execution_fields``, ``step_fields``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from qflowui.core.masking import mask_text
from qflowui.mirror.models import Execution, Workflow
from qflowui.mirror.sync import execution_fields, upsert_steps, workflow_apply
from qflowui.qflow import QflowClient
from qflowui.qflow import types as qt
from qflowui.qflow.errors import QflowBadResponse, QflowError

logger = logging.getLogger(__name__)


def execution_refresh(client: QflowClient, execution_id: str, *, steps: bool = False) -> Execution:
    """Fetch the execution (with its steps when ``steps``) and store it, masked.

    A workflow new to the mirror is fetched too (best effort: without it the execution is
    stored under a bare workflow row the sync fills in later). Raises QflowNotFound when
    QFlow does not know the execution, and the client's other errors as they come; the
    mirror is left untouched then. Returns the stored row, with its workflow.
    """
    execution_id = str(execution_id)
    item = client.get_execution(execution_id, include_steps=steps)
    step_items = list(item.steps or [])
    if steps and not step_items:
        # Some gateways leave includeSteps out; the step list always has them.
        step_items = client.list_steps(execution_id)
    workflow = _workflow_for(client, item)
    now = timezone.now()
    fields = execution_fields(item, workflow, now)
    with transaction.atomic():
        stored = _upsert(execution_id, workflow, fields)
        if stored is None:
            # An answer newer than ours is already stored: ours is dropped, steps included.
            execution = Execution.objects.select_related("workflow").get(pk=execution_id)
            return execution
        if steps:
            upsert_steps(stored, step_items, now)
            if fields["is_terminal"] and stored.steps_synced_at is None:
                # Steps of a finished execution never change again: the page stops asking.
                Execution.objects.filter(pk=execution_id).update(steps_synced_at=now)
    return Execution.objects.select_related("workflow").get(pk=execution_id)


def _upsert(execution_id: str, workflow: Workflow, fields: dict) -> Execution | None:
    """Update the row if our answer is not older than it, else insert it.

    Returns the row as stored, or None when the stored row is newer than our answer. An
    insert that loses to a concurrent insert retries as an update (same rule).
    """
    values = {"workflow": workflow, **fields}
    newer_or_same = _not_newer_than(fields)
    for _ in range(2):
        if Execution.objects.filter(newer_or_same, pk=execution_id).update(**values):
            return Execution.objects.get(pk=execution_id)
        if Execution.objects.filter(pk=execution_id).exists():
            return None
        try:
            with transaction.atomic():
                return Execution.objects.create(id=execution_id, **values)
        except IntegrityError:
            continue  # inserted by someone else just now: apply the update rule to theirs
    return None


def _not_newer_than(fields: dict) -> Q:
    """Rows that an answer with these fields may overwrite."""
    allowed = Q()
    updated_at: datetime | None = fields["updated_at"]
    if updated_at is not None:
        allowed &= Q(updated_at__isnull=True) | Q(updated_at__lte=updated_at)
    if not fields["is_terminal"]:
        allowed &= Q(is_terminal=False)
    return allowed


def _workflow_for(client: QflowClient, item: qt.Execution) -> Workflow:
    if not item.workflow_id:
        raise QflowBadResponse("QFlow sent an execution without its workflow id")
    workflow, created = Workflow.objects.get_or_create(pk=item.workflow_id)
    if not created:
        return workflow
    try:
        workflow_apply(workflow, client.get_workflow(str(item.workflow_id)))
    except QflowError as exc:
        logger.warning("workflow %s: not fetched: %s", item.workflow_id, mask_text(str(exc)))
        return workflow
    workflow.last_synced_at = timezone.now()
    workflow.save()
    return workflow
