"""The execution a run started, from the mirror or refreshed from QFlow.

(Moved here unchanged; refreshing an execution is to become one service in the mirror app.)
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import IntegrityError, OperationalError
from django.utils import timezone

from qflowui.mirror.models import Execution, Workflow
from qflowui.mirror.people import remember_api_user
from qflowui.mirror.sync import execution_fields
from qflowui.qflow import QflowClient, client_from_settings
from qflowui.qflow.errors import QflowError, QflowNotFound
from qflowui.runs.models import Run
from qflowui.runs.services.state import safe_error, traceback_text

logger = logging.getLogger(__name__)


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
    # Who QFlow says started it is qflowui's own API user: named once, for every list.
    remember_api_user(fields.get("triggered_by", ""))
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


def refresh_quietly(run_id: int, client: QflowClient | None) -> None:
    """Put a just-started execution in the mirror so its page exists at once; best effort."""
    try:
        run = Run.objects.select_related("workflow").get(pk=run_id)
        run_execution_refresh(run, client=client, max_age=0)
    except Exception as exc:  # noqa: BLE001 - best effort, logged with a masked traceback
        logger.warning(
            "run %s: could not mirror its execution yet\n%s",
            run_id,
            traceback_text(exc).rstrip(),
        )
