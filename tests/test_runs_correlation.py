"""Runs are matched to executions by their correlation variable alone, or by a person.

Issue 9: a plain 500 on the run POST (nothing started) was "reconciled" to an execution
someone else started through the API with the same workflow and variables. Now every run
posts `qflowuiRunId=<its public id>`; an unknown run is tied to the execution carrying it, and
to no other; without one it ends `not_started`, or `needs_review` for a Runner to decide.

QFlow here is the simulator over real HTTP (live_server); the full flow also runs on Redis with
a real Celery worker.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from qflowui.mirror.models import Workflow
from qflowui.qflow import client_from_settings
from qflowui.qflow import types as qt
from qflowui.runs import services
from qflowui.runs.models import AuditEvent, Run, RunState
from tests.test_runs_support import *  # noqa: F403 - the fixtures runner, runner_client, sent...
from tests.test_runs_support import (
    api_runs,
    form_data,
    mirror_workflows,
    point_broker,
    run_state,
    simulator_workflow,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.django_db(transaction=True)

VARIABLES = {"region": "eu-west-1", "apiToken": "tok-lookalike-secret-77"}
RUN_INPUT = {"buckets": ["b-1"]}


@pytest.fixture
def aws(simulator):
    mirror_workflows(simulator)
    return simulator_workflow(simulator, "AWS")


def _posts(simulator) -> list:
    return [c for c in simulator.calls if c.method == "POST" and c.path.endswith("/run")]


def _new_run(user, workflow_id, **body) -> Run:
    run, created = services.run_create(
        user=user,
        workflow=Workflow.objects.get(pk=workflow_id),
        body={"input": RUN_INPUT, "variables": dict(VARIABLES), **body},
        idempotency_key=uuid.uuid4(),
    )
    assert created
    return run


def _lookalike(workflow_id: str) -> str:
    """Someone else starts the same workflow with the same input and variables, through the
    API, at the same moment: a POST straight to QFlow, not through qflowui."""
    return (
        client_from_settings()
        .run_workflow(workflow_id, input=RUN_INPUT, variables=dict(VARIABLES))
        .execution_id
    )


def _past_the_bound(run: Run, minutes: int = 31) -> None:
    Run.objects.filter(pk=run.pk).update(submitting_at=timezone.now() - timedelta(minutes=minutes))


def _page(client, run: Run) -> str:
    return client.get(f"/runs/{run.pk}/").content.decode()


# --- the variable itself -------------------------------------------------------------------------


def test_every_run_posts_its_public_id_as_qflowuiRunId_and_the_page_shows_it(
    simulator, aws, runner, runner_client, sent
):
    run = _new_run(runner, aws.id)

    assert services.run_submit(run.pk) == RunState.SUBMITTED

    run.refresh_from_db()
    [started] = api_runs(simulator, aws.id)
    assert f"qflowuiRunId={run.public_id}" in started["variables"]
    assert "region=eu-west-1" in started["variables"]
    # qflowui's own variable is not stored or shown as one the user typed.
    assert "qflowuiRunId" not in run.variables
    html = _page(runner_client, run)
    assert f"correlation: qflowuiRunId={run.public_id}" in html


def test_the_variable_can_be_renamed(simulator, aws, runner, sent, settings):
    settings.RUNS_CORRELATION_VARIABLE = "ticketRef"
    run = _new_run(runner, aws.id)
    services.run_submit(run.pk)

    [started] = api_runs(simulator, aws.id)
    assert f"ticketRef={Run.objects.get(pk=run.pk).public_id}" in started["variables"]
    assert not any(v.startswith("qflowuiRunId=") for v in started["variables"])


def test_the_form_refuses_a_typed_qflowuiRunId(runner_client, sent):
    from tests.test_runs_support import fake_workflow

    wf = fake_workflow()
    data = form_data(wf, var_key_0="qflowuiRunId", var_value_0=str(uuid.uuid4()))

    response = runner_client.post("/runs/new/", data)

    assert response.status_code == 400 and not Run.objects.exists()
    assert "set by qflowui on every run" in " ".join(response.context["form"].errors["var_key_0"])


def _execution(variables: list, raw: dict | None = None) -> qt.Execution:
    return qt.Execution(
        id=str(uuid.uuid4()),
        workflow_id=None,
        status="Running",
        source="PUBLIC_API",
        execution_type=None,
        customer_id=None,
        created_at=timezone.now(),
        updated_at=None,
        start_date=None,
        end_date=None,
        tags=[],
        created_by=None,
        categories={},
        variables=variables,
        parent_execution_id=None,
        linked_execution_ids=[],
        par_date_key=None,
        steps=None,
        raw=raw or {},
    )


@pytest.mark.parametrize(
    "listed",
    [
        ["qflowuiRunId={id}"],
        [" qflowuiRunId = {id} "],
        ['qflowuiRunId="{id}"'],
        ["'qflowuiRunId'='{ID}'"],
        [{"key": "qflowuiRunId", "value": "{id}"}],
        [{"key": "qflowuiRunId", "value": ["{id}"], "type": "user-defined"}],
    ],
    ids=["plain", "spaces", "quoted", "single-quoted-upper", "object", "object-list"],
)
def test_the_variable_is_read_however_qflow_lists_it(listed):
    public_id = uuid.uuid4()

    def fill(entry):
        if isinstance(entry, str):
            return entry.format(id=public_id, ID=str(public_id).upper())
        value = entry["value"]
        value = [v.format(id=public_id) for v in value] if isinstance(value, list) else value
        return {**entry, "value": value if isinstance(value, list) else value.format(id=public_id)}

    item = _execution([fill(e) for e in listed])
    assert services.carries(item, "qflowuiRunId", public_id)
    assert not services.carries(item, "qflowuiRunId", uuid.uuid4())
    assert not services.carries(item, "otherName", public_id)


def test_the_run_envelopes_override_variables_count_too():
    public_id = uuid.uuid4()
    raw = {"overrideVariables": [{"key": "qflowuiRunId", "value": str(public_id)}]}
    assert services.carries(_execution([], raw), "qflowuiRunId", public_id)


def test_run_again_from_an_execution_never_copies_the_variable(
    simulator, aws, runner, runner_client, sent
):
    run = _new_run(runner, aws.id, variables={"region": "eu-west-1", "depthCount": 3})
    services.run_submit(run.pk)
    run.refresh_from_db()

    html = runner_client.get(f"/runs/new/?from={run.execution_id}").content.decode()

    assert '<option value="eu-west-1" selected>' in html
    assert 'value="depthCount"' in html
    assert "qflowuiRunId" not in html and str(run.public_id) not in html


# --- a 500 on the POST while someone else starts a lookalike ------------------------------------


def test_a_500_that_started_nothing_never_takes_a_lookalike_and_ends_not_started(
    simulator, aws, runner, runner_client, sent
):
    run = _new_run(runner, aws.id)
    simulator.inject("status", path=r"/run$", status=500)
    assert services.run_submit(run.pk) == RunState.UNKNOWN
    lookalike = _lookalike(aws.id)
    assert [e["id"] for e in api_runs(simulator, aws.id)] == [lookalike]

    # Within the bound: still looking, and the lookalike is not taken.
    with pytest.raises(services.ReconcilePending):
        services.run_reconcile(run.pk)
    assert run_state(run.pk) == RunState.UNKNOWN
    html = _page(runner_client, run)
    assert 'data-run-state="unknown"' in html and lookalike not in html
    assert f"qflowuiRunId={run.public_id}" in html

    _past_the_bound(run)
    assert services.run_reconcile(run.pk) == RunState.NOT_STARTED

    run.refresh_from_db()
    assert run.execution_id is None and not run.candidates
    html = _page(runner_client, run)
    assert 'data-run-state="not_started"' in html
    assert "QFlow has no execution for this run" in html
    assert lookalike not in html
    assert len(_posts(simulator)) == 2  # ours (refused) and the lookalike: never posted again
    # Not started: running it again is offered, with nothing to warn about.
    assert f'href="/runs/new/?again={run.pk}"' in html
    form = runner_client.get(f"/runs/new/?again={run.pk}").content.decode()
    assert "data-running-again" in form and "data-may-still-run" not in form


def test_with_correlation_off_a_lookalike_goes_to_review_and_a_runner_says_it_did_not_start(
    simulator, aws, runner, runner_client, sent, settings
):
    settings.RUNS_CORRELATION_VARIABLE = ""
    run = _new_run(runner, aws.id)
    simulator.inject("status", path=r"/run$", status=500)
    assert services.run_submit(run.pk) == RunState.UNKNOWN
    lookalike = _lookalike(aws.id)
    with pytest.raises(services.ReconcilePending):
        services.run_reconcile(run.pk)  # never picked automatically, even when it fits
    _past_the_bound(run)

    assert services.run_reconcile(run.pk) == RunState.NEEDS_REVIEW

    run.refresh_from_db()
    assert run.execution_id is None
    assert [c["id"] for c in run.candidates] == [lookalike]
    html = _page(runner_client, run)
    assert 'data-run-state="needs_review"' in html
    assert 'hx-trigger="every 2s"' not in html  # it waits for a person, not a worker
    row = re.search(rf'<tr data-candidate="{lookalike}">(.*?)</tr>', html, re.S).group(1)
    assert f'href="/executions/{lookalike}/"' in row
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row)  # created, with its zone
    assert "region=eu-west-1" in row and "apiToken=********" in row
    assert "tok-lookalike-secret-77" not in html
    assert "data-this-is-it" in row and "data-did-not-start" in html
    # Running the workflow again now warns that the first may still be running.
    form = runner_client.get(f"/runs/new/?again={run.pk}").content.decode()
    assert f'data-may-still-run="{run.pk}"' in form and f'href="/runs/{run.pk}/"' in form

    answer = runner_client.post(f"/runs/{run.pk}/review/", {"decision": "not_started"})

    assert answer.status_code == 302
    run.refresh_from_db()
    assert run.state == RunState.NOT_STARTED and run.execution_id is None
    assert run.reviewed_by == runner
    [event] = AuditEvent.objects.filter(action="run.reviewed")
    assert event.actor == runner and event.target == f"run {run.pk}"
    assert event.detail["decision"] == "not_started"
    html = _page(runner_client, run)
    assert 'data-run-state="not_started"' in html and "decided by rita.runner" in html
    assert len(_posts(simulator)) == 2


# --- a lost answer after QFlow started the run ---------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "params"),
    [("accept_then_status", {"status": 500}), ("accept_then_delay", {"seconds": 2.5})],
    ids=["500-after-accepting", "timeout-after-accepting"],
)
def test_a_lost_answer_is_matched_by_the_variable_not_by_a_lookalike_started_first(
    simulator, aws, runner, sent, settings, fault, params
):
    settings.QFLOW_TIMEOUT_SECONDS = 1.0
    lookalike = _lookalike(aws.id)  # same workflow, input and variables, a moment earlier
    run = _new_run(runner, aws.id)
    simulator.inject(fault, path=r"/run$", **params)

    assert services.run_submit(run.pk) == RunState.UNKNOWN
    assert services.run_reconcile(run.pk) == RunState.SUBMITTED

    run.refresh_from_db()
    listed = {e["id"]: e for e in api_runs(simulator, aws.id)}
    assert set(listed) == {lookalike, str(run.execution_id)}
    assert f"qflowuiRunId={run.public_id}" in listed[str(run.execution_id)]["variables"]
    assert run.reconciled and run.reviewed_by is None
    assert "correlation variable" in run.events.get(state=RunState.SUBMITTED).note


# --- a person decides ----------------------------------------------------------------------------


@pytest.fixture
def in_review(simulator, aws, runner, sent, settings):
    """A run whose answer was lost, without correlation, with two plausible executions."""
    settings.RUNS_CORRELATION_VARIABLE = ""
    run = _new_run(runner, aws.id)
    simulator.inject("accept_then_status", path=r"/run$", status=502)
    services.run_submit(run.pk)
    other = _lookalike(aws.id)
    _past_the_bound(run)
    assert services.run_reconcile(run.pk) == RunState.NEEDS_REVIEW
    ours = next(e["id"] for e in api_runs(simulator, aws.id) if e["id"] != other)
    run.refresh_from_db()
    assert {c["id"] for c in run.candidates} == {ours, other}
    return run, ours, other


def test_this_is_it_ties_the_run_to_the_execution_once_and_is_audited(
    in_review, runner, runner_client
):
    run, ours, _ = in_review
    choice = {"decision": "started", "execution": ours}

    first = runner_client.post(f"/runs/{run.pk}/review/", choice, follow=True)
    again = runner_client.post(f"/runs/{run.pk}/review/", choice, follow=True)  # double click

    run.refresh_from_db()
    assert run.state == RunState.SUBMITTED and str(run.execution_id) == ours
    assert run.reconciled and run.reviewed_by == runner
    assert AuditEvent.objects.filter(action="run.reviewed").count() == 1
    event = AuditEvent.objects.get(action="run.reviewed")
    assert event.detail == {
        "decision": "started",
        "execution": ours,
        "workflow": str(run.workflow_id),
    }
    assert "Recorded: this run is execution" in first.content.decode()
    html = again.content.decode()
    assert "already recorded" in html and 'data-run-state="submitted"' in html
    assert "chosen by rita.runner" in html and f'href="/executions/{ours}/"' in html
    assert run.events.filter(state=RunState.SUBMITTED).count() == 1


def test_a_second_different_answer_is_refused_and_changes_nothing(
    in_review, runner_client, other_runner, client
):
    run, ours, other = in_review
    runner_client.post(f"/runs/{run.pk}/review/", {"decision": "started", "execution": ours})
    client.force_login(other_runner)

    late = client.post(f"/runs/{run.pk}/review/", {"decision": "not_started"}, follow=True)
    wrong = client.post(
        f"/runs/{run.pk}/review/", {"decision": "started", "execution": other}, follow=True
    )

    run.refresh_from_db()
    assert run.state == RunState.SUBMITTED and str(run.execution_id) == ours
    assert "already decided by rita.runner" in late.content.decode()
    assert "already decided" in wrong.content.decode()
    assert AuditEvent.objects.filter(action="run.reviewed").count() == 1


def test_an_execution_that_is_not_a_candidate_is_refused(in_review, runner_client):
    run, _, _ = in_review
    stranger = str(uuid.uuid4())

    response = runner_client.post(
        f"/runs/{run.pk}/review/", {"decision": "started", "execution": stranger}, follow=True
    )

    assert "not one of this run" in response.content.decode()
    assert run_state(run.pk) == RunState.NEEDS_REVIEW
    assert not AuditEvent.objects.filter(action="run.reviewed").exists()


def test_a_viewer_sees_the_candidates_but_cannot_decide(in_review, client, viewer):
    run, ours, _ = in_review
    client.force_login(viewer)

    html = client.get(f"/runs/{run.pk}/").content.decode()
    denied = client.post(f"/runs/{run.pk}/review/", {"decision": "started", "execution": ours})

    assert f'data-candidate="{ours}"' in html and "data-this-is-it" not in html
    assert "Only a Runner can decide" in html
    assert denied.status_code == 403 and "data-denied" in denied.content.decode()
    assert run_state(run.pk) == RunState.NEEDS_REVIEW
    refused = AuditEvent.objects.get(action="run.denied")
    assert refused.actor == viewer and refused.target == f"run {run.pk}"
    assert not AuditEvent.objects.filter(action="run.reviewed").exists()


def test_a_review_answer_needs_the_csrf_token(in_review, runner):
    from django.test import Client

    run, ours, _ = in_review
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(runner)

    response = strict.post(f"/runs/{run.pk}/review/", {"decision": "started", "execution": ours})

    assert response.status_code == 403
    assert run_state(run.pk) == RunState.NEEDS_REVIEW


def test_qflows_own_answer_still_beats_a_persons_choice(in_review, runner, runner_client):
    run, ours, _ = in_review
    runner_client.post(f"/runs/{run.pk}/review/", {"decision": "started", "execution": ours})
    late = Run.objects.create(
        idempotency_key=uuid.uuid4(),
        created_by=runner,
        workflow_id=run.workflow_id,
        body_sha256="0" * 64,
        state=RunState.SUBMITTING,
    )

    assert services.record_submitted(late.pk, ours, response={}, reconciled=False)

    run.refresh_from_db()
    assert run.state == RunState.UNKNOWN and run.execution_id is None
    assert str(Run.objects.get(pk=late.pk).execution_id) == ours


# --- end to end: Redis, a real worker, the simulator over HTTP -----------------------------------


@pytest.mark.celery_worker
@pytest.mark.redis
def test_with_a_real_worker_a_500_and_a_lookalike_end_not_started(
    simulator,
    aws,
    live_server,
    settings,
    start_celery_worker,
    redis_url,
    monkeypatch,
    runner_client,
):
    start_celery_worker(env=worker_env(live_server, settings))
    point_broker(monkeypatch, redis_url, start_celery_worker.queue)
    simulator.inject("status", path=r"/run$", status=500)

    response = runner_client.post("/runs/new/", form_data(aws, region="eu-west-1"))
    run = Run.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))
    wait_for(lambda: run_state(run.pk) == RunState.UNKNOWN, 30, "the run to be unknown")
    before = len(simulator.calls)
    lookalike = (
        client_from_settings()
        .run_workflow(
            aws.id, input={"buckets": ["test-bucket-1"]}, variables={"region": "eu-west-1"}
        )
        .execution_id
    )
    # The worker's reconcile runs (after 3 s, then 5 s...) and keeps looking: no match.
    wait_for(
        lambda: sum(1 for c in simulator.calls[before:] if c.path.endswith("/executions")) >= 2,
        40,
        "the worker to list the executions twice",
    )
    assert run_state(run.pk) == RunState.UNKNOWN

    _past_the_bound(Run.objects.get(pk=run.pk))
    assert services.reconcile_enqueue(run.pk, countdown=0)
    wait_for(lambda: run_state(run.pk) == RunState.NOT_STARTED, 30, "the run to be not_started")

    run.refresh_from_db()
    assert run.execution_id is None
    assert lookalike not in runner_client.get(f"/runs/{run.pk}/").content.decode()
    assert len(_posts(simulator)) == 2
