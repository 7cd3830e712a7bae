"""“Sync now” queues one sync pass, and says so plainly when the broker is down."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError

from qflowui.mirror import tasks as mirror_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(mirror_tasks.sync, "delay", lambda *a, **kw: calls.append((a, kw)))
    return calls


@pytest.fixture
def broker_down(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(mirror_tasks.sync, "delay", refuse)


def test_sync_now_queues_a_pass_and_goes_back_to_the_list(viewer_client, enqueued):
    response = viewer_client.post("/executions/sync/", {"next": "/executions/?status=failed"})
    assert enqueued == [((), {})]
    assert response.status_code == 302
    assert response["Location"] == "/executions/?status=failed"
    page = viewer_client.get(response["Location"]).content.decode()
    assert "Sync queued" in page


def test_sync_now_never_sends_the_user_off_site(viewer_client, enqueued):
    response = viewer_client.post("/executions/sync/", {"next": "https://evil.example/"})
    assert response["Location"] == "/executions/"


def test_sync_now_tells_the_user_when_the_broker_is_down(viewer_client, broker_down):
    response = viewer_client.post("/executions/sync/", {"next": "/executions/"}, follow=True)
    assert response.status_code == 200
    assert "Sync not queued: the task broker is unreachable" in response.content.decode()


def test_sync_now_with_htmx_answers_with_the_button_fragment(viewer_client, enqueued):
    response = viewer_client.post(
        "/executions/sync/", {"next": "/executions/"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<form id="sync"')
    assert "Sync queued" in html


def test_sync_now_with_htmx_and_the_broker_down(viewer_client, broker_down):
    response = viewer_client.post("/executions/sync/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "the task broker is unreachable" in response.content.decode()


def test_sync_now_is_a_post(viewer_client, enqueued):
    assert viewer_client.get("/executions/sync/").status_code == 405
    assert enqueued == []


def test_sync_now_needs_a_login(client, enqueued):
    response = client.post("/executions/sync/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert enqueued == []


def test_sync_now_needs_the_csrf_token(viewer, enqueued):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(viewer)
    assert strict.post("/executions/sync/").status_code == 403
    assert enqueued == []


def test_the_list_page_has_a_csrf_protected_sync_button(viewer_client):
    html = viewer_client.get("/executions/").content.decode()
    assert 'action="/executions/sync/"' in html
    assert 'name="csrfmiddlewaretoken"' in html
