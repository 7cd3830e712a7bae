"""The data migration masks what earlier versions stored, with today's rules."""

from __future__ import annotations

import importlib
import uuid

import pytest
from django.apps import apps
from django.utils import timezone

from qflowui.mirror.models import Execution, Step, StepPayload, SyncRun, Workflow
from qflowui.runs.models import AuditEvent, Run, RunEvent, RunState

pytestmark = pytest.mark.django_db

migration = importlib.import_module("qflowui.mirror.migrations.0004_mask_stored_secrets")

PG = "postgres://dbadmin:OldLeak-Pw1x@db:5432/prod"
SECRET = "OldLeak-Pw1x"


def _run(user, workflow, state: str, typed: str) -> Run:
    return Run.objects.create(
        idempotency_key=uuid.uuid4(),
        created_by=user,
        workflow=workflow,
        input={"db": {"pwd": typed}},
        variables={"dbUrl": PG},
        body_sha256="0" * 64,
        state=state,
        response={"message": f"started with {PG}"} if state == RunState.SUBMITTED else None,
        error=f"QFlow said: password={typed}" if state == RunState.FAILED else "",
    )


def test_rows_stored_before_the_new_rules_are_masked_and_unsent_runs_are_kept(admin_user):
    now = timezone.now()
    workflow = Workflow.objects.create(
        id=uuid.uuid4(),
        name="Rotate",
        description=f"uses {PG}",
        definition={"components": [{"id": "t", "inputs": {"dsn": PG}}]},
        tags=[f"db={PG}"],
    )
    execution = Execution.objects.create(
        id=uuid.uuid4(),
        workflow=workflow,
        status="Failed",
        status_class="failed",
        started_at=now,
        last_synced_at=now,
        variables=[f"dbUrl={PG}"],
        tags=[{"Key": "password", "Value": SECRET}],
        raw={"env": [{"Name": "DB_PASSWORD", "Value": SECRET}]},
    )
    Step.objects.create(
        execution=execution,
        node_id="apply",
        status_class="failed",
        error=f"cannot reach {PG}",
        raw={"pin_password": "918273645501"},
        last_synced_at=now,
    )
    StepPayload.objects.create(
        execution=execution, node_id="apply", kind="input", body={"u": PG}, fetched_at=now
    )
    SyncRun.objects.create(started_at=now, error=f"QFlow error: {PG}")
    sent = _run(admin_user, workflow, RunState.SUBMITTED, "TypedOld-1a")
    failed = _run(admin_user, workflow, RunState.FAILED, "TypedOld-2b")
    queued = _run(admin_user, workflow, RunState.QUEUED, "TypedOld-3c")
    RunEvent.objects.create(run=failed, state=RunState.FAILED, note=f"refused: {PG}")
    AuditEvent.objects.create(action="run.requested", detail={"variables": {"dbUrl": PG}})

    migration.mask_stored(apps, None)

    texts = [
        repr(list(model.objects.values()))
        for model in (Workflow, Execution, Step, StepPayload, SyncRun, RunEvent, AuditEvent)
    ]
    texts.append(repr(list(Run.objects.exclude(pk=queued.pk).values())))
    for text in texts:
        assert SECRET not in text
        assert "918273645501" not in text
        assert "TypedOld-1a" not in text and "TypedOld-2b" not in text
    assert "postgres://dbadmin:********@db:5432/prod" in "".join(texts)
    # A run not sent yet keeps its body exactly as typed: it still has to be posted.
    sent.refresh_from_db()
    assert sent.input == {"db": {"pwd": "********"}}
    queued.refresh_from_db()
    assert queued.input == {"db": {"pwd": "TypedOld-3c"}}
    assert queued.variables == {"dbUrl": PG}


def test_masking_twice_changes_nothing_more(admin_user):
    workflow = Workflow.objects.create(id=uuid.uuid4(), name="W", tags=[f"db={PG}"])

    migration.mask_stored(apps, None)
    first = Workflow.objects.get(pk=workflow.pk).tags
    migration.mask_stored(apps, None)

    assert Workflow.objects.get(pk=workflow.pk).tags == first
