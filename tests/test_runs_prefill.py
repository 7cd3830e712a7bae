"""Run again with changes: `/runs/new/?from=<execution id>` prefills the form."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from qflowui.mirror.models import Execution, Workflow
from qflowui.qflow import client_from_settings
from qflowui.qflow.errors import QflowNotFound
from qflowui.runs import services
from tests.test_runs_support import *  # noqa: F403 - the fixtures runner, runner_client, sent...
from tests.test_runs_support import (
    mirror_workflows,
    simulator_workflow,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _trigger_done(client, execution_id: str) -> bool:
    try:
        client.get_step_output(execution_id, "trigger")
    except QflowNotFound:
        return False
    return True


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html) or re.search(
        rf'name="{name}"[^>]*value="([^"]*)"', html
    )
    return found.group(1) if found else ""


def _textarea(html: str) -> str:
    text = re.search(r'<textarea name="input"[^>]*>\n?(.*?)</textarea>', html, re.S).group(1)
    return text.replace("&quot;", '"')


def test_a_past_run_prefills_workflow_input_and_variables(simulator, runner, runner_client, sent):
    mirror_workflows(simulator)
    wf = simulator_workflow(simulator, "AWS")
    run, _ = services.run_create(
        user=runner,
        workflow=Workflow.objects.get(pk=wf.id),
        body={
            "input": {"buckets": ["b-1", "b-2"]},
            "variables": {"region": "eu-west-1", "depthCount": 3, "notify": True},
        },
        idempotency_key=uuid.uuid4(),
    )
    services.run_submit(run.pk)
    run.refresh_from_db()
    client = client_from_settings()
    wait_for(lambda: _trigger_done(client, str(run.execution_id)), 10, "the trigger step")

    html = runner_client.get(f"/runs/new/?from={run.execution_id}").content.decode()

    assert f'<option value="{wf.id}" data-cloud="AWS" selected>' in html
    assert '<option value="eu-west-1" selected>' in html
    assert json.loads(_textarea(html)) == {"buckets": ["b-1", "b-2"]}
    assert "Input taken from the trigger step" in html
    rows = {_field(html, f"var_key_{n}"): (_field(html, f"var_value_{n}"), n) for n in range(3)}
    assert rows["depthCount"][0] == "3"
    assert f'name="var_type_{rows["depthCount"][1]}"' in html
    assert "Running again with changes" in html


def test_a_mirrored_api_execution_prefills_its_connector(simulator, runner_client):
    wf = simulator_workflow(simulator, "AWS")
    mirror_workflows(simulator, with_executions_of=[wf.id])
    execution = (
        Execution.objects.filter(workflow_id=wf.id, source="PUBLIC_API", is_terminal=True)
        .order_by("-started_at")
        .first()
    )
    connector = next(
        v.split("=", 1)[1] for v in execution.variables if v.startswith("connectorId=")
    )

    html = runner_client.get(f"/runs/new/?from={execution.pk}").content.decode()

    assert _field(html, "connectorId") == connector
    assert f'<option value="{connector}">' in html  # and the datalist offers it
    assert json.loads(_textarea(html)) == {} or "Input taken from" in html


def test_an_unknown_execution_says_so_and_prefills_nothing(simulator, runner_client):
    html = runner_client.get(f"/runs/new/?from={uuid.uuid4()}").content.decode()
    assert "is not in qflowui&#x27;s mirror" in html
    html = runner_client.get("/runs/new/?from=<script>").content.decode()
    assert "is not an execution id" in html and "<script>" not in html.split("<main")[1]


def test_an_unreadable_input_starts_empty_and_says_so(simulator, runner_client, settings):
    wf = simulator_workflow(simulator, "AWS")
    mirror_workflows(simulator, with_executions_of=[wf.id])
    execution = Execution.objects.filter(workflow_id=wf.id).order_by("-started_at").first()
    simulator.inject("status", path=r"/steps/trigger/", status=500, times=None)

    html = runner_client.get(f"/runs/new/?from={execution.pk}").content.decode()

    assert "could not be read" in html and json.loads(_textarea(html)) == {}
