"""The list's rollups equal a COUNT(*) of the executions after every kind of write; the
list's counts come from them; keyset paging neither repeats nor skips; an id prefix is found.

The rollups are kept by PostgreSQL triggers: on SQLite the list counts rows (skipped here).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from qflowui.executions.forms import Filters
from qflowui.executions.listing import _window_parts, execution_listing
from qflowui.mirror import rollups
from qflowui.mirror.models import Execution, ExecutionDayRollup, ExecutionHourRollup
from tests.test_executions_list import ROW_ID, make_execution, make_workflow

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not rollups.supported(), reason="rollups are kept by PostgreSQL triggers only"
    ),
]

KEY = ("workflow_id", "status", "status_class", "source", "cloud", "region")


def _truth(unit: str) -> dict:
    sql = (
        f"SELECT date_trunc('{unit}', started_at, 'UTC'), {', '.join(KEY)}, COUNT(*)"  # noqa: S608
        " FROM mirror_execution GROUP BY 1, 2, 3, 4, 5, 6, 7"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {tuple(row[:-1]): row[-1] for row in cursor.fetchall()}


def _rolled(model) -> dict:
    return {(r.bucket, *(getattr(r, k) for k in KEY)): r.n for r in model.objects.filter(n__gt=0)}


def assert_rollups_match() -> None:
    assert _rolled(ExecutionHourRollup) == _truth("hour")
    assert _rolled(ExecutionDayRollup) == _truth("day")
    assert not ExecutionHourRollup.objects.filter(n__lt=0).exists()


def test_rollups_equal_count_after_inserts_status_changes_moves_and_deletes():
    wf, other = make_workflow(), make_workflow("Rotate keys", cloud="Azure")
    made = [make_execution(wf, status="Running", ago=timedelta(minutes=7 * i)) for i in range(40)]
    Execution.objects.bulk_create(
        Execution(
            id=uuid.uuid4(),
            workflow=other,
            status="Failed",
            status_class="failed",
            started_at=timezone.now() - timedelta(hours=i * 5),
            source="SCHEDULED",
            cloud="Azure",
            region="westeurope",
            last_synced_at=timezone.now(),
        )
        for i in range(30)
    )
    assert_rollups_match()
    # Status changes, as the sync's bulk_update and a detail refresh's update() make them.
    for execution in made[:10]:
        execution.status, execution.status_class = "Success", "success"
    Execution.objects.bulk_update(made[:10], ["status", "status_class"])
    Execution.objects.filter(pk=made[10].pk).update(status="Failed", status_class="failed")
    # A row moved in time and to another workflow, another source.
    Execution.objects.filter(pk=made[11].pk).update(
        started_at=timezone.now() - timedelta(days=3), workflow=other, source="SCHEDULED"
    )
    # Writes that touch no counted column change nothing.
    Execution.objects.filter(workflow=wf).update(gone_at=timezone.now())
    assert_rollups_match()
    Execution.objects.filter(pk__in=[e.pk for e in made[20:30]]).delete()
    Execution.objects.filter(workflow=other).delete()
    assert_rollups_match()
    # A rebuild from scratch gives the same rows.
    before = _rolled(ExecutionHourRollup)
    call_command("rebuild_rollups", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert _rolled(ExecutionHourRollup) == before
    assert_rollups_match()


def test_a_raw_insert_select_is_counted_too():
    # records.upsert_listed writes with bulk_create(ignore_conflicts) and bulk_update: the
    # statement triggers see both (covered above through the same ORM calls); a raw COPY
    # or INSERT ... SELECT is counted too.
    wf = make_workflow()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO mirror_execution (id, workflow_id, status, status_class, is_terminal,"
            " source, execution_type, started_at, cloud, region, categories, variables, tags,"
            " triggered_by, linked_execution_ids, raw, first_seen_at, last_synced_at,"
            " failure_node_id, failure_step, failure_message, failure_pattern, failure_key)"
            " SELECT gen_random_uuid(), %s, 'Success', 'success', true, 'PUBLIC_API', '',"
            " now() - g * interval '17 minutes', 'AWS', 'us-east-1', '{}', '[]', '[]', '',"
            " '[]', '{}', now(), now(), '', '', '', '', '' FROM generate_series(1, 500) g",
            [wf.pk],
        )
    assert_rollups_match()


def _listing(**kwargs) -> object:
    cache.clear()
    now = kwargs.pop("now", timezone.now())
    return execution_listing(Filters(**kwargs), now=now, tz=UTC)


def test_list_counts_from_the_rollups_equal_the_rows_for_any_window():
    wf = make_workflow()
    now = timezone.now()
    for i in range(300):
        make_execution(
            wf,
            status=("Success", "Failed", "Cancelled")[i % 3],
            ago=timedelta(minutes=23 * i + 1),
            source=("PUBLIC_API", "SCHEDULED")[i % 2],
        )
    for rng in ("1h", "24h", "7d", "30d", "all"):
        listing = _listing(range=rng, now=now)
        start = Filters(range=rng).window(now.replace(second=0, microsecond=0))[0]
        rows = Execution.objects.filter(started_at__gte=start) if start else Execution.objects
        assert listing.matching == rows.count(), rng
        assert listing.counts["failed"] == rows.filter(status_class="failed").count(), rng
    # Custom From/To off the hour, end inclusive, and a source spelled in another case.
    start, end = now - timedelta(days=2, minutes=17), now - timedelta(hours=5, minutes=41)
    listing = _listing(start=start, end=end, end_inclusive=True, source="scheduled", now=now)
    expected = Execution.objects.filter(
        started_at__gte=start, started_at__lte=end, source="SCHEDULED"
    ).count()
    assert listing.matching == expected
    assert not listing.capped


def test_the_window_is_read_from_rows_only_outside_whole_hours():
    start = datetime(2026, 11, 20, 10, 17, tzinfo=UTC)
    end = datetime(2026, 11, 24, 8, 43, tzinfo=UTC)
    parts = _window_parts(start, end, False, days_ok=True)
    rows = [(low, high) for table, low, high, _ in parts if table == rollups.EXECUTIONS]
    assert sorted(rows) == [
        (start, datetime(2026, 11, 20, 11, tzinfo=UTC)),
        (datetime(2026, 11, 24, 8, tzinfo=UTC), end),
    ]
    days = [(low, high) for table, low, high, _ in parts if table == rollups.DAYS]
    assert days == [(datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC))]


def test_filters_without_a_rollup_are_capped_and_say_so(viewer_client):
    wf = make_workflow()
    Execution.objects.bulk_create(
        Execution(
            id=uuid.uuid4(),
            workflow=wf,
            status="Failed",
            status_class="failed",
            started_at=timezone.now() - timedelta(seconds=30 * i + 5),
            failure_message="AccessDenied for role",
            last_synced_at=timezone.now(),
        )
        for i in range(1100)
    )
    listing = _listing(error="accessdenied")
    assert listing.capped and listing.matching == 1001
    html = viewer_client.get("/executions/?error=AccessDenied").content.decode()
    assert "of 1,000+" in html and "Counted among the newest 1,000" in html
    assert _listing(error="nothing like it").matching == 0


def _link(html: str, rel: str) -> str:
    found = re.search(rf'rel="{rel}" href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else ""


def test_keyset_pages_walk_forward_and_back_without_repeats_or_gaps(viewer_client):
    wf = make_workflow()
    same = timezone.now() - timedelta(minutes=30)
    # 130 rows, 60 of them started at the very same instant: the id breaks the tie.
    made = [make_execution(wf, started_at=same) for _ in range(60)]
    made += [make_execution(wf, ago=timedelta(minutes=40 + i)) for i in range(70)]
    expected = [str(e.id) for e in sorted(made, key=lambda e: (e.started_at, e.id), reverse=True)]
    seen, url, pages = [], "/executions/", []
    while url:
        html = viewer_client.get(url).content.decode()
        pages.append(html)
        seen += ROW_ID.findall(html)
        url = _link(html, "next")
        assert "offset" not in url
    assert seen == expected and len(pages) == 3
    assert "after=" in _link(pages[1], "next") and "page=3" in _link(pages[1], "next")
    # Back from the last page: the same rows as on the way there.
    back = viewer_client.get(_link(pages[2], "prev")).content.decode()
    assert ROW_ID.findall(back) == expected[50:100]
    assert "51\u2013100 of 130" in back


def test_an_id_prefix_finds_the_execution_by_a_uuid_range(viewer_client):
    wf = make_workflow()
    target = make_execution(wf, ago=timedelta(days=90))  # outside any preset range
    for _ in range(20):
        make_execution(wf)
    html = viewer_client.get(f"/executions/?q={str(target.id)[:8]}").content.decode()
    assert ROW_ID.findall(html) == [str(target.id)]
