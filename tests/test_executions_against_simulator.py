"""The list shows exactly what QFlow (the simulator, over real HTTP) lists, after a sync."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from qflowui.mirror import status as st
from qflowui.mirror.sync import mirror_sync

pytestmark = pytest.mark.django_db(transaction=True)

ROW_ID = re.compile(r'data-execution-id="([^"]+)"')
NEXT = re.compile(r'rel="next" href="([^"]+)"')


def _all_rows(client, query: str) -> list[str]:
    """Every row of every page, following the pager as a user would."""
    url = f"/executions/?{query}"
    rows: list[str] = []
    for _ in range(100):
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        rows += ROW_ID.findall(html)
        found = NEXT.search(html)
        if not found:
            return rows
        url = found.group(1).replace("&amp;", "&")
    raise AssertionError("too many pages")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def synced(simulator):
    run = mirror_sync()
    assert run.ok, run.error
    # What the API lists, computed independently of the dashboard: the simulator's own
    # records, newest first, as they stand right after the sync.
    return simulator.executions()


def test_each_filter_shows_exactly_the_executions_the_api_returns(viewer_client, synced):
    now_ms = int(timezone.now().timestamp() * 1000)
    day = 86_400_000
    start_ms, end_ms = now_ms - 20 * day, now_ms - 3 * day
    workflows = sorted({e["workflow"] for e in synced})[:3]
    cases = [
        ([], None),
        (["failed"], None),
        (["success", "timed_out"], None),
        (["failed", "cancelled"], (start_ms, end_ms)),
    ]
    for workflow in workflows:
        for classes, window in cases:
            lo, hi = window or (now_ms - 25 * day, now_ms)
            expected = [
                e["id"]
                for e in synced
                if e["workflow"] == workflow
                and lo <= e["startDate"] <= hi
                and (not classes or st.status_class(e["status"]) in classes)
            ]
            query = f"workflow={workflow}&start={_iso(lo)}&end={_iso(hi)}"
            query += "".join(f"&status={c}" for c in classes)

            shown = _all_rows(viewer_client, query)

            assert shown == expected, (workflow, classes, window)
            assert len(shown) == len(set(shown))


def test_the_status_filter_across_all_workflows_matches_the_api(viewer_client, synced):
    now_ms = int(timezone.now().timestamp() * 1000)
    lo = now_ms - int(timedelta(days=7).total_seconds() * 1000)
    expected = [
        e["id"]
        for e in synced
        if e["startDate"] >= lo and st.status_class(e["status"]) == st.FAILED
    ]
    shown = _all_rows(viewer_client, f"status=failed&start={_iso(lo)}")
    assert shown == expected
    assert expected, "the demo data set has failures in the last 7 days"


def test_paging_while_a_sync_adds_executions_neither_repeats_nor_skips(
    viewer_client, synced, simulator
):
    from qflowui.qflow import client_from_settings

    first = viewer_client.get("/executions/?range=all").content.decode()
    snapshot_first = ROW_ID.findall(first)
    next_url = NEXT.search(first).group(1).replace("&amp;", "&")
    client = client_from_settings()
    wf = synced[0]["workflow"]
    for _ in range(3):
        client.run_workflow(wf, input={"why": "paging test"})
    assert mirror_sync().executions_new == 3

    second = viewer_client.get(next_url).content.decode()

    both = snapshot_first + ROW_ID.findall(second)
    assert len(both) == 100
    assert len(set(both)) == 100
    # Exactly the 100 newest executions the mirror held when page 1 was shown.
    assert both == [e["id"] for e in synced[:100]]


def test_with_qflow_down_the_list_still_shows_the_mirror_under_a_banner(
    viewer_client, synced, simulator
):
    before = ROW_ID.findall(viewer_client.get("/executions/?range=all").content.decode())
    simulator.inject("status", path=r"^/qflowapi/", status=503, times=None)
    assert mirror_sync().upstream_down

    html = viewer_client.get("/executions/?range=all").content.decode()

    assert "QFlow unreachable since" in html
    assert ROW_ID.findall(html) == before
