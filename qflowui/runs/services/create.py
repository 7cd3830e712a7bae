"""The form's POST: one outbox row per run request, found again for the same form."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from qflowui.mirror.models import Workflow
from qflowui.runs import audit
from qflowui.runs.models import Run, RunEvent, RunState
from qflowui.runs.services.dispatch import run_enqueue


class IdempotencyConflict(Exception):
    """The form's key was already used by another user or for another body."""


def body_digest(workflow_id: Any, body: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"workflow": str(workflow_id), "body": body}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


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
                    correlation_key=settings.RUNS_CORRELATION_VARIABLE,
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
