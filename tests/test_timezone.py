"""Each user sees times in the zone they picked (UTC by default), and every time names it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from qflowui.accounts.models import Preference
from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, Workflow

pytestmark = pytest.mark.django_db

STARTED = datetime(2025, 11, 23, 10, 42, 5, tzinfo=UTC)


@pytest.fixture
def execution():
    wf = Workflow.objects.create(id=uuid.uuid4(), name="Stop public S3 buckets", cloud="AWS")
    return Execution.objects.create(
        id=uuid.uuid4(),
        workflow=wf,
        status="Failed",
        status_class=st.FAILED,
        started_at=STARTED,
        duration_ms=1000,
        last_synced_at=timezone.now(),
    )


def list_page(client) -> str:
    return client.get("/executions/?start=2025-11-20&end=2025-11-25").content.decode()


def test_times_are_in_utc_by_default_and_say_so(viewer_client, execution):
    html = list_page(viewer_client)
    assert 'title="2025-11-23 10:42:05 UTC"' in html
    assert 'datetime="2025-11-23T10:42:05+00:00"' in html
    assert "times are shown in UTC" in html
    assert "times in UTC" in html  # the chart's caption


def test_a_user_in_berlin_sees_berlin_times_with_the_zone_named(viewer_client, viewer, execution):
    Preference.objects.create(user=viewer, timezone="Europe/Berlin")
    html = list_page(viewer_client)
    assert 'title="2025-11-23 11:42:05 CET (Europe/Berlin)"' in html
    assert 'datetime="2025-11-23T11:42:05+01:00"' in html
    assert "times are shown in Europe/Berlin" in html
    assert "times in Europe/Berlin" in html
    assert '<option value="Europe/Berlin" selected>' in html


def test_the_chart_buckets_days_in_the_users_zone(viewer_client, viewer, execution):
    execution.started_at = datetime(2025, 11, 23, 23, 30, tzinfo=UTC)  # 00:30 on the 24th in Berlin
    execution.save()
    assert "Sun 2025-11-23: 1 Failed" in list_page(viewer_client)
    Preference.objects.create(user=viewer, timezone="Europe/Berlin")
    assert "Mon 2025-11-24: 1 Failed" in list_page(viewer_client)


def test_another_users_zone_does_not_leak(viewer_client, django_user_model, execution):
    other = django_user_model.objects.create_user(username="otto", password="x")
    Preference.objects.create(user=other, timezone="Asia/Tokyo")
    assert 'title="2025-11-23 10:42:05 UTC"' in list_page(viewer_client)


def test_picking_a_zone_saves_it_and_goes_back(viewer_client, viewer):
    response = viewer_client.post(
        "/accounts/timezone/",
        {"timezone": "America/New_York", "next": "/executions/?status=failed"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/executions/?status=failed"
    assert Preference.objects.get(user=viewer).timezone == "America/New_York"
    viewer_client.post("/accounts/timezone/", {"timezone": "UTC"})
    assert Preference.objects.get(user=viewer).timezone == "UTC"


def test_picking_a_zone_never_redirects_off_site(viewer_client):
    response = viewer_client.post(
        "/accounts/timezone/", {"timezone": "Europe/Berlin", "next": "https://evil.example/x"}
    )
    assert response["Location"] == "/executions/"


def test_an_unknown_zone_is_refused_with_a_message(viewer_client, viewer):
    response = viewer_client.post("/accounts/timezone/", {"timezone": "Mars/Olympus_Mons"})
    assert response.status_code == 200
    assert "is not a time zone" in response.content.decode()
    assert not Preference.objects.filter(user=viewer).exists()


def test_the_full_list_of_zones_is_one_click_away(viewer_client):
    html = viewer_client.get("/accounts/timezone/?next=/executions/").content.decode()
    assert len(re.findall(r"<option value=", html)) > 300
    assert '<option value="Pacific/Auckland"' in html


def test_the_header_offers_a_zone_picker_that_posts_with_csrf(viewer_client, execution):
    html = list_page(viewer_client)
    form = re.search(r'<form method="post" action="/accounts/timezone/".*?</form>', html, re.S)
    assert form and 'name="csrfmiddlewaretoken"' in form.group(0)
    assert 'name="timezone"' in form.group(0)


def test_picking_a_zone_needs_a_login(client):
    response = client.post("/accounts/timezone/", {"timezone": "UTC"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_preference_refuses_an_unknown_zone(viewer):
    with pytest.raises(ValidationError):
        Preference(user=viewer, timezone="Nowhere/Special").full_clean()
    Preference(user=viewer, timezone="Asia/Kolkata").full_clean()


def test_from_and_to_are_read_in_the_users_zone_and_say_which(viewer_client, viewer):
    Preference.objects.create(user=viewer, timezone="Europe/Berlin")
    wf = Workflow.objects.create(id=uuid.uuid4(), name="Zone check")

    def at(hour: int, minute: int) -> Execution:
        return Execution.objects.create(
            id=uuid.uuid4(),
            workflow=wf,
            status="Success",
            status_class=st.SUCCESS,
            is_terminal=True,
            started_at=datetime(2026, 11, 30, hour, minute, tzinfo=UTC),
            last_synced_at=datetime(2026, 11, 30, 12, tzinfo=UTC),
        )

    # 09:30 UTC is 10:30 in Berlin; 08:30 UTC is 09:30 in Berlin.
    inside, before = at(9, 30), at(8, 30)
    html = viewer_client.get("/executions/?start=2026-11-30T10:00&end=2026-11-30T11:00").content
    html = html.decode()
    assert str(inside.id) in html and str(before.id) not in html
    assert 'From <span class="hint">(in Europe/Berlin)</span>' in html
    # A date is that whole day in Berlin: 2026-11-29 23:30 UTC is already the 30th there.
    late = at(0, 0)
    Execution.objects.filter(pk=late.pk).update(
        started_at=datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    )
    html = viewer_client.get("/executions/?start=2026-11-30&end=2026-11-30").content.decode()
    assert str(late.id) in html
