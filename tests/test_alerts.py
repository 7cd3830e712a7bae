"""Alerts on saved views, against a loopback JSON webhook receiver (apprise's json://)."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from qflowui.runs.models import AuditEvent
from qflowui.teamviews.alerts import alerts_pass
from qflowui.teamviews.models import Delivery, SavedView, Subscription
from tests.test_teamviews_support import *  # noqa: F403
from tests.test_teamviews_support import (
    SECRET_PASSWORD,
    SECRET_TOKEN,
    execution,
    resync,
    workflow,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.QFLOWUI_ALERT_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.QFLOWUI_BASE_URL = "https://qflowui.example.com"


def _view(owner, query="status=failed&cloud=AWS&range=24h", name="Prod AWS failures"):
    return SavedView.objects.create(owner=owner, name=name, query=query, shared=True)


def _subscribe(client, view, url, mode="each"):
    return client.post(
        reverse("teamviews:alert_create", args=[view.pk]), {"destination": url, "mode": mode}
    )


def _secret_free(text: str) -> bool:
    return SECRET_TOKEN not in text and SECRET_PASSWORD not in text


def test_a_new_failure_entering_the_view_sends_one_message_with_its_facts(
    runner_client, runner, receiver
):
    wf = workflow()
    old = execution(wf, "Failed", step="Describe instances", error="old failure")
    view = _view(runner)
    assert _subscribe(runner_client, view, receiver.url()).status_code == 302
    running = execution(wf, "Running")
    resync(old)  # a pass lists it again: it was in the view already, no news
    alerts_pass()
    assert receiver.received == []

    resync(
        running,
        status="Failed",
        status_class="failed",
        failure_node_id="node-7",
        failure_step="Describe instances",
        failure_message="AccessDenied: password=hunter2 for i-0abc\nsecond line",
    )
    alerts_pass()
    alerts_pass()  # the task retried, or run again after the next sync: nothing more
    resync(running)
    alerts_pass()

    assert len(receiver.received) == 1
    message = receiver.received[0]
    assert message["title"] == "Prod AWS failures: AWS EC2 compliance Failed"
    body = message["message"]
    assert "Workflow: AWS EC2 compliance" in body
    assert "Status: Failed" in body
    assert "Failing step: Describe instances" in body
    assert "Error: AccessDenied: password=********" in body and "hunter2" not in body
    assert "second line" not in body
    assert f"https://qflowui.example.com/executions/{running.pk}/?step=node-7" in body
    assert receiver.paths == [f"/hook/{SECRET_TOKEN}"]  # apprise got the real URL
    assert Delivery.objects.get(execution=running).state == Delivery.SENT


def test_two_alert_passes_at_once_send_each_execution_once(runner_client, runner, receiver):
    wf = workflow()
    view = _view(runner)
    _subscribe(runner_client, view, receiver.url())
    for _ in range(5):
        execution(wf, "Failed")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        from django.db import connection

        try:
            barrier.wait()
            alerts_pass()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(receiver.received) == 5
    assert Delivery.objects.filter(state=Delivery.SENT).count() == 5


test_two_alert_passes_at_once_send_each_execution_once = pytest.mark.django_db(transaction=True)(
    test_two_alert_passes_at_once_send_each_execution_once
)


def test_digest_mode_sends_one_message_listing_the_new_executions(runner_client, runner, receiver):
    wf = workflow()
    view = _view(runner)
    _subscribe(runner_client, view, receiver.url(), mode="digest")
    for i in range(3):
        execution(wf, "Failed", step=f"Step {i}", error=f"Error {i}")

    alerts_pass()
    alerts_pass()

    assert len(receiver.received) == 1
    message = receiver.received[0]
    assert message["title"] == "Prod AWS failures: 3 new executions"
    assert message["message"].count("- AWS EC2 compliance · Failed · step Step") == 3


def test_a_failing_destination_is_retried_with_backoff_shown_failing_then_recovers(
    runner_client, runner, receiver, settings
):
    settings.QFLOWUI_ALERT_RETRY_SECONDS = 60
    wf = workflow()
    view = _view(runner)
    _subscribe(runner_client, view, receiver.url())
    failed = execution(wf, "Failed")
    receiver.status = 500

    alerts_pass()
    subscription = Subscription.objects.get()
    assert subscription.consecutive_failures == 1
    assert subscription.next_attempt_at > timezone.now() + timedelta(seconds=50)
    page = runner_client.get(reverse("teamviews:detail", args=[view.pk])).content.decode()
    assert 'data-alert-state="failing"' in page
    assert "Internal Server Error" in page or "500" in page
    assert _secret_free(page)

    alerts_pass()  # backing off: no call
    assert len(receiver.paths) == 1
    later = timezone.now() + timedelta(seconds=61)
    alerts_pass(now=later)  # retried, fails again: the wait doubles
    subscription.refresh_from_db()
    assert len(receiver.paths) == 2 and subscription.consecutive_failures == 2
    assert subscription.next_attempt_at >= later + timedelta(seconds=119)

    receiver.status = 200
    alerts_pass(now=later + timedelta(seconds=121))
    alerts_pass(now=later + timedelta(seconds=300))

    assert len(receiver.received) == 1
    assert Delivery.objects.get(execution=failed).state == Delivery.SENT
    page = runner_client.get(reverse("teamviews:detail", args=[view.pk])).content.decode()
    assert 'data-alert-state="ok"' in page


def test_the_destinations_secret_never_appears_in_pages_logs_or_audit(
    runner_client, runner, receiver, caplog
):
    caplog.set_level(logging.DEBUG)
    wf = workflow()
    view = _view(runner)
    url = receiver.url()
    _subscribe(runner_client, view, url)
    subscription = Subscription.objects.get()
    receiver.status = 500
    execution(wf, "Failed")
    alerts_pass()
    test = runner_client.post(
        reverse("teamviews:alert_test", args=[view.pk, subscription.pk]),
        headers={"HX-Request": "true"},
    ).content.decode()
    pages = [
        runner_client.get(reverse("teamviews:detail", args=[view.pk])).content.decode(),
        runner_client.get(
            reverse("teamviews:alert_edit", args=[view.pk, subscription.pk])
        ).content.decode(),
        runner_client.get(reverse("teamviews:list")).content.decode(),
        test,
    ]
    # A URL apprise cannot read is refused without echoing it (apprise logs it at ERROR).
    bad = _subscribe(runner_client, view, f"msteams://{SECRET_TOKEN}/{SECRET_PASSWORD}")
    pages.append(bad.content.decode())

    assert "receiver says no" in test  # the destination's answer is shown …
    assert f"json://…@127.0.0.1:{receiver.port}/…" in pages[0]
    assert "Apprise cannot read this URL" in pages[-1]
    assert all(_secret_free(p) for p in pages)
    assert receiver.auth and SECRET_PASSWORD not in "".join(caplog.messages)
    assert _secret_free("\n".join(r.getMessage() for r in caplog.records))
    assert _secret_free(repr(list(AuditEvent.objects.values_list("target", "detail"))))
    assert _secret_free(Subscription.objects.values_list("destination_encrypted", flat=True)[0])


def test_only_runners_and_staff_add_alerts_and_only_the_owner_or_staff_change_them(
    runner_client, runner, viewer, other_viewer, receiver
):
    view = _view(viewer)
    viewer_client = Client()
    viewer_client.force_login(viewer)
    assert _subscribe(viewer_client, view, receiver.url()).status_code == 403
    assert _subscribe(runner_client, view, receiver.url()).status_code == 302
    subscription = Subscription.objects.get()
    edit = reverse("teamviews:alert_edit", args=[view.pk, subscription.pk])

    page = viewer_client.get(reverse("teamviews:detail", args=[view.pk])).content.decode()
    assert f"json://…@127.0.0.1:{receiver.port}/…" in page and "Send a test" not in page
    assert viewer_client.get(edit).status_code == 403
    assert (
        viewer_client.post(
            reverse("teamviews:alert_test", args=[view.pk, subscription.pk])
        ).status_code
        == 403
    )
    assert receiver.paths == []

    response = runner_client.post(edit, {"destination": "", "mode": "digest", "active": "on"})
    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.mode == "digest"
    assert "127.0.0.1" in subscription.destination_shown  # an empty field keeps the URL
    actions = list(
        AuditEvent.objects.filter(action__startswith="alert.").values_list("action", flat=True)
    )
    assert sorted(actions) == ["alert.created", "alert.edited"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the destination: an Apprise URL."),
        ("nonsense://whatever", "Apprise cannot read this URL"),
        ("json://10.1.2.3/hook", "10.1.2.3 is an internal address"),
        ("json://169.254.169.254/latest", "is an internal address"),
    ],
)
def test_a_bad_destination_gets_a_clear_message(runner_client, runner, url, message):
    view = _view(runner)
    response = _subscribe(runner_client, view, url)

    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Subscription.objects.exists()


def test_the_test_button_shows_what_the_destination_answered(runner_client, runner, receiver):
    view = _view(runner)
    _subscribe(runner_client, view, receiver.url(secret=False))
    subscription = Subscription.objects.get()

    html = runner_client.post(
        reverse("teamviews:alert_test", args=[view.pk, subscription.pk]),
        headers={"HX-Request": "true"},
    ).content.decode()

    assert 'data-test-ok="true"' in html and "Sent JSON POST notification" in html
    assert receiver.received[0]["title"] == "Prod AWS failures: test message from qflowui"
    assert AuditEvent.objects.filter(action="alert.tested").exists()


def test_a_send_cut_off_by_a_killed_worker_is_never_sent_again(runner_client, runner, receiver):
    """A worker killed between claiming and recording the send leaves the row `sending`:
    once that claim is stale it becomes `unknown` (the message may have gone), never re-sent;
    a fresh claim (a pass still running elsewhere) is left alone."""
    wf = workflow()
    view = _view(runner)
    _subscribe(runner_client, view, receiver.url())
    killed, busy = execution(wf, "Failed"), execution(wf, "Failed")
    subscription = Subscription.objects.get()
    now = timezone.now()
    for ex, claimed in ((killed, now - timedelta(minutes=20)), (busy, now)):
        Delivery.objects.create(
            subscription=subscription,
            execution=ex,
            state=Delivery.SENDING,
            claim=uuid.uuid4(),
            claimed_at=claimed,
        )

    alerts_pass()
    alerts_pass()

    assert receiver.received == []
    assert Delivery.objects.get(execution=killed).state == Delivery.UNKNOWN
    assert Delivery.objects.get(execution=busy).state == Delivery.SENDING
