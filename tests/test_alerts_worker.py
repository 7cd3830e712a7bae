"""Alerts end to end: the simulator over HTTP, a real Celery worker on Redis running the sync
pass, the alert task it enqueues, and a loopback JSON webhook receiving the message."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from qflowui.mirror.models import Execution
from qflowui.mirror.sync import mirror_sync
from qflowui.mirror.tasks import sync
from qflowui.qflow import client_from_settings
from qflowui.teamviews.models import Delivery, SavedView
from tests.test_runs_support import point_broker, simulator_workflow, wait_for, worker_env
from tests.test_teamviews_support import *  # noqa: F403

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def test_a_new_failure_after_a_sync_pass_reaches_the_webhook_once_even_when_both_run_twice(
    simulator,
    live_server,
    settings,
    start_celery_worker,
    redis_url,
    monkeypatch,
    runner,
    runner_client,
    receiver,
):
    settings.QFLOWUI_ALERT_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.QFLOW_SYNC_FAILURE_STEPS_PER_PASS = 0
    assert mirror_sync().ok
    view = SavedView.objects.create(
        owner=runner, name="New failures", query="status=failed&range=24h", shared=True
    )
    response = runner_client.post(
        reverse("teamviews:alert_create", args=[view.pk]),
        {"destination": receiver.url(), "mode": "each"},
    )
    assert response.status_code == 302
    start_celery_worker(
        env=worker_env(
            live_server,
            settings,
            QFLOWUI_BASE_URL="https://qflowui.example.com",
            QFLOW_SYNC_FAILURE_STEPS_PER_PASS="0",
        )
    )
    point_broker(monkeypatch, redis_url, start_celery_worker.queue)
    simulator.configure(run_status="failed", run_min_seconds=0, run_max_seconds=0)
    wf = simulator_workflow(simulator, "AWS")
    new_id = client_from_settings().run_workflow(str(wf.id), input={"why": "test"}).execution_id

    sync.delay()
    wait_for(lambda: receiver.received, 60, "the alert to reach the webhook")
    sync.delay()  # a second pass and a second alert task: nothing more
    wait_for(
        lambda: (
            Execution.objects.filter(pk=new_id).exists()
            and Delivery.objects.filter(state=Delivery.SENT).count() == 1
        ),
        30,
        "the delivery record",
    )
    from qflowui.teamviews.tasks import alerts

    alerts.delay()
    time.sleep(5)

    assert len(receiver.received) == 1
    message = receiver.received[0]
    assert message["title"].startswith("New failures: ")
    assert "Status: Failed" in message["message"]
    assert f"https://qflowui.example.com/executions/{new_id}/" in message["message"]
    assert str(Delivery.objects.get(state=Delivery.SENT).execution_id) == str(new_id)
