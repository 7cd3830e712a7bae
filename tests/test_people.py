"""People, not UUIDs: "Triggered by" shows a name when the QFlow user is known.

Staff name QFlow user ids in the admin; qflowui's own API user is named by itself when one
of its runs' executions is stored; unknown ids stay visible as short ids (full id on hover).
"""

from __future__ import annotations

import re
import uuid

import pytest

from qflowui.mirror.models import Execution, QflowUser, Workflow
from qflowui.mirror.people import API_USER_NAME, remember_api_user
from qflowui.runs import services
from tests.test_executions_list import make_execution, make_workflow, page
from tests.test_runs_support import *  # noqa: F403 - runner, sent...
from tests.test_runs_support import mirror_workflows, simulator_workflow

ANA = "0ffaf046-768b-79fc-83f6-aa25be52c2a1"
UNKNOWN = "57132236-2091-4165-a189-5e3f1b0b8d2c"


def _row(html: str, execution: Execution) -> str:
    return re.search(rf'<tr data-execution-id="{execution.id}".*?</tr>', html, re.S).group(0)


@pytest.mark.django_db
def test_a_named_user_shows_by_name_and_an_unknown_one_as_a_short_id(viewer_client):
    wf = make_workflow()
    named = make_execution(wf, triggered_by=ANA)
    unknown = make_execution(wf, triggered_by=UNKNOWN)
    QflowUser.objects.create(user_id=ANA, display_name="Ana (SecOps)")
    html = page(viewer_client, "?range=all")
    row = _row(html, named)
    assert f'title="QFlow user {ANA}">Ana (SecOps)</span>' in row
    row = _row(html, unknown)
    assert ">57132236</code>" in row and f"QFlow user {UNKNOWN}" in row
    detail = viewer_client.get(f"/executions/{named.id}/").content.decode()
    assert "Ana (SecOps)" in detail


@pytest.mark.django_db
def test_a_hostile_name_is_escaped(viewer_client):
    wf = make_workflow()
    make_execution(wf, triggered_by=ANA)
    QflowUser.objects.create(user_id=ANA, display_name="<img src=x onerror=alert(1)>")
    html = page(viewer_client, "?range=all")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.django_db
def test_staff_name_users_in_the_admin_and_an_automatic_name_never_overwrites_theirs(
    admin_client,
):
    response = admin_client.post(
        "/admin/mirror/qflowuser/add/", {"user_id": ANA, "display_name": "Ana", "source": "staff"}
    )
    assert response.status_code == 302
    assert QflowUser.objects.get(user_id=ANA).display_name == "Ana"
    remember_api_user(ANA)
    assert QflowUser.objects.get(user_id=ANA).display_name == "Ana"
    assert "Ana" in admin_client.get("/admin/mirror/qflowuser/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_api_user_qflowui_runs_as_is_named_by_itself(simulator, runner, sent):
    mirror_workflows(simulator)
    aws = simulator_workflow(simulator, "AWS")
    run, _ = services.run_create(
        user=runner,
        workflow=Workflow.objects.get(pk=aws.id),
        body={"input": {"buckets": ["b-1"]}},
        idempotency_key=uuid.uuid4(),
    )
    services.run_submit(run.pk)
    run.refresh_from_db()
    execution = Execution.objects.get(pk=run.execution_id)
    assert execution.triggered_by
    user = QflowUser.objects.get(user_id=execution.triggered_by)
    assert user.display_name == API_USER_NAME and user.source == QflowUser.API_USER
