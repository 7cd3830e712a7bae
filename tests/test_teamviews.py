"""Saved views: saved from the list, private or shared, listed in the navigation with their
live counts, edited and deleted only by their owner or staff."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from qflowui.runs.models import AuditEvent
from qflowui.teamviews.models import SavedView
from tests.test_teamviews_support import *  # noqa: F403
from tests.test_teamviews_support import execution, workflow

pytestmark = pytest.mark.django_db


def _save(client, name="Prod AWS failures", query="status=failed&cloud=AWS", shared=False):
    data = {"name": name, "query": query}
    if shared:
        data["shared"] = "on"
    return client.post(reverse("teamviews:create"), data)


def test_a_viewer_saves_the_lists_query_without_the_page_private_by_default(viewer_client, viewer):
    response = _save(
        viewer_client, query="status=failed&range=24h&cloud=AWS&page=3&asof=2025-01-01"
    )

    view = SavedView.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("teamviews:detail", args=[view.pk])
    assert view.owner == viewer and not view.shared
    assert view.query == "status=failed&range=24h&cloud=AWS"
    event = AuditEvent.objects.get(action="view.created")
    assert event.actor == viewer and event.detail["query"] == view.query


def test_the_list_offers_to_save_its_current_filters_but_never_the_page(viewer_client):
    wf = workflow()
    execution(wf)
    html = viewer_client.get("/executions/?status=failed&range=24h&page=1").content.decode()

    assert "Save this view" in html
    hidden = re.search(r'name="query" value="([^"]*)"', html).group(1)
    assert hidden == "status=failed&amp;range=24h"


def test_a_list_with_a_bad_filter_says_to_fix_it_before_saving(viewer_client):
    html = viewer_client.get("/executions/?range=9y").content.decode()

    assert "Fix the filters above to save this view." in html
    assert "Save this view" not in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "query": "status=failed"}, "Give the view a name."),
        ({"name": "   ", "query": "status=failed"}, "Give the view a name."),
        ({"name": "x" * 81, "query": ""}, "The name is too long (at most 80 characters)."),
        ({"name": "ok", "query": "range=9y"}, "Unknown range “9y”"),
        ({"name": "ok", "query": "status=bogus"}, "Unknown status “bogus”"),
        ({"name": "ok", "query": "workflow=nope"}, "is not a workflow id"),
    ],
)
def test_bad_input_gets_a_clear_message_and_saves_nothing(viewer_client, data, message):
    response = viewer_client.post(reverse("teamviews:create"), data)

    assert response.status_code == 422
    assert message in response.content.decode()
    assert not SavedView.objects.exists()


def test_a_second_view_with_the_same_name_in_any_case_is_refused(viewer_client, other_viewer):
    _save(viewer_client, name="Prod AWS failures")
    response = _save(viewer_client, name="prod aws  FAILURES")

    assert response.status_code == 422
    assert "You already have a view named “prod aws FAILURES”." in response.content.decode()
    client = Client()  # another browser: its own session
    client.force_login(other_viewer)  # another owner may use the name
    assert _save(client, name="Prod AWS failures").status_code == 302


def test_the_save_control_answers_htmx_with_a_fragment_and_refreshes_the_nav(viewer_client):
    response = viewer_client.post(
        reverse("teamviews:create"),
        {"name": "Mine", "query": "status=failed", "shared": "on"},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    assert "Saved “Mine”, shared with the team." in response.content.decode()
    assert "teamviews-changed" in response["HX-Trigger"]


def test_a_private_view_is_invisible_to_others_and_a_shared_one_is_listed(
    viewer_client, viewer, other_viewer
):
    _save(viewer_client, name="My private one")
    _save(viewer_client, name="Team failures", shared=True)
    private = SavedView.objects.get(name="My private one")
    client = Client()  # another browser: its own session
    client.force_login(other_viewer)

    nav = client.get(reverse("teamviews:nav")).content.decode()
    listing = client.get(reverse("teamviews:list")).content.decode()

    assert "Team failures" in nav and "Team failures" in listing
    assert "My private one" not in nav and "My private one" not in listing
    assert client.get(reverse("teamviews:detail", args=[private.pk])).status_code == 404
    assert client.get(reverse("teamviews:edit", args=[private.pk])).status_code == 404
    assert client.post(reverse("teamviews:delete", args=[private.pk])).status_code == 404
    assert SavedView.objects.filter(pk=private.pk).exists()


def test_the_nav_shows_each_views_live_count(viewer_client):
    aws, azure = workflow(), workflow("Azure VM audit", cloud="Azure")
    for _ in range(3):
        execution(aws, "Failed")
    execution(aws, "Success")
    execution(azure, "Failed")
    _save(viewer_client, name="Prod AWS failures", query="status=failed&cloud=AWS&range=24h")
    _save(viewer_client, name="Everything", query="range=all")

    html = viewer_client.get(reverse("teamviews:nav")).content.decode()

    counts = dict(re.findall(r'<span class="views-name">([^<]+)</span> <span[^>]*>· (\d+)<', html))
    assert counts == {"Prod AWS failures": "3", "Everything": "5"}


def test_counts_follow_the_mirror_and_cost_the_same_queries_for_one_view_or_twenty(
    viewer_client, django_assert_max_num_queries
):
    wf = workflow()
    execution(wf, "Failed")
    _save(viewer_client, name="Failures", query="status=failed")
    viewer_client.get(reverse("teamviews:nav"))  # session, facts: warm
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        viewer_client.get(reverse("teamviews:nav"))
    for i in range(19):
        _save(viewer_client, name=f"View {i}", query=f"status=failed&region=r{i}")
    with CaptureQueriesContext(connection) as twenty:
        html = viewer_client.get(reverse("teamviews:nav")).content.decode()
    assert len(twenty) <= len(one) + 1  # the missing counts: one UNION ALL statement
    assert "View 18" in html

    execution(wf, "Failed")  # a sync wrote: the cached count is not used any more
    html = viewer_client.get(reverse("teamviews:nav")).content.decode()
    assert re.search(r'data-count="2"', html)


def test_only_the_owner_or_staff_edit_or_delete_a_shared_view(
    viewer_client, other_viewer, admin_user
):
    _save(viewer_client, name="Team failures", shared=True)
    view = SavedView.objects.get()
    client = Client()  # another browser: its own session
    client.force_login(other_viewer)

    assert client.get(reverse("teamviews:edit", args=[view.pk])).status_code == 403
    assert client.post(reverse("teamviews:delete", args=[view.pk])).status_code == 403
    page = client.get(reverse("teamviews:detail", args=[view.pk])).content.decode()
    assert "Team failures" in page and "/edit/" not in page

    response = viewer_client.post(
        reverse("teamviews:edit", args=[view.pk]),
        {"name": "Team AWS failures", "query": "status=failed&cloud=AWS", "shared": "on"},
    )
    assert response.status_code == 302
    view.refresh_from_db()
    assert view.name == "Team AWS failures" and view.query == "status=failed&range=7d&cloud=AWS"

    client.force_login(admin_user)
    assert client.post(reverse("teamviews:delete", args=[view.pk])).status_code == 302
    assert not SavedView.objects.exists()
    assert list(
        AuditEvent.objects.filter(action__startswith="view.")
        .order_by("pk")
        .values_list("action", flat=True)
    ) == ["view.created", "view.edited", "view.deleted"]


def test_staff_see_every_view_private_ones_too(viewer_client, admin_user):
    _save(viewer_client, name="My private one")
    view = SavedView.objects.get()
    client = Client()
    client.force_login(admin_user)

    assert client.get(reverse("teamviews:detail", args=[view.pk])).status_code == 200
    assert "My private one" in client.get(reverse("teamviews:list")).content.decode()


def test_a_signed_in_user_without_view_access_gets_no_views(client, django_user_model):
    user = django_user_model.objects.create_user(username="nobody", password="x")
    client.force_login(user)

    assert client.get(reverse("teamviews:list")).status_code == 403
    assert client.get(reverse("teamviews:nav")).status_code == 403
    assert client.post(reverse("teamviews:create"), {"name": "x"}).status_code == 403
    assert not SavedView.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("teamviews:list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
