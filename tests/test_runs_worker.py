"""The run flow end to end: the form's POST, Redis, a real Celery worker, the simulator over HTTP.

The worker is another process reading this test's database, hence transactional tests.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from qflowui.runs import services
from qflowui.runs.models import Run, RunState
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

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.celery_worker,
    pytest.mark.redis,
]
DEAD_BROKER = "redis://127.0.0.1:9/0"


@pytest.fixture
def flow(simulator, live_server, settings, start_celery_worker, redis_url, monkeypatch):
    """Mirrored workflows, a worker on Redis, and this process sending to the worker's queue."""
    mirror_workflows(simulator)

    class Flow:
        wf = simulator_workflow(simulator, "AWS")
        queue = start_celery_worker.queue

        @staticmethod
        def start_worker(**env: str):
            return start_celery_worker(env=worker_env(live_server, settings, **env))

        @staticmethod
        def broker(url: str) -> None:
            point_broker(monkeypatch, url, start_celery_worker.queue)

    Flow.broker(redis_url)
    return Flow


def _post(client: Client, data: dict) -> Run:
    response = client.post("/runs/new/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Run.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))


def _settled(run_id: int, state: str = RunState.SUBMITTED, timeout: float = 40.0) -> Run:
    wait_for(lambda: run_state(run_id) == state, timeout, f"run {run_id} to be {state}")
    return Run.objects.get(pk=run_id)


def test_a_submitted_run_starts_one_execution_shown_on_the_run_page(flow, simulator, runner_client):
    flow.start_worker()
    run = _post(runner_client, form_data(flow.wf, region="eu-west-1"))

    run = _settled(run.pk)

    started = api_runs(simulator, flow.wf.id)
    assert [e["id"] for e in started] == [str(run.execution_id)]
    assert "region=eu-west-1" in started[0]["variables"]
    html = runner_client.get(f"/runs/{run.pk}/").content.decode()
    assert 'data-run-state="submitted"' in html
    assert f'href="/executions/{run.execution_id}/"' in html


def test_the_same_form_posted_twice_and_concurrently_starts_one_execution(
    flow, simulator, runner, runner_client
):
    flow.start_worker()
    data = form_data(flow.wf)
    first = _post(runner_client, data)
    again = _post(runner_client, data)  # a resend after the first answer
    assert again.pk == first.pk

    # Two tabs posting another form at the same moment.
    racing = form_data(flow.wf, region="us-west-2")
    barrier = threading.Barrier(2)
    answers: list[str] = []

    def post() -> None:
        from django.db import connection

        client = Client()
        client.force_login(runner)
        barrier.wait()
        try:
            answers.append(client.post("/runs/new/", racing)["Location"])
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(answers) == 2 and answers[0] == answers[1]
    assert Run.objects.count() == 2
    for run in Run.objects.all():
        _settled(run.pk)
    assert len(api_runs(simulator, flow.wf.id)) == 2  # one per form, not per POST


def test_with_the_broker_down_the_post_answers_fast_and_the_sweeper_submits_later(
    flow, simulator, runner_client, redis_url
):
    flow.start_worker()
    flow.broker(DEAD_BROKER)
    started = time.monotonic()
    run = _post(runner_client, form_data(flow.wf))
    elapsed = time.monotonic() - started

    assert elapsed < 2.0  # the budget (100 ms) is measured by bench/run_submit.py
    run.refresh_from_db()
    assert run.state == RunState.QUEUED and run.enqueued_at is None
    assert "could not be reached" in runner_client.get(f"/runs/{run.pk}/").content.decode()
    # The sweeper, while the broker is still down, keeps the run.
    assert services.runs_sweep(now=timezone.now() + timedelta(seconds=10)).enqueue_failed == 1
    time.sleep(1)
    assert run_state(run.pk) == RunState.QUEUED and api_runs(simulator, flow.wf.id) == []

    flow.broker(redis_url)  # the broker is back: beat's sweep task runs on the worker
    Run.objects.filter(pk=run.pk).update(queued_at=timezone.now() - timedelta(seconds=10))
    assert services._send("runs.sweep", ())

    run = _settled(run.pk)
    assert [e["id"] for e in api_runs(simulator, flow.wf.id)] == [str(run.execution_id)]


@pytest.mark.parametrize(
    ("fault", "params", "env"),
    [
        ("accept_then_status", {"status": 500}, {}),
        ("accept_then_delay", {"seconds": 3}, {"QFLOW_TIMEOUT_SECONDS": "1"}),
    ],
    ids=["500-after-accepting", "timeout-after-accepting"],
)
def test_a_lost_answer_makes_the_run_unknown_then_submitted_with_the_right_id(
    flow, simulator, runner_client, fault, params, env
):
    flow.start_worker(**env)
    simulator.inject(fault, path=r"/run$", **params)
    run = _post(runner_client, form_data(flow.wf))

    wait_for(
        lambda: Run.objects.filter(pk=run.pk, unknown_at__isnull=False).exists(),
        30,
        "the run to become unknown",
    )
    run = _settled(run.pk)

    started = api_runs(simulator, flow.wf.id)
    assert [e["id"] for e in started] == [str(run.execution_id)]
    assert run.reconciled
    posts = [c for c in simulator.calls if c.method == "POST" and c.path.endswith("/run")]
    assert len(posts) == 1


def test_a_403_fails_the_run_with_qflows_message(flow, simulator, runner_client):
    flow.start_worker()
    simulator.inject(
        "status", path=r"/run$", status=403, body={"message": "User lacks EXECUTE MY WF"}
    )
    run = _post(runner_client, form_data(flow.wf))

    run = _settled(run.pk, RunState.FAILED)

    html = runner_client.get(f"/runs/{run.pk}/").content.decode()
    assert 'data-run-state="failed"' in html
    assert "HTTP 403" in html and "User lacks EXECUTE MY WF" in html
    assert api_runs(simulator, flow.wf.id) == []


def test_a_worker_killed_mid_post_still_ends_with_exactly_one_execution(
    flow, simulator, runner_client
):
    first = flow.start_worker(QFLOW_TIMEOUT_SECONDS="30")
    simulator.inject("accept_then_delay", path=r"/run$", seconds=8)
    run = _post(runner_client, form_data(flow.wf))
    wait_for(lambda: api_runs(simulator, flow.wf.id), 30, "the POST to reach QFlow")
    assert run_state(run.pk) == RunState.SUBMITTING

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    flow.start_worker()
    # The lost worker never answers; once its submit could no longer be running (past the
    # task's hard time limit), beat's sweep hands the run to reconciliation.
    Run.objects.filter(pk=run.pk).update(submitting_at=timezone.now() - timedelta(minutes=5))
    assert services._send("runs.sweep", ())

    run = _settled(run.pk)
    time.sleep(9)  # past the killed request's delay: nothing else may appear
    started = api_runs(simulator, flow.wf.id)
    assert [e["id"] for e in started] == [str(run.execution_id)]
    posts = [c for c in simulator.calls if c.method == "POST" and c.path.endswith("/run")]
    assert len(posts) == 1


def test_enqueue_fails_fast_when_the_broker_goes_away_and_works_again_when_back(
    redis_url, monkeypatch
):
    import redis

    queue = f"test-scratch-{time.time_ns()}"
    point_broker(monkeypatch, redis_url, queue)
    assert services._send("runs.sweep", ())  # a kept connection from now on
    point_broker(monkeypatch, DEAD_BROKER, queue)
    started = time.monotonic()
    assert not services._send("runs.sweep", ())
    assert time.monotonic() - started < 1.0
    point_broker(monkeypatch, redis_url, queue)
    assert services._send("runs.sweep", ())
    assert redis.Redis.from_url(redis_url).llen(queue) == 2
    redis.Redis.from_url(redis_url).delete(queue)
