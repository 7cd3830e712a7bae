"""The submit, reconcile and sweep services against the simulator over real HTTP, in-process.

The same code runs inside the Celery tasks (tests/test_runs_worker.py runs them for real);
here each step is called directly so every branch is checked quickly. Enqueues are recorded.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from qflowui.mirror.models import Execution, Workflow
from qflowui.runs import services
from qflowui.runs.models import Run, RunEvent, RunState
from tests.test_runs_support import *  # noqa: F403 - the fixtures runner, runner_client, sent...
from tests.test_runs_support import (
    api_runs,
    mirror_workflows,
    simulator_workflow,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _posts(simulator) -> list:
    return [c for c in simulator.calls if c.method == "POST" and c.path.endswith("/run")]


def _new_run(user, workflow_id, *, variables=None, run_input=None) -> Run:
    body = {"input": run_input if run_input is not None else {"buckets": ["b-1"]}}
    if variables:
        body["variables"] = variables
    run, created = services.run_create(
        user=user,
        workflow=Workflow.objects.get(pk=workflow_id),
        body=body,
        idempotency_key=uuid.uuid4(),
    )
    assert created
    return run


@pytest.fixture
def aws(simulator):
    mirror_workflows(simulator)
    return simulator_workflow(simulator, "AWS")


def test_submit_posts_once_and_stores_the_execution_id(simulator, aws, runner, sent):
    run = _new_run(runner, aws.id, variables={"region": "eu-west-1"})
    assert sent == [("runs.submit", (run.pk,))]

    assert services.run_submit(run.pk) == RunState.SUBMITTED

    run.refresh_from_db()
    started = api_runs(simulator, aws.id)
    assert len(started) == 1 and len(_posts(simulator)) == 1
    assert str(run.execution_id) == started[0]["id"]
    assert run.response["executionId"] == started[0]["id"]
    assert "region=eu-west-1" in started[0]["variables"]
    assert run.submitting_at <= run.submitted_at and run.attempts == 1 and not run.reconciled
    assert list(run.events.values_list("state", flat=True)) == ["queued", "submitting", "submitted"]
    # The execution is in the mirror at once, so its page exists.
    assert Execution.objects.filter(pk=run.execution_id, source="PUBLIC_API").exists()


def test_submitting_again_never_posts_again(simulator, aws, runner, sent):
    run = _new_run(runner, aws.id)
    services.run_submit(run.pk)
    services.run_submit(run.pk)

    assert len(_posts(simulator)) == 1
    assert Run.objects.get(pk=run.pk).state == RunState.SUBMITTED


def test_a_redelivered_task_finding_submitting_does_not_post_but_reconciles(
    simulator, aws, runner, sent
):
    run = _new_run(runner, aws.id)
    Run.objects.filter(pk=run.pk).update(state=RunState.SUBMITTING, submitting_at=timezone.now())

    assert services.run_submit(run.pk) == RunState.UNKNOWN

    assert _posts(simulator) == []
    assert ("runs.reconcile", (run.pk,)) in sent
    assert "not sent again" in Run.objects.get(pk=run.pk).error


@pytest.mark.parametrize("status", [400, 403, 404])
def test_a_clear_refusal_fails_the_run_with_qflows_message(simulator, aws, runner, sent, status):
    run = _new_run(runner, aws.id)
    simulator.inject(
        "status", path=r"/run$", status=status, body={"message": "Missing EXECUTE MY WF permission"}
    )

    assert services.run_submit(run.pk) == RunState.FAILED

    run.refresh_from_db()
    assert f"HTTP {status}" in run.error and "Missing EXECUTE MY WF permission" in run.error
    assert run.failed_at and run.execution_id is None
    assert api_runs(simulator, aws.id) == []


def test_a_500_after_accepting_makes_it_unknown_then_reconcile_finds_it(
    simulator, aws, runner, sent
):
    run = _new_run(runner, aws.id, variables={"region": "ap-south-1"})
    simulator.inject("accept_then_status", path=r"/run$", status=500)

    assert services.run_submit(run.pk) == RunState.UNKNOWN
    assert ("runs.reconcile", (run.pk,)) in sent
    assert services.run_reconcile(run.pk) == RunState.SUBMITTED

    run.refresh_from_db()
    started = api_runs(simulator, aws.id)
    assert len(started) == 1 and str(run.execution_id) == started[0]["id"]
    assert run.reconciled and len(_posts(simulator)) == 1
    assert [e.state for e in run.events.all()] == ["queued", "submitting", "unknown", "submitted"]


def test_a_timeout_after_accepting_makes_it_unknown(simulator, aws, runner, sent, settings):
    settings.QFLOW_TIMEOUT_SECONDS = 1.0
    run = _new_run(runner, aws.id)
    simulator.inject("accept_then_delay", path=r"/run$", seconds=2.5)

    assert services.run_submit(run.pk) == RunState.UNKNOWN
    assert "may have reached QFlow" in Run.objects.get(pk=run.pk).error
    assert services.run_reconcile(run.pk) == RunState.SUBMITTED
    assert len(api_runs(simulator, aws.id)) == 1


def test_a_refused_connection_puts_it_back_to_queued_for_the_sweeper(
    simulator, aws, runner, sent, settings
):
    run = _new_run(runner, aws.id)
    settings.QFLOW_BASE_URL = "http://127.0.0.1:9"

    assert services.run_submit(run.pk) == RunState.QUEUED

    run.refresh_from_db()
    assert run.enqueued_at is None and run.attempts == 1 and "did not reach QFlow" in run.error
    sent.clear()
    services.runs_sweep(now=timezone.now() + timedelta(seconds=10))
    assert sent == [("runs.submit", (run.pk,))]


def test_reconcile_skips_other_sources_other_variables_and_claimed_executions(
    simulator, aws, runner, sent
):
    # Two runs of the same workflow, the first with a lost answer.
    lost = _new_run(runner, aws.id, variables={"region": "eu-west-1"})
    simulator.inject("accept_then_status", path=r"/run$", status=502)
    services.run_submit(lost.pk)
    # Another run with other variables, and one with the same, both answered normally.
    other = _new_run(runner, aws.id, variables={"region": "us-west-2"})
    services.run_submit(other.pk)

    assert services.run_reconcile(lost.pk) == RunState.SUBMITTED
    lost.refresh_from_db()
    other.refresh_from_db()
    assert lost.execution_id != other.execution_id
    listed = {e["id"]: e for e in simulator.executions(aws.id)}
    assert "region=eu-west-1" in listed[str(lost.execution_id)]["variables"]


def test_reconcile_gives_up_after_the_bound_without_posting(simulator, aws, runner, sent):
    run = _new_run(runner, aws.id)
    simulator.inject("status", path=r"/run$", status=503)
    # A 503 never accepted anything here, but the client cannot know: unknown.
    assert services.run_submit(run.pk) == RunState.UNKNOWN
    with pytest.raises(services.ReconcilePending):
        services.run_reconcile(run.pk)
    # Still looking well past the old 10-minute bound: QFlow's list may lag.
    Run.objects.filter(pk=run.pk).update(submitting_at=timezone.now() - timedelta(minutes=11))
    with pytest.raises(services.ReconcilePending):
        services.run_reconcile(run.pk)
    Run.objects.filter(pk=run.pk).update(submitting_at=timezone.now() - timedelta(minutes=31))

    # Not `failed`: QFlow has no execution carrying the run's id, so it did not start.
    assert services.run_reconcile(run.pk) == RunState.NOT_STARTED
    assert "QFlow has no execution for this run" in Run.objects.get(pk=run.pk).error
    assert len(_posts(simulator)) == 1


def test_qflows_own_answer_beats_a_reconciled_guess(simulator, aws, runner, sent):
    guessed = _new_run(runner, aws.id)
    answered = _new_run(runner, aws.id)
    execution_id = str(uuid.uuid4())
    Run.objects.filter(pk=guessed.pk).update(
        state=RunState.SUBMITTED, execution_id=execution_id, reconciled=True
    )
    Run.objects.filter(pk=answered.pk).update(state=RunState.SUBMITTING)

    assert services.record_submitted(answered.pk, execution_id, response={}, reconciled=False)

    guessed.refresh_from_db()
    assert Run.objects.get(pk=answered.pk).execution_id == uuid.UUID(execution_id)
    assert guessed.state == RunState.UNKNOWN and guessed.execution_id is None
    assert ("runs.reconcile", (guessed.pk,)) in sent


def test_the_sweeper_hands_stuck_submits_to_reconcile_and_leaves_fresh_ones(
    simulator, aws, runner, sent
):
    stuck = _new_run(runner, aws.id)
    fresh = _new_run(runner, aws.id)
    now = timezone.now()
    Run.objects.filter(pk=stuck.pk).update(
        state=RunState.SUBMITTING, submitting_at=now - timedelta(minutes=5)
    )
    Run.objects.filter(pk=fresh.pk).update(state=RunState.SUBMITTING, submitting_at=now)
    sent.clear()

    result = services.runs_sweep()

    assert result.stale == 1
    assert Run.objects.get(pk=stuck.pk).state == RunState.UNKNOWN
    assert Run.objects.get(pk=fresh.pk).state == RunState.SUBMITTING
    assert sent == [("runs.reconcile", (stuck.pk,))]


def test_the_sweeper_does_not_resend_a_recently_enqueued_run(simulator, aws, runner, sent):
    run = _new_run(runner, aws.id)
    sent.clear()
    assert services.runs_sweep(now=timezone.now() + timedelta(seconds=10)).enqueued == 0
    assert services.runs_sweep(now=timezone.now() + timedelta(seconds=90)).enqueued == 1
    assert sent == [("runs.submit", (run.pk,))]


def test_submit_of_a_vanished_run_does_nothing(simulator, sent):
    assert services.run_submit(987654) is None
    assert _posts(simulator) == []


def test_no_secret_is_a_task_argument_or_in_the_logs(simulator, aws, runner, sent, caplog):
    run = _new_run(runner, aws.id, run_input={"apiToken": "tok-very-secret-123456"})
    simulator.inject("accept_then_status", path=r"/run$", status=500)
    with caplog.at_level("DEBUG"):
        services.run_submit(run.pk)
        services.run_reconcile(run.pk)

    assert all(args == (run.pk,) for _, args in sent)
    logged = caplog.text
    for secret in ("tok-very-secret-123456", "qflowui-demo-secret"):
        assert secret not in logged
    assert RunEvent.objects.filter(run=run).exists()


def test_the_run_page_links_the_execution_once_submitted(
    simulator, aws, runner, runner_client, sent
):
    run = _new_run(runner, aws.id)
    services.run_submit(run.pk)
    run.refresh_from_db()
    Execution.objects.filter(pk=run.execution_id).delete()  # the page mirrors it again

    page = runner_client.get(f"/runs/{run.pk}/")
    html = page.content.decode()
    assert 'data-run-state="submitted"' in html
    assert f'href="/executions/{run.execution_id}/"' in html
    assert 'data-status="running"' in html
    assert Execution.objects.filter(pk=run.execution_id).exists()
    fragment = runner_client.get(
        f"/runs/{run.pk}/", headers={"HX-Request": "true", "HX-Target": "run-status"}
    )
    assert fragment.status_code == 286
    running = runner_client.get(
        f"/runs/{run.pk}/", headers={"HX-Request": "true", "HX-Target": "run-execution"}
    )
    assert running.status_code == 200 and 'hx-trigger="every 5s"' in running.content.decode()
