"""`mirror.refresh.execution_refresh`: the one way an execution is refreshed from QFlow, with
one answer to write races (QFlow's order, never arrival order). Real HTTP to a loopback QFlow."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from qflowui.mirror.models import Execution, Step, Workflow
from qflowui.mirror.refresh import execution_refresh
from qflowui.qflow import client_from_settings
from qflowui.qflow.errors import QflowNotFound
from tests.test_execution_detail_support import (
    EXECUTION_ID,
    T0,
    WORKFLOW_ID,
    FakeQflow,
    component,
    serve_fake,
    step,
)

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cr3t-db-password-value"


@pytest.fixture
def fake(httpserver, settings) -> FakeQflow:
    return serve_fake(
        httpserver,
        settings,
        FakeQflow(
            workflow_name="Rotate keys",
            components=[component("trigger", "Start", "Trigger", nxt="act")],
            steps=[
                step("trigger", "Trigger", "Success", 1),
                step("act", "Action", "Failed", 2, error=f"login failed: password={SECRET}"),
            ],
            execution={"variables": [f"DB_PASSWORD={SECRET}", "region=us-east-1"]},
        ),
    )


def refresh(**kw) -> Execution:
    return execution_refresh(client_from_settings(purpose="page"), EXECUTION_ID, **kw)


def answer(fake: FakeQflow, status: str, updated_ms: int | None) -> None:
    """What QFlow says about the execution from now on."""
    fake.execution.update(status=status, updatedAt=updated_ms)
    if status == "Running":
        fake.execution["endDate"] = None


def test_it_stores_the_execution_its_steps_and_its_new_workflow_masked(fake):
    execution = refresh(steps=True)

    stored = Execution.objects.get(pk=EXECUTION_ID)
    assert execution == stored and execution.workflow.name == "Rotate keys"
    assert stored.status == "Failed" and stored.is_terminal and stored.steps_synced_at
    assert SECRET not in str(stored.variables) and "region=us-east-1" in stored.variables
    steps = {s.node_id: s for s in Step.objects.filter(execution=stored)}
    assert set(steps) == {"trigger", "act"}
    assert SECRET not in steps["act"].error and "login failed" in steps["act"].error
    assert Workflow.objects.get(pk=WORKFLOW_ID).definition is not None


def test_without_steps_it_stores_the_execution_alone(fake):
    refresh()

    assert Execution.objects.get(pk=EXECUTION_ID).steps_synced_at is None
    assert not Step.objects.exists()
    assert fake.calls == [
        f"GET /qflowapi/v1/executions/{EXECUTION_ID}",
        f"GET /qflowapi/v1/workflows/{WORKFLOW_ID}",
    ]


def test_a_workflow_already_mirrored_is_not_fetched_again(fake):
    refresh()
    fake.calls.clear()

    refresh()

    assert fake.calls == [f"GET /qflowapi/v1/executions/{EXECUTION_ID}"]


def test_a_newer_answer_updates_the_row(fake):
    answer(fake, "Running", T0 + 10_000)
    refresh()
    answer(fake, "Success", T0 + 90_000)

    execution = refresh()

    assert execution.status == "Success" and execution.is_terminal


def test_an_answer_older_than_the_stored_row_is_dropped_steps_included(fake):
    answer(fake, "Success", T0 + 90_000)
    refresh(steps=True)
    answer(fake, "Running", T0 + 10_000)  # a slow request's answer, arriving last
    fake.steps[1]["status"] = "Running"

    execution = refresh(steps=True)

    assert execution.status == "Success" and execution.is_terminal
    assert Step.objects.get(node_id="act").status == "Failed"


def test_without_dates_a_running_answer_never_reopens_a_finished_execution(fake):
    answer(fake, "Success", None)
    refresh()
    answer(fake, "Running", None)

    execution = refresh()

    assert execution.status == "Success" and execution.is_terminal


def test_an_execution_qflow_does_not_know_raises_not_found_and_stores_nothing(fake):
    fake.execution["id"] = "someone-else"
    missing = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"

    with pytest.raises(QflowNotFound):
        execution_refresh(client_from_settings(), missing, steps=True)

    assert not Execution.objects.exists()


def test_refreshes_racing_on_a_new_execution_leave_one_row_and_no_error(fake):
    start = threading.Barrier(6)

    def one() -> str:
        try:
            start.wait()
            return refresh(steps=True).status
        finally:
            connection.close()

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: one(), range(6)))

    assert statuses == ["Failed"] * 6
    assert Execution.objects.count() == 1
    assert Step.objects.count() == 2
    assert Workflow.objects.count() == 1
