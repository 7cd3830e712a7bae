"""Signing in is not enough: data needs the Viewers or Runners group, or staff.

A signed-in user in neither group gets one page, on every data URL, that names them and says
whom to ask, and shows no execution, payload or run. Viewers see what they saw before.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from qflowui.executions import services
from qflowui.mirror import tasks as mirror_tasks
from qflowui.mirror.models import Execution
from qflowui.runs.models import AuditEvent, Run
from tests.test_execution_detail_support import successful, workflow_of
from tests.test_runs_support import fake_workflow

pytestmark = pytest.mark.django_db(transaction=True)

RUN_MARKER = "INC-4711-quarantine-marker"
RUN_WORKFLOW = "Quarantine compromised host (marker)"


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear()
    services.memo_clear()


@pytest.fixture
def outsider(django_user_model, password):
    """Signed in, but in neither Viewers nor Runners, and not staff."""
    return django_user_model.objects.create_user(username="nina.nogroup", password=password)


@pytest.fixture
def staff_contact(django_user_model, password):
    return django_user_model.objects.create_user(
        username="sam.staff", password=password, is_staff=True, first_name="Sam", last_name="Ops"
    )


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(mirror_tasks.sync, "delay", lambda *a, **kw: calls.append((a, kw)))
    return calls


@pytest.fixture
def data(simulator, django_user_model, password):
    """An execution (with a step that has input and output) and a run, as the team sees them."""
    ex = successful(simulator, where=lambda e: any(s.node_type == "resource" for s in e.steps))
    node = next(s for s in ex.steps if s.node_type == "resource" and s.status == "Success")
    rita = django_user_model.objects.create_user(username="rita.runner", password=password)
    run = Run.objects.create(
        idempotency_key=uuid.uuid4(),
        created_by=rita,
        workflow=fake_workflow(name=RUN_WORKFLOW),
        workflow_name=RUN_WORKFLOW,
        input={"ticket": RUN_MARKER},
        body_sha256=hashlib.sha256(b"{}").hexdigest(),
    )
    return {
        "execution": str(ex.id),
        "workflow": workflow_of(simulator, ex).name,
        "node": node.node_id,
        "run": run,
    }


def data_urls(d) -> list[tuple[str, str, dict]]:
    """(method, url, headers) of every kind of data URL."""
    ex, node, run = d["execution"], d["node"], d["run"].pk
    htmx = {"HTTP_HX_REQUEST": "true"}
    return [
        ("get", "/executions/?range=all", {}),
        ("get", "/executions/?range=all", htmx),
        ("get", f"/executions/{ex}/", {}),
        ("get", f"/executions/{ex}/", {**htmx, "HTTP_HX_TARGET": "live"}),
        ("get", f"/executions/{ex}/steps/{node}/", {}),
        ("get", f"/executions/{ex}/steps/{node}/", htmx),
        ("get", f"/executions/{ex}/steps/{node}/output/tree", htmx),
        ("get", f"/executions/{ex}/steps/{node}/input.json", {}),
        ("get", f"/executions/{ex}/steps/{node}/output.json", {}),
        ("get", f"/executions/{ex}/export.json", {}),
        ("get", "/workflows/?sort=name", {}),
        ("get", "/workflows/", htmx),
        ("get", "/runs/", {}),
        ("get", f"/runs/{run}/", {}),
        ("get", f"/runs/{run}/", {**htmx, "HTTP_HX_TARGET": "run-status"}),
        ("get", f"/runs/new/?from={ex}", {}),
        ("post", "/executions/sync/", {}),
        ("post", "/executions/sync/", htmx),
        ("get", "/audit/", {}),
        ("get", "/runs/audit/", {}),
    ]


def fetch(client: Client, method: str, url: str, headers: dict):
    return getattr(client, method)(url, **headers)


def test_a_user_in_no_group_sees_no_data_on_any_data_url(
    data, outsider, staff_contact, admin_user, enqueued
):
    # Staff look first, so the execution, its steps and a payload are in the mirror and caches.
    seen = Client()
    seen.force_login(admin_user)
    base = f"/executions/{data['execution']}/"
    assert data["execution"] in seen.get(base).content.decode()
    assert seen.get(f"{base}steps/{data['node']}/output.json").status_code == 200
    assert Execution.objects.filter(pk=data["execution"]).exists()
    enqueued.clear()

    client = Client()
    client.force_login(outsider)
    for method, url, headers in data_urls(data):
        response = fetch(client, method, url, headers)
        body = response.content.decode()
        where = f"{method.upper()} {url} {headers}"
        assert response.status_code == 403, where
        assert data["execution"] not in body, where
        assert data["workflow"] not in body, where
        assert RUN_MARKER not in body and RUN_WORKFLOW not in body, where
        assert "rita.runner" not in body, where
        assert "data-execution-id" not in body and "data-run-id" not in body, where
        assert "nina.nogroup" in body, where
        assert "Sam Ops" in body and "ada.admin" in body, where  # whom to ask
        assert "Viewers" in body, where
    assert enqueued == []  # "Sync now" did nothing
    denied = AuditEvent.objects.filter(action="access.denied", actor=outsider)
    assert denied.filter(target="/executions/").exists()
    assert denied.filter(target="/audit/").exists()


def test_the_no_access_page_is_one_page_with_no_nav_to_data(data, outsider):
    client = Client()
    client.force_login(outsider)
    home = client.get("/", follow=True)
    html = home.content.decode()
    assert home.redirect_chain[-1][0] == "/executions/"
    assert home.status_code == 403
    assert "You have no access yet" in html
    assert "an administrator" in html  # nobody is staff: still says whom to ask
    assert 'href="/executions/"' not in html.split("<main")[0].split("mainnav")[1]
    assert 'href="/audit/"' not in html
    assert "Sign out" in html
    fragment = client.get("/executions/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and "You have no access yet" in fragment


def test_a_viewer_sees_the_same_urls(data, viewer, enqueued):
    client = Client()
    client.force_login(viewer)
    answers = {}
    for method, url, headers in data_urls(data):
        response = fetch(client, method, url, headers)
        answers[(method, url, tuple(headers.items()))] = response
        if url == f"/runs/new/?from={data['execution']}":
            assert response.status_code == 403, url  # may look, may not run: as before
            assert "Runners" in response.content.decode()
        elif url in ("/audit/",):
            assert response.status_code == 403, url  # staff only, as before
            assert "open to staff only" in response.content.decode()
        elif url == "/runs/audit/":
            assert response.status_code == 302 and response["Location"] == "/audit/"
        elif method == "post" and not headers:
            assert response.status_code == 302, url  # sync queued, back to the list
        elif "HTTP_HX_TARGET" in headers:
            assert response.status_code in (200, 286), url  # 286: polling may stop
        else:
            assert response.status_code == 200, url
    page = client.get(f"/executions/{data['execution']}/").content.decode()
    assert data["workflow"] in page
    runs = client.get(f"/runs/{data['run'].pk}/").content.decode()
    assert RUN_WORKFLOW in runs and RUN_MARKER in runs
    listing = client.get("/executions/?range=all").content.decode()
    assert f'data-execution-id="{data["execution"]}"' in listing
    assert len(enqueued) == 2
    assert not AuditEvent.objects.filter(action="access.denied").exists()


def test_runners_and_staff_keep_their_access(data, django_user_model, admin_user, password):
    runner = django_user_model.objects.create_user(username="rex.runner", password=password)
    runner.groups.add(Group.objects.get_or_create(name="Runners")[0])
    for user in (runner, admin_user):
        client = Client()
        client.force_login(user)
        assert client.get("/executions/").status_code == 200
        assert client.get(f"/runs/{data['run'].pk}/").status_code == 200
    staff = Client()
    staff.force_login(admin_user)
    page = staff.get("/audit/")
    assert page.status_code == 200
    assert '<a href="/audit/"' in page.content.decode()  # the nav shows Audit to staff


def test_leaving_the_group_takes_access_away_at_the_next_request(data, viewer):
    client = Client()
    client.force_login(viewer)
    assert client.get("/runs/").status_code == 200
    viewer.groups.clear()
    assert client.get("/runs/").status_code == 403


def test_an_anonymous_visitor_still_goes_to_the_login_page(data):
    for url in ("/executions/", "/runs/", "/audit/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
