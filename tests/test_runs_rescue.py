"""Nothing strands a run: a gateway refusal (401, 409/429) is sent again once it is safe, a
worker that starts sweeps the outbox even while beat is down, a killed worker's message comes
back in minutes (Redis visibility timeout), and the header and /readyz say when beat stopped.

QFlow is the simulator over real HTTP; the flows run on Redis with real Celery worker (and
beat) processes reading this test's database.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from qflowui.mirror.models import Workflow
from qflowui.runs import services, tasks
from qflowui.runs.heartbeat import BEAT
from qflowui.runs.models import Heartbeat, Run, RunState
from tests.conftest import database_url_for_other_processes
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
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def aws(simulator):
    mirror_workflows(simulator)
    return simulator_workflow(simulator, "AWS")


def _posts(simulator) -> list:
    return [c for c in simulator.calls if c.method == "POST" and c.path.endswith("/run")]


def _new_run(user, workflow_id) -> Run:
    run, _ = services.run_create(
        user=user,
        workflow=Workflow.objects.get(pk=workflow_id),
        body={"input": {"buckets": ["b-1"]}, "variables": {"region": "eu-west-1"}},
        idempotency_key=uuid.uuid4(),
    )
    return run


@pytest.fixture
def countdowns(monkeypatch) -> list[tuple[str, tuple, float | None]]:
    """Like `sent`, with the countdown each task was given."""
    calls: list[tuple[str, tuple, float | None]] = []

    def fake_send(task_name: str, args: tuple, *, countdown: float | None = None) -> bool:
        calls.append((task_name, args, countdown))
        return True

    monkeypatch.setattr(services, "_send", fake_send)
    return calls


# --- 401 and 409/429 on the POST: QFlow started nothing, so the run is sent again -------------


@pytest.mark.celery_worker
@pytest.mark.redis
@pytest.mark.parametrize(
    ("fault", "params", "posts"),
    [
        # The client posts once more with a fresh token after a 401; both refused.
        ("expire_token", {"times": 2}, 3),
        ("status", {"status": 429, "to_wait": 2}, 2),
        ("status", {"status": 409, "to_wait": 2}, 2),
    ],
    ids=["401", "429", "409"],
)
def test_a_gateway_refusal_is_requeued_and_submitted_exactly_once(
    simulator,
    aws,
    live_server,
    settings,
    start_celery_worker,
    redis_url,
    monkeypatch,
    runner_client,
    fault,
    params,
    posts,
):
    start_celery_worker(env=worker_env(live_server, settings))
    point_broker(monkeypatch, redis_url, start_celery_worker.queue)
    simulator.inject(fault, path=r"/run$", **params)

    response = runner_client.post("/runs/new/", form_data(aws, region="eu-west-1"))
    run = Run.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))
    wait_for(lambda: run_state(run.pk) == RunState.SUBMITTED, 40, "the run to be submitted")

    run.refresh_from_db()
    started = api_runs(simulator, aws.id)
    assert [e["id"] for e in started] == [str(run.execution_id)]
    sent = _posts(simulator)
    assert len(sent) == posts and [c.status for c in sent][-1] == 200
    states = list(run.events.values_list("state", flat=True))
    assert states == ["queued", "submitting", "queued", "submitting", "submitted"]
    assert run.attempts == 2 and not run.reconciled
    if fault == "status":
        # Sent again only after the wait QFlow asked for.
        assert sent[-1].time - sent[0].time >= params["to_wait"] - 0.1
    time.sleep(2)  # nothing else arrives: no second chain of messages
    assert len(_posts(simulator)) == posts and len(api_runs(simulator, aws.id)) == 1


def test_a_long_rate_limit_wait_is_kept_and_nothing_posts_early(simulator, aws, runner, countdowns):
    run = _new_run(runner, aws.id)
    simulator.inject("status", path=r"/run$", status=429, to_wait=600)
    countdowns.clear()

    assert services.run_submit(run.pk) == RunState.QUEUED

    run.refresh_from_db()
    assert run.not_before > timezone.now() + timedelta(seconds=590)
    assert "will be sent again in 600 s" in run.error
    # The countdown message is capped (a held message counts against Redis's visibility
    # timeout) and hops until the wait is over; nothing is posted before.
    [(name, args, countdown)] = countdowns
    assert (name, args) == ("runs.submit", (run.pk,)) and countdown == 30
    countdowns.clear()
    assert services.run_submit(run.pk) == RunState.QUEUED
    assert countdowns == [("runs.submit", (run.pk,), 30)]
    assert services.runs_sweep(now=timezone.now() + timedelta(minutes=5)).enqueued == 0
    assert len(_posts(simulator)) == 1

    Run.objects.filter(pk=run.pk).update(not_before=timezone.now() - timedelta(seconds=1))
    assert services.run_submit(run.pk) == RunState.SUBMITTED
    assert len(_posts(simulator)) == 2 and len(api_runs(simulator, aws.id)) == 1
    assert Run.objects.get(pk=run.pk).not_before is None


def test_a_token_that_stays_refused_fails_the_run_after_a_few_attempts(
    simulator, aws, runner, countdowns
):
    simulator.inject("expire_token", path=r"/run$", times=None)
    run = _new_run(runner, aws.id)

    for _ in range(services.MAX_ATTEMPTS):
        assert services.run_submit(run.pk) == RunState.QUEUED
        Run.objects.filter(pk=run.pk).update(not_before=None)
    assert services.run_submit(run.pk) == RunState.FAILED

    run.refresh_from_db()
    assert "5 attempts" in run.error and "HTTP 401" in run.error
    # Each attempt: the POST, and once more with a fresh token.
    assert len(_posts(simulator)) == 2 * services.MAX_ATTEMPTS
    assert api_runs(simulator, aws.id) == []


# --- a worker that starts sweeps the outbox (beat is not running) --------------------------------


@pytest.mark.celery_worker
@pytest.mark.redis
def test_a_worker_that_starts_sends_lost_runs_and_reconciles_a_stale_claim(
    simulator, aws, runner, live_server, settings, start_celery_worker, redis_url, monkeypatch
):
    from qflowui.qflow import client_from_settings

    point_broker(monkeypatch, redis_url, start_celery_worker.queue)
    long_ago = timezone.now() - timedelta(minutes=5)
    with monkeypatch.context() as patched:
        # The message of the first was lost after it was sent; the second never reached a
        # broker that was down.
        patched.setattr(services, "_send", lambda *a, **k: True)
        lost = _new_run(runner, aws.id)
        patched.setattr(services, "_send", lambda *a, **k: False)
        never_sent = _new_run(runner, aws.id)
        stale = _new_run(runner, aws.id)
    Run.objects.filter(pk__in=[lost.pk, never_sent.pk]).update(queued_at=long_ago, enqueued_at=None)
    Run.objects.filter(pk=lost.pk).update(enqueued_at=long_ago)
    # A worker claimed the third, posted it, and was killed before QFlow's answer.
    stale.refresh_from_db()
    Run.objects.filter(pk=stale.pk).update(
        state=RunState.SUBMITTING, submitting_at=long_ago, queued_at=long_ago, attempts=1
    )
    posted = client_from_settings().run_workflow(
        aws.id, input=stale.input, variables=stale.posted_variables()
    )
    assert not Heartbeat.objects.exists()  # no beat

    start_celery_worker(env=worker_env(live_server, settings))

    for run in (lost, never_sent, stale):
        wait_for(lambda r=run: run_state(r.pk) == RunState.SUBMITTED, 40, f"run {run.pk}")
    stale.refresh_from_db()
    assert str(stale.execution_id) == posted.execution_id and stale.reconciled
    started = api_runs(simulator, aws.id)
    assert len(started) == 3 and len(_posts(simulator)) == 3  # each run posted once


def test_the_sweep_at_start_can_be_turned_off(settings, monkeypatch):
    scheduled = []
    monkeypatch.setattr(tasks.sweep, "apply_async", lambda **kw: scheduled.append(kw))
    settings.RUNS_SWEEP_ON_START = False
    tasks._sweep_soon_after_start()
    assert scheduled == []
    settings.RUNS_SWEEP_ON_START = True
    tasks._sweep_soon_after_start()
    assert scheduled == [{"countdown": tasks.SWEEP_ON_START_COUNTDOWN}]


# --- Redis's visibility timeout ------------------------------------------------------------------


def _celery_conf(**env: str) -> dict:
    """broker_transport_options as a fresh process configured by `env` sees them."""
    code = (
        "import django, json; django.setup(); from qflowui.celery import app; "
        "from qflowui.runs import tasks; "
        "print(json.dumps({'options': app.conf.broker_transport_options, "
        "'submit_limit': tasks.submit.time_limit}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_"))}
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "qflowui.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_redis_visibility_timeout_is_twice_the_submit_tasks_hard_limit():
    conf = _celery_conf(REDIS_URL="redis://127.0.0.1:6379/0")
    assert conf["options"]["visibility_timeout"] == 360 == 2 * conf["submit_limit"]
    custom = _celery_conf(
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0", CELERY_VISIBILITY_TIMEOUT_SECONDS="900"
    )
    assert custom["options"]["visibility_timeout"] == 900
    # Not a Redis broker: no such option (the filesystem broker keeps its folders).
    assert "visibility_timeout" not in _celery_conf()["options"]


def test_a_visibility_timeout_below_the_submit_limit_is_refused():
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _celery_conf(REDIS_URL="redis://127.0.0.1:6379/0", CELERY_VISIBILITY_TIMEOUT_SECONDS="60")
    assert "must be above RUNS_SUBMIT_HARD_LIMIT_SECONDS" in failed.value.stderr


@pytest.mark.celery_worker
@pytest.mark.redis
def test_a_worker_on_redis_uses_the_visibility_timeout(start_celery_worker):
    worker = start_celery_worker(env={"CELERY_VISIBILITY_TIMEOUT_SECONDS": "420"})
    from celery import Celery

    probe = Celery(broker=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    replies = probe.control.inspect(destination=[f"{worker.queue}-0@{socket.gethostname()}"]).conf(
        with_defaults=True
    )
    probe.close()
    [conf] = (replies or {}).values()
    assert conf["broker_transport_options"]["visibility_timeout"] == 420


# --- beat's heartbeat: /readyz and the page header ------------------------------------------------


def _beat_at(seconds_ago: float) -> None:
    Heartbeat.objects.update_or_create(
        name=BEAT, defaults={"at": timezone.now() - timedelta(seconds=seconds_ago)}
    )


def test_before_beat_ever_ran_nothing_is_said(client, viewer_client):
    assert client.get("/readyz").json()["beat"] == "not seen yet"
    assert viewer_client.get("/runs/scheduler/").content.decode().strip() == ""


def test_readyz_and_the_header_say_when_beat_stopped_for_3_intervals(client, viewer_client):
    _beat_at(20)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["beat"] is True
    assert "data-beat-stale" not in viewer_client.get("/runs/scheduler/").content.decode()

    _beat_at(91)  # 3 x 30 s without a tick
    at = Heartbeat.objects.get(name=BEAT).at

    ready = client.get("/readyz")
    assert ready.status_code == 200  # beat down does not make the web unready
    assert ready.json()["checks"] == {"database": True, "broker": True}
    assert ready.json()["beat"] == f"stale since {at.isoformat(timespec='seconds')}"
    warning = viewer_client.get("/runs/scheduler/").content.decode()
    assert "data-beat-stale" in warning
    since = at.astimezone(UTC)
    when = f"{since:%H:%M}" if since.date() == timezone.now().date() else f"{since:%Y-%m-%d %H:%M}"
    assert f"Scheduler (Celery beat) not running since {when} UTC: " in warning
    assert "syncs and run rescue wait" in warning
    # Every page's header loads it (apart, so no page pays a query for it).
    page = viewer_client.get("/runs/").content.decode()
    assert 'id="scheduler-status" hx-get="/runs/scheduler/"' in page


def test_users_without_data_access_get_no_scheduler_warning(client, django_user_model):
    _beat_at(600)
    nobody = django_user_model.objects.create_user(username="nobody", password="x")
    client.force_login(nobody)
    assert "scheduler-status" not in client.get("/runs/").content.decode()
    assert "data-beat-stale" not in client.get("/runs/scheduler/").content.decode()


@pytest.mark.browser
def test_the_header_shows_the_warning_in_a_browser(page, live_server, viewer, login):
    _beat_at(120)
    login(page, viewer)
    page.goto(f"{live_server.url}/runs/")
    from playwright.sync_api import expect

    warning = page.locator("header [data-beat-stale]")
    expect(warning).to_contain_text("Scheduler (Celery beat) not running since")
    expect(warning).to_contain_text("syncs and run rescue wait")
    _beat_at(0)
    page.goto(f"{live_server.url}/runs/")
    page.wait_for_load_state("networkidle")
    expect(page.locator("header [data-beat-stale]")).to_have_count(0)


@pytest.mark.redis
def test_a_running_beat_records_its_heartbeat(redis_url, tmp_path):
    assert not Heartbeat.objects.exists()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_DEFAULT_QUEUE": f"test-beat-{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": database_url_for_other_processes(),
    }
    log = (tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "qflowui",
            "beat",
            "--loglevel=INFO",
            "-s",
            str(tmp_path / "schedule"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: Heartbeat.objects.filter(name=BEAT).exists(), 40, "beat's heartbeat")
    finally:
        beat.terminate()
        beat.wait(15)
        log.close()
        import redis

        redis.Redis.from_url(redis_url).delete(env["CELERY_TASK_DEFAULT_QUEUE"])
    at = Heartbeat.objects.get(name=BEAT).at
    assert timezone.now() - at < timedelta(seconds=60)
