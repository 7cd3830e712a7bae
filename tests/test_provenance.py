"""Who ran what: an execution started from qflowui names the person, not QFlow's API user."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from qflowui.mirror.models import Execution, Workflow
from qflowui.runs.models import Run

pytestmark = pytest.mark.django_db

API_USER = "0ffaf046-768b-79fc-83f6-aa25be52c2a1"


@pytest.fixture
def executions(django_user_model):
    now = timezone.now()
    workflow = Workflow.objects.create(id=uuid.uuid4(), name="Fix public S3 buckets", cloud="AWS")

    def make(minutes: int) -> Execution:
        return Execution.objects.create(
            id=uuid.uuid4(),
            workflow=workflow,
            status="Success",
            status_class="success",
            is_terminal=True,
            source="PUBLIC_API",
            started_at=now - timedelta(minutes=minutes),
            ended_at=now - timedelta(minutes=minutes - 1),
            triggered_by=API_USER,
            last_synced_at=now,
            steps_synced_at=now,
        )

    ours, theirs = make(5), make(10)
    rita = django_user_model.objects.create_user(username="rita.runner", password="x")
    run = Run.objects.create(
        idempotency_key=uuid.uuid4(),
        created_by=rita,
        workflow=workflow,
        body_sha256=hashlib.sha256(b"{}").hexdigest(),
        state="submitted",
        execution_id=ours.id,
    )
    return ours, theirs, run


def test_the_list_names_the_person_who_started_an_execution_in_qflowui(viewer_client, executions):
    ours, theirs, run = executions
    html = viewer_client.get("/executions/").content.decode()
    ours_row = html.split(f'data-execution-id="{ours.id}"')[1].split("</tr>")[0]
    theirs_row = html.split(f'data-execution-id="{theirs.id}"')[1].split("</tr>")[0]
    assert f'<a href="/runs/{run.pk}/"' in ours_row
    assert "rita.runner" in ours_row
    assert "rita.runner" not in theirs_row
    assert API_USER in theirs_row


def test_the_detail_page_names_the_person_and_links_the_run(viewer_client, executions):
    ours, _, run = executions
    html = viewer_client.get(f"/executions/{ours.id}/").content.decode()
    assert f"<strong>rita.runner</strong> in qflowui (run {run.pk})" in html
    assert f'href="/runs/{run.pk}/"' in html
    assert API_USER in html  # QFlow's own record stays visible
