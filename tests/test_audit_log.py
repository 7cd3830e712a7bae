"""/audit/: the team's audit log, for staff, with filters by kind, user and date (UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.test import Client

from qflowui.accounts.models import Preference
from qflowui.runs.models import AuditEvent

pytestmark = pytest.mark.django_db


def event(action: str, name: str, at: datetime, **kw) -> AuditEvent:
    return AuditEvent.objects.create(action=action, actor_name=name, at=at, **kw)


@pytest.fixture
def staff(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    AuditEvent.objects.all().delete()  # the staff sign-in itself is an event: start empty
    return client


@pytest.fixture
def history() -> None:
    event("auth.login", "ana", datetime(2026, 3, 1, 8, 0, tzinfo=UTC), remote_addr="192.0.2.1")
    event("auth.login_failed", "ana", datetime(2026, 3, 1, 7, 59, tzinfo=UTC))
    event("auth.locked_out", "bob", datetime(2026, 3, 2, 23, 59, 59, tzinfo=UTC))
    event("auth.logout", "ana", datetime(2026, 3, 3, 0, 0, tzinfo=UTC))
    event("run.requested", "carla", datetime(2026, 3, 3, 12, 0, tzinfo=UTC), target="run 7")
    event("run.denied", "dmitri", datetime(2026, 3, 4, 9, 0, tzinfo=UTC))
    event("audit.denied", "dmitri", datetime(2026, 3, 4, 9, 5, tzinfo=UTC))


def actions(html: str) -> list[str]:
    return re.findall(r'<tr data-action="([^"]+)"', html)


def page(client: Client, query: str = "") -> str:
    response = client.get(f"/audit/{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_staff_see_every_event_newest_first_with_times_in_their_zone(staff, history, admin_user):
    html = page(staff)
    assert actions(html) == [
        "audit.denied",
        "run.denied",
        "run.requested",
        "auth.logout",
        "auth.locked_out",
        "auth.login",
        "auth.login_failed",
    ]
    assert "2026-03-01 08:00:00 UTC" in html and "192.0.2.1" in html
    Preference.objects.create(user=admin_user, timezone="Europe/Berlin")
    assert "2026-03-01 09:00:00 CET" in page(staff)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("signin", ["auth.login"]),
        ("failed", ["auth.login_failed"]),
        ("lockout", ["auth.locked_out"]),
        ("signout", ["auth.logout"]),
        ("run", ["run.requested"]),
        ("denied", ["audit.denied", "run.denied"]),
    ],
)
def test_the_kind_filter(staff, history, kind, expected):
    html = page(staff, f"?kind={kind}")
    assert actions(html) == expected
    assert f'<option value="{kind}" selected>' in html


def test_the_user_filter_matches_part_of_the_name_in_any_case(staff, history):
    assert actions(page(staff, "?user=AN")) == ["auth.logout", "auth.login", "auth.login_failed"]
    assert actions(page(staff, "?user=an&kind=signin")) == ["auth.login"]
    assert actions(page(staff, "?user=nobody")) == []


def test_the_date_filter_is_by_utc_day_both_ends_included(staff, history):
    assert actions(page(staff, "?start=2026-03-02&end=2026-03-03")) == [
        "run.requested",
        "auth.logout",
        "auth.locked_out",
    ]
    assert actions(page(staff, "?start=2026-03-04")) == ["audit.denied", "run.denied"]
    assert actions(page(staff, "?end=2026-03-01")) == ["auth.login", "auth.login_failed"]


def test_an_action_link_filters_to_that_action(staff, history):
    html = page(staff)
    assert 'href="?action=auth.locked_out"' in html
    assert actions(page(staff, "?action=auth.locked_out")) == ["auth.locked_out"]


@pytest.mark.parametrize(
    "query",
    [
        "?kind=everything-bad",
        "?start=yesterday",
        "?end=2026-13-45",
        "?start=2026-03-04&end=2026-03-01",
        "?page=zz",
        "?action=%3Cscript%3E",
        "?user=" + "x" * 300,
    ],
)
def test_bad_values_get_a_message_not_an_error(staff, history, query):
    response = staff.get(f"/audit/{query}")
    html = response.content.decode()
    assert response.status_code == 200
    if "page=" not in query:
        assert 'role="alert"' in html
    assert "<script>" not in html


def test_a_name_typed_as_markup_is_shown_escaped(staff, client):
    hostile = "<script>alert(1)</script>"
    client.post(
        "/accounts/login/", {"username": hostile, "password": "whatever"}, REMOTE_ADDR="192.0.2.9"
    )
    html = page(staff, "?kind=failed")
    assert AuditEvent.objects.get(action="auth.login_failed").actor_name == hostile
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert hostile not in html


def test_a_hundred_per_page_and_the_pager_keeps_the_filters(staff):
    AuditEvent.objects.bulk_create(
        AuditEvent(
            action="auth.login", actor_name=f"user{i:03}", at=datetime(2026, 3, 1, tzinfo=UTC)
        )
        for i in range(150)
    )
    first = page(staff, "?kind=signin")
    second = page(staff, "?kind=signin&page=2")
    assert len(actions(first)) == 100 and len(actions(second)) == 50
    assert "150 events" in first
    assert 'href="?kind=signin&amp;page=2"' in first


def test_people_who_are_not_staff_are_refused_and_it_is_recorded(viewer_client, viewer):
    response = viewer_client.get("/audit/")
    assert response.status_code == 403
    assert "open to staff only" in response.content.decode()
    assert AuditEvent.objects.filter(action="audit.denied", actor=viewer).exists()


def test_the_old_address_goes_to_the_new_one_with_its_query(staff):
    response = staff.get("/runs/audit/?action=run.requested&page=2")
    assert response.status_code == 302
    assert response["Location"] == "/audit/?action=run.requested&page=2"


def test_sign_in_and_sign_out_through_the_forms_are_recorded(viewer, password, staff):
    client = Client()
    client.post(
        "/accounts/login/",
        {"username": viewer.username, "password": password},
        REMOTE_ADDR="192.0.2.44",
    )
    client.post("/accounts/logout/", REMOTE_ADDR="192.0.2.44")
    login = AuditEvent.objects.get(action="auth.login")
    logout = AuditEvent.objects.get(action="auth.logout")
    assert login.actor == viewer and login.remote_addr == "192.0.2.44"
    assert logout.actor == viewer and logout.actor_name == "vera.viewer"
    assert login.at.utcoffset().total_seconds() == 0
