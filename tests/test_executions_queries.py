"""The list page costs a small, constant number of SQL queries, whatever the mirror holds."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, SyncRun, Workflow

pytestmark = pytest.mark.django_db

STATUSES = ("Success", "Failed", "Running", "Cancelled", "TIMED_OUT", "Queued")


def fill_mirror(count: int) -> None:
    now = timezone.now()
    workflows = Workflow.objects.bulk_create(
        Workflow(id=uuid.uuid4(), name=f"Workflow {i}", cloud="AWS") for i in range(12)
    )
    Execution.objects.bulk_create(
        (
            Execution(
                id=uuid.uuid4(),
                workflow=workflows[i % 12],
                status=STATUSES[i % len(STATUSES)],
                status_class=st.status_class(STATUSES[i % len(STATUSES)]),
                started_at=now - timedelta(minutes=i * 2),
                duration_ms=None if i % len(STATUSES) == 2 else 1000 + i,
                source="PUBLIC_API",
                region="us-east-1",
                cloud="AWS",
                last_synced_at=now,
            )
            for i in range(count)
        ),
        batch_size=1000,
    )
    # The most expensive freshness case: QFlow down for a few passes after a good one.
    for minutes, down in ((30, False), (20, True), (10, True)):
        SyncRun.objects.create(
            started_at=now - timedelta(minutes=minutes),
            finished_at=now - timedelta(minutes=minutes - 1),
            ok=not down,
            upstream_down=down,
        )


def queries_for(client, url: str, **headers) -> int:
    """Queries of one view with the counts cache empty: the most a view costs."""
    cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **headers)
    assert response.status_code == 200
    return len(ctx.captured_queries)


URLS = [
    "/executions/",
    "/executions/?status=failed&range=24h",
    "/executions/?range=all&sort=-duration&page=2",
    "/executions/?q=Workflow%201&status=running&status=failed",
]


def test_the_list_page_needs_at_most_10_queries_with_100_rows(
    viewer_client, django_assert_max_num_queries
):
    fill_mirror(100)
    with django_assert_max_num_queries(10):
        viewer_client.get("/executions/")


def test_the_query_count_stays_flat_from_100_to_5000_rows(
    viewer_client, django_assert_max_num_queries
):
    fill_mirror(100)
    small = [queries_for(viewer_client, url) for url in URLS]
    Execution.objects.all().delete()
    Workflow.objects.all().delete()
    SyncRun.objects.all().delete()
    fill_mirror(5000)
    with django_assert_max_num_queries(10):
        viewer_client.get("/executions/?range=all")
    large = [queries_for(viewer_client, url) for url in URLS]
    assert small == large
    assert max(large) <= 10


def test_the_htmx_fragment_costs_no_more_than_the_page(viewer_client):
    fill_mirror(300)
    full = queries_for(viewer_client, "/executions/?range=all")
    fragment = queries_for(viewer_client, "/executions/?range=all", HTTP_HX_REQUEST="true")
    assert fragment <= full <= 10


def test_a_repeated_view_reads_the_counts_from_the_cache_until_the_mirror_changes(
    viewer_client,
):
    fill_mirror(300)
    cold = queries_for(viewer_client, "/executions/?range=all")
    with CaptureQueriesContext(connection) as ctx:
        viewer_client.get("/executions/?range=all&page=2")
    # The counts (with the chart) and the filter choices both come from the cache.
    assert len(ctx.captured_queries) == cold - 2
    before = viewer_client.get("/executions/?range=all").content.decode()

    # The mirror changes: one more failed execution. The counts must show it at once.
    newest = Execution.objects.order_by("-started_at").first()
    newest.pk = None
    newest.id = uuid.uuid4()
    newest.status, newest.status_class = "Failed", "failed"
    newest.last_synced_at = timezone.now()
    newest.save(force_insert=True)
    after = viewer_client.get("/executions/?range=all").content.decode()

    assert _count(after, "all") == _count(before, "all") + 1
    assert _count(after, "failed") == _count(before, "failed") + 1


def _count(html: str, cls: str) -> int:
    import re

    if cls == "all":
        found = re.search(r'class="count count-all"[^>]*><span class="n">(\d+)</span>', html)
    else:
        found = re.search(rf'data-status-class="{cls}" data-count="(\d+)"', html)
    assert found, cls
    return int(found.group(1))
