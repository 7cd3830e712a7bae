"""In a real browser: run a past execution again with another region, preview, confirm, watch
the run reach `submitted`, and follow it to the execution. A real Celery worker submits it."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from qflowui.mirror.models import Execution
from qflowui.runs.models import Run
from tests.test_runs_support import *  # noqa: F403 - the fixtures runner, runner_client, sent...
from tests.test_runs_support import (
    api_runs,
    mirror_workflows,
    point_broker,
    simulator_workflow,
    worker_env,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.celery_worker,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def test_a_runner_runs_an_execution_again_with_another_region(
    page,
    live_server,
    simulator,
    settings,
    runner,
    login,
    start_celery_worker,
    redis_url,
    monkeypatch,
):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    wf = simulator_workflow(simulator, "AWS")
    mirror_workflows(simulator, with_executions_of=[wf.id])
    past = Execution.objects.filter(workflow_id=wf.id, is_terminal=True).order_by("-started_at")[0]
    start_celery_worker(env=worker_env(live_server, settings))
    point_broker(monkeypatch, redis_url, start_celery_worker.queue)
    page.set_viewport_size({"width": 1360, "height": 900})

    login(page, runner)
    page.goto(f"{live_server.url}/runs/new/?from={past.pk}")

    expect(page.get_by_text("Running again with changes")).to_be_visible()
    expect(page.locator("#id_workflow")).to_have_value(str(wf.id))
    expect(page.locator("#workflow-info")).to_contain_text(wf.name)
    # The format button tidies the JSON, and says when it is not valid.
    page.fill("#id_input", '{"buckets":["b-1"],"dryRun":false}')
    page.click("[data-format-json]")
    expect(page.locator("#id_input")).to_have_value(
        json.dumps({"buckets": ["b-1"], "dryRun": False}, indent=2)
    )
    expect(page.locator("#id_input_status")).to_have_text("Valid JSON object")
    page.select_option("#id_region", "eu-west-2")
    page.get_by_role("button", name="Preview").click()

    preview = page.locator("[data-preview]")
    expect(preview).to_contain_text('"region": "eu-west-2"')
    expect(preview).to_contain_text('"buckets"')
    page.screenshot(path="/tmp/run-preview.png", full_page=True)
    page.get_by_role("button", name="Confirm and run").click()

    state = page.locator("[data-run-state]")
    expect(state).to_have_attribute("data-run-state", "submitted", timeout=40_000)
    run = Run.objects.get()
    assert run.variables["region"] == "eu-west-2"
    assert [e["id"] for e in api_runs(simulator, wf.id)] == [str(run.execution_id)]
    link = page.locator("[data-execution-link]")
    expect(link).to_be_visible()
    page.screenshot(path="/tmp/run.png", full_page=True)
    link.click()

    expect(page).to_have_url(f"{live_server.url}/executions/{run.execution_id}/")
    assert [p for p in problems if "favicon" not in p] == []


def test_a_double_click_on_confirm_still_makes_one_run(
    page, live_server, simulator, settings, runner, login, monkeypatch
):
    from tests.test_runs_support import fake_workflow

    wf = fake_workflow()
    sent: list = []
    monkeypatch.setattr(
        "qflowui.runs.services._send", lambda name, args, countdown=None: sent.append(args) or True
    )
    login(page, runner)
    page.goto(f"{live_server.url}/runs/new/?workflow={wf.id}")
    page.get_by_role("button", name="Preview").click()
    page.get_by_role("button", name="Confirm and run").dblclick()

    expect(page.locator("[data-run-state]")).to_have_attribute("data-run-state", "queued")
    assert Run.objects.count() == 1 and len(sent) == 1


def test_invalid_input_is_flagged_in_the_page_and_by_the_server(page, live_server, runner, login):
    from tests.test_runs_support import fake_workflow

    wf = fake_workflow()
    login(page, runner)
    page.goto(f"{live_server.url}/runs/new/?workflow={wf.id}")
    page.fill("#id_input", '{"buckets": [1, 2,]}')
    page.click("[data-format-json]")
    expect(page.locator("#id_input_status")).to_contain_text("Invalid JSON")
    page.fill("#id_connectorId", "not-a-uuid")
    page.get_by_role("button", name="Preview").click()

    expect(page.locator("#id_input_errors")).to_contain_text("Invalid JSON")
    expect(page.locator("#id_connectorId_errors")).to_contain_text("not a valid connector id")
    expect(page.locator("[data-preview]")).to_have_count(0)
    page.screenshot(path="/tmp/run-errors.png", full_page=False)
    assert not Run.objects.exists()
