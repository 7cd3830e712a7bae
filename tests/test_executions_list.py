"""The executions list: filters, counts, chart, paging, live refresh, escaping, freshness.

Rows are made directly in the mirror; each test asserts the exact executions a user sees.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, SyncRun, Workflow

pytestmark = pytest.mark.django_db

ROW_ID = re.compile(r'data-execution-id="([^"]+)"')
BAR_TITLE = re.compile(
    r'<rect class="bar bar-(\w+)"[^>]*><title>[^<]*: (\d+) ([A-Za-z ]+)</title></rect>'
)


def make_workflow(name: str = "Stop publicly exposed EC2 instances", cloud: str = "AWS"):
    return Workflow.objects.create(id=uuid.uuid4(), name=name, cloud=cloud)


def make_execution(
    workflow: Workflow,
    *,
    status: str = "Success",
    ago: timedelta | None = timedelta(hours=1),
    started_at: datetime | None = None,
    duration_ms: int | None = 72_000,
    source: str = "PUBLIC_API",
    cloud: str = "AWS",
    region: str = "us-east-1",
    triggered_by: str = "ana@example.com",
    execution_id: uuid.UUID | None = None,
) -> Execution:
    cls = st.status_class(status)
    started = started_at or timezone.now() - ago
    return Execution.objects.create(
        id=execution_id or uuid.uuid4(),
        workflow=workflow,
        status=status,
        status_class=cls,
        is_terminal=cls in st.TERMINAL_CLASSES,
        started_at=started,
        ended_at=None if cls == st.RUNNING else started + timedelta(milliseconds=duration_ms or 0),
        duration_ms=None if cls == st.RUNNING else duration_ms,
        source=source,
        cloud=cloud,
        region=region,
        triggered_by=triggered_by,
        last_synced_at=timezone.now(),
    )


def ids(*executions: Execution) -> list[str]:
    return [str(e.id) for e in executions]


def page(client, query: str = "", **headers) -> str:
    response = client.get(f"/executions/{query}", **headers)
    assert response.status_code == 200
    return response.content.decode()


def shown(client, query: str = "") -> list[str]:
    return ROW_ID.findall(page(client, query))


@pytest.fixture
def wf():
    return make_workflow()


# --- access and basics ---------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/executions/?status=failed")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/executions/")


def test_it_shows_the_last_7_days_newest_first_by_default(viewer_client, wf):
    new = make_execution(wf, ago=timedelta(minutes=5))
    mid = make_execution(wf, ago=timedelta(days=3))
    make_execution(wf, ago=timedelta(days=8))
    assert shown(viewer_client) == ids(new, mid)


def test_it_makes_no_call_to_qflow(viewer_client, wf, monkeypatch):
    import requests

    def refuse(*args, **kwargs):
        raise AssertionError("the list page called QFlow")

    monkeypatch.setattr(requests.Session, "request", refuse)
    make_execution(wf, status="Running", ago=timedelta(minutes=1))
    assert len(shown(viewer_client, "?range=all")) == 1


def test_each_row_carries_its_id_status_link_and_details(viewer_client, wf):
    done = make_execution(
        wf, status="Success", duration_ms=72_000, source="WORKFLOW_TRIGGER", region="eu-west-1"
    )
    running = make_execution(wf, status="Running", ago=timedelta(minutes=2))
    html = page(viewer_client)
    ident = str(done.id)
    row = re.search(rf'<tr data-execution-id="{ident}" data-status="Success".*?</tr>', html, re.S)
    assert row, "the row carries data-execution-id and the verbatim QFlow status"
    cells = row.group(0)
    assert f'href="/executions/{ident}/"' in cells
    assert f'title="{ident}" hx-boost="false">{ident[:8]}</a>' in cells
    assert f'data-copy="{ident}"' in cells
    assert "1 m 12 s" in cells
    assert "WORKFLOW_TRIGGER" in cells and "eu-west-1" in cells and "ana@example.com" in cells
    assert "Stop publicly exposed EC2 instances" in cells
    assert 'class="badge badge-success">Success</span>' in cells
    running_row = re.search(rf'data-execution-id="{running.id}".*?</tr>', html, re.S).group(0)
    assert ">running<" in running_row
    assert "2 min ago" in running_row


def test_the_page_has_no_inline_script_or_style(viewer_client, wf):
    make_execution(wf, status="Failed")
    html = page(viewer_client)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)


# --- status --------------------------------------------------------------------------


def test_status_filter_accepts_class_names_in_any_case(viewer_client, wf):
    failed = make_execution(wf, status="Failed", ago=timedelta(minutes=1))
    make_execution(wf, status="Success", ago=timedelta(minutes=2))
    for value in ("failed", "FAILED", "Failed"):
        assert shown(viewer_client, f"?status={value}") == ids(failed)


def test_status_filter_accepts_qflow_spellings(viewer_client, wf):
    timed_out = make_execution(wf, status="TIMED_OUT", ago=timedelta(minutes=1))
    errored = make_execution(wf, status="Error", ago=timedelta(minutes=2))
    make_execution(wf, status="Success", ago=timedelta(minutes=3))
    assert shown(viewer_client, "?status=timeout") == ids(timed_out)
    assert shown(viewer_client, "?status=errored") == ids(errored)
    assert shown(viewer_client, "?status=timed%20out") == ids(timed_out)


def test_status_is_repeatable_and_combines_with_or(viewer_client, wf):
    failed = make_execution(wf, status="Failed", ago=timedelta(minutes=1))
    running = make_execution(wf, status="Running", ago=timedelta(minutes=2))
    make_execution(wf, status="Success", ago=timedelta(minutes=3))
    assert shown(viewer_client, "?status=failed&status=running") == ids(failed, running)
    assert shown(viewer_client, "?status=failed,running") == ids(failed, running)


def test_status_shown_is_qflows_own_spelling_colored_by_class(viewer_client, wf):
    make_execution(wf, status="COMPLETED_WITH_ERRORS")
    make_execution(wf, status="Terminated", ago=timedelta(hours=2))
    html = page(viewer_client)
    assert 'class="badge badge-other">COMPLETED_WITH_ERRORS</span>' in html
    assert 'class="badge badge-cancelled">Terminated</span>' in html


# --- time range ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("1h", ["m30"]),
        ("24h", ["m30", "h5"]),
        ("7d", ["m30", "h5", "d3"]),
        ("30d", ["m30", "h5", "d3", "d20"]),
        ("all", ["m30", "h5", "d3", "d20", "d90"]),
    ],
)
def test_range_presets(viewer_client, wf, preset, expected):
    made = {
        "m30": make_execution(wf, ago=timedelta(minutes=30)),
        "h5": make_execution(wf, ago=timedelta(hours=5)),
        "d3": make_execution(wf, ago=timedelta(days=3)),
        "d20": make_execution(wf, ago=timedelta(days=20)),
        "d90": make_execution(wf, ago=timedelta(days=90)),
    }
    assert shown(viewer_client, f"?range={preset}") == [str(made[k].id) for k in expected]


def test_failed_last_24h_is_one_click_from_the_page(viewer_client, wf):
    recent_failure = make_execution(wf, status="Failed", ago=timedelta(hours=3))
    make_execution(wf, status="Failed", ago=timedelta(hours=30))
    make_execution(wf, status="Success", ago=timedelta(hours=1))
    html = page(viewer_client)
    link = re.search(r'<a class="quick quick-failed" href="([^"]+)"', html).group(1)
    assert shown(viewer_client, link.replace("/executions/", "").replace("&amp;", "&")) == ids(
        recent_failure
    )


def test_absolute_start_and_end_with_an_offset(viewer_client, wf):
    at = datetime(2025, 11, 23, 10, 0, tzinfo=UTC)
    before = make_execution(wf, started_at=at - timedelta(minutes=1))
    inside = make_execution(wf, started_at=at + timedelta(minutes=30))
    edge = make_execution(wf, started_at=at + timedelta(hours=1))
    make_execution(wf, started_at=at + timedelta(hours=1, seconds=1))
    # 11:00+01:00 is 10:00 UTC; the end is inclusive to the second.
    query = "?start=2025-11-23T11:00:00%2B01:00&end=2025-11-23T11:00:00Z"
    assert shown(viewer_client, query) == ids(edge, inside)
    assert before not in shown(viewer_client, query)


def test_an_offset_whose_plus_was_not_url_encoded_still_counts(viewer_client, wf):
    inside = make_execution(wf, started_at=datetime(2025, 11, 23, 10, 30, tzinfo=UTC))
    make_execution(wf, started_at=datetime(2025, 11, 23, 9, 30, tzinfo=UTC))
    query = "?start=2025-11-23T11:00:00+01:00&end=2025-11-23T12:00+01:00"
    assert shown(viewer_client, query) == ids(inside)


def test_a_date_time_without_an_offset_is_utc(viewer_client, wf):
    at = datetime(2025, 11, 23, 10, 0, tzinfo=UTC)
    inside = make_execution(wf, started_at=at + timedelta(minutes=5))
    make_execution(wf, started_at=at - timedelta(minutes=5))
    assert shown(viewer_client, "?start=2025-11-23T10:00&end=2025-11-23T11:00") == ids(inside)


def test_a_date_only_end_means_the_end_of_that_day(viewer_client, wf):
    late = make_execution(wf, started_at=datetime(2025, 11, 23, 23, 59, 59, tzinfo=UTC))
    early = make_execution(wf, started_at=datetime(2025, 11, 23, 0, 0, tzinfo=UTC))
    make_execution(wf, started_at=datetime(2025, 11, 24, 0, 0, tzinfo=UTC))
    make_execution(wf, started_at=datetime(2025, 11, 22, 23, 59, tzinfo=UTC))
    assert shown(viewer_client, "?start=2025-11-23&end=2025-11-23") == ids(late, early)


def test_absolute_dates_win_over_the_preset_range(viewer_client, wf):
    old = make_execution(wf, started_at=datetime(2025, 1, 5, 12, 0, tzinfo=UTC))
    make_execution(wf, ago=timedelta(minutes=5))
    html = page(viewer_client, "?range=24h&start=2025-01-05&end=2025-01-05")
    assert ROW_ID.findall(html) == ids(old)
    assert (
        '<span class="chip" aria-current="true" title="From/To dates below">Custom</span>' in html
    )


# --- workflow, source, cloud, region, search ---------------------------------------------


def test_filter_by_workflow_source_cloud_and_region(viewer_client, wf):
    other = make_workflow("Rotate Azure keys", cloud="Azure")
    a = make_execution(wf, source="PUBLIC_API", region="us-east-1", ago=timedelta(minutes=1))
    b = make_execution(wf, source="WORKFLOW_TRIGGER", region="eu-west-1", ago=timedelta(minutes=2))
    c = make_execution(
        other, source="PUBLIC_API", cloud="Azure", region="westeurope", ago=timedelta(minutes=3)
    )
    assert shown(viewer_client, f"?workflow={wf.id}") == ids(a, b)
    assert shown(viewer_client, "?source=PUBLIC_API") == ids(a, c)
    assert shown(viewer_client, "?cloud=Azure") == ids(c)
    assert shown(viewer_client, "?region=eu-west-1") == ids(b)
    assert shown(viewer_client, f"?workflow={wf.id}&source=PUBLIC_API") == ids(a)


def test_search_finds_an_execution_by_id_or_its_prefix(viewer_client, wf):
    target = make_execution(wf, execution_id=uuid.UUID("3f2a9c1e-0000-4000-8000-000000000001"))
    make_execution(wf, execution_id=uuid.UUID("3f2b0000-0000-4000-8000-000000000002"))
    make_execution(wf, execution_id=uuid.UUID("aaaa0000-0000-4000-8000-000000000003"))
    assert shown(viewer_client, "?q=3f2a") == ids(target)
    assert shown(viewer_client, "?q=3F2A9C1E-0000") == ids(target)


def test_a_pasted_full_id_opens_the_execution_whatever_its_date(viewer_client, wf):
    old = make_execution(wf, ago=timedelta(days=20))
    response = viewer_client.get(f"/executions/?q=+{old.id}+&range=24h")
    assert response.status_code == 302
    assert response["Location"] == f"/executions/{old.id}/"
    # From the search box (htmx): the browser is sent there.
    response = viewer_client.get(f"/executions/?q={old.id.hex.upper()}", HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == f"/executions/{old.id}/"
    # An id QFlow may know though the mirror does not: its page asks QFlow.
    unknown = uuid.uuid4()
    response = viewer_client.get(f"/executions/?q={unknown}")
    assert response["Location"] == f"/executions/{unknown}/"


def test_an_id_prefix_searches_every_date_and_says_so(viewer_client, wf):
    old = make_execution(
        wf, ago=timedelta(days=25), execution_id=uuid.UUID("5e1f0a9b-0000-4000-8000-000000000001")
    )
    make_execution(wf, ago=timedelta(hours=1))
    html = page(viewer_client, "?q=5e1f0a&range=24h")
    assert ROW_ID.findall(html) == ids(old)
    assert "Searching every date for execution ids starting with <code>5e1f0a</code>" in html
    # A short or non-hex search stays a search within the range.
    assert shown(viewer_client, "?q=5e1f&range=24h") == []


def test_search_finds_executions_by_workflow_name_substring(viewer_client, wf):
    rds = make_workflow("Publicly accessible RDS DB Instances")
    hit = make_execution(rds, ago=timedelta(minutes=1))
    make_execution(wf, ago=timedelta(minutes=2))
    assert shown(viewer_client, "?q=rds%20db") == ids(hit)


def test_filters_combine(viewer_client, wf):
    other = make_workflow("Rotate Azure keys", cloud="Azure")
    hit = make_execution(wf, status="Failed", ago=timedelta(hours=2), region="us-east-1")
    make_execution(wf, status="Failed", ago=timedelta(hours=30), region="us-east-1")
    make_execution(wf, status="Success", ago=timedelta(hours=2), region="us-east-1")
    make_execution(other, status="Failed", ago=timedelta(hours=2), region="us-east-1")
    make_execution(wf, status="Failed", ago=timedelta(hours=2), region="eu-west-1")
    query = f"?status=failed&range=24h&workflow={wf.id}&region=us-east-1"
    assert shown(viewer_client, query) == ids(hit)


# --- sorting and paging --------------------------------------------------------------


def test_sort_by_duration_both_ways_with_running_last(viewer_client, wf):
    short = make_execution(wf, duration_ms=5_000, ago=timedelta(minutes=1))
    long = make_execution(wf, duration_ms=900_000, ago=timedelta(minutes=2))
    mid = make_execution(wf, duration_ms=60_000, ago=timedelta(minutes=3))
    running = make_execution(wf, status="Running", ago=timedelta(minutes=4))
    assert shown(viewer_client, "?sort=-duration") == ids(long, mid, short, running)
    assert shown(viewer_client, "?sort=duration") == ids(short, mid, long, running)
    assert shown(viewer_client, "?sort=started") == ids(running, mid, long, short)


def _link(html: str, rel: str) -> str:
    found = re.search(rf'rel="{rel}" href="([^"]+)"', html)
    assert found, f"no {rel} link"
    return found.group(1).replace("&amp;", "&")


def test_pages_hold_50_rows_and_do_not_overlap(viewer_client, wf):
    made = [make_execution(wf, status="Failed", ago=timedelta(minutes=i)) for i in range(1, 121)]
    expected = ids(*made)
    first = page(viewer_client, "?status=failed")
    second = page(viewer_client, _link(first, "next").removeprefix("/executions/"))
    third = page(viewer_client, _link(second, "next").removeprefix("/executions/"))
    assert ROW_ID.findall(first) == expected[:50]
    assert ROW_ID.findall(second) == expected[50:100]
    assert ROW_ID.findall(third) == expected[100:]
    assert "51\u2013100 of 120" in second
    assert "page=3" in _link(second, "next") and "asof=" in _link(second, "next")
    assert "page=1" in _link(second, "prev") and "asof=" in _link(second, "prev")


def test_executions_synced_while_paging_neither_repeat_nor_skip_rows(viewer_client, wf):
    made = [make_execution(wf, ago=timedelta(minutes=i)) for i in range(2, 102)]
    first = page(viewer_client, "")
    next_link = _link(first, "next").removeprefix("/executions/")
    # A sync lands 30 newer executions between page 1 and page 2.
    for i in range(30):
        make_execution(wf, ago=timedelta(seconds=30 + i))

    second = page(viewer_client, next_link)

    shown_ids = ROW_ID.findall(first) + ROW_ID.findall(second)
    assert len(shown_ids) == len(set(shown_ids))
    assert shown_ids == ids(*made)


def test_a_page_past_the_end_shows_the_last_page(viewer_client, wf):
    made = [make_execution(wf, ago=timedelta(minutes=i)) for i in range(1, 56)]
    assert shown(viewer_client, "?page=9") == ids(*made[50:])


# --- counts and chart ----------------------------------------------------------------


def test_counts_per_status_follow_the_other_filters_and_link_to_a_status_filter(viewer_client, wf):
    for _ in range(3):
        make_execution(wf, status="Failed", ago=timedelta(hours=2))
    make_execution(wf, status="Error", ago=timedelta(hours=2))
    make_execution(wf, status="Success", ago=timedelta(hours=2))
    make_execution(wf, status="Failed", ago=timedelta(days=2))  # outside 24 h
    html = page(viewer_client, "?range=24h&status=success")
    counts = dict(re.findall(r'data-status-class="(\w+)" data-count="(\d+)"', html))
    assert counts == {
        "failed": "4",
        "timed_out": "0",
        "cancelled": "0",
        "running": "0",
        "success": "1",
        "other": "0",
    }
    link = re.search(r'class="count count-failed has" href="([^"]+)"', html).group(1)
    assert link == "/executions/?status=success&amp;status=failed&amp;range=24h"


def test_the_chart_has_a_bar_per_status_whose_titles_add_up(viewer_client, wf):
    for hours in (1, 1, 5, 30, 50, 70):
        make_execution(wf, status="Failed", ago=timedelta(hours=hours))
    for hours in (2, 26):
        make_execution(wf, status="Success", ago=timedelta(hours=hours))
    make_execution(wf, status="Running", ago=timedelta(minutes=5))
    html = page(viewer_client)
    bars = BAR_TITLE.findall(html)
    assert sum(int(n) for _, n, _ in bars) == 9
    assert {cls for cls, _, _ in bars} == {"failed", "success", "running"}
    assert all(st.LABELS[cls] == label for cls, _, label in bars)
    assert "Executions per day" in html


def test_the_chart_is_per_hour_for_24_hours_and_follows_the_status_filter(viewer_client, wf):
    make_execution(wf, status="Failed", ago=timedelta(hours=3))
    make_execution(wf, status="Failed", ago=timedelta(hours=3, minutes=1))
    make_execution(wf, status="Success", ago=timedelta(hours=3))
    html = page(viewer_client, "?range=24h&status=failed")
    bars = BAR_TITLE.findall(html)
    assert [(cls, n) for cls, n, _ in bars] in ([("failed", "2")], [("failed", "1")] * 2)
    assert "Executions per hour" in html


def test_there_is_no_chart_when_nothing_matches(viewer_client, wf):
    assert "<svg" not in page(viewer_client)


# --- bad input and empty results -----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?start=2025-13-45", "“2025-13-45” is not a date"),
        ("?start=yesterday", "“yesterday” is not a date"),
        ("?end=2025-11-23T25:00", "is not a date"),
        ("?start=2025-11-23&end=2025-11-20", "The end is before the start"),
        ("?status=bogus", "Unknown status “bogus”"),
        ("?workflow=not-a-uuid", "“not-a-uuid” is not a workflow id"),
        ("?range=5y", "Unknown range “5y”"),
        ("?sort=name", "Unknown sort “name”"),
        ("?page=two", "The page must be a whole number"),
        ("?page=0", "The page must be 1 or more"),
    ],
)
def test_bad_input_gets_a_clear_message_and_a_normal_page(viewer_client, wf, query, message):
    make_execution(wf, ago=timedelta(minutes=5))
    html = page(viewer_client, query)
    assert message in html
    assert 'class="field-error"' in html


def test_a_bad_filter_is_left_out_and_the_others_still_apply(viewer_client, wf):
    failed = make_execution(wf, status="Failed", ago=timedelta(minutes=5))
    make_execution(wf, status="Success", ago=timedelta(minutes=6))
    assert shown(viewer_client, "?status=failed&status=bogus&start=garbage") == ids(failed)


def test_an_empty_result_names_the_filters_that_emptied_it(viewer_client, wf):
    make_execution(wf, status="Success", ago=timedelta(hours=2), region="us-east-1")
    html = page(viewer_client, "?status=failed&range=24h&region=us-east-1")
    assert ROW_ID.findall(html) == []
    assert "No executions match" in html
    assert "<strong>status Failed</strong>" in html
    assert "<strong>last 24 hours</strong>" in html
    assert "<strong>region “us-east-1”</strong>" in html
    assert "The status filter emptied it: 1 execution match" in html


# --- htmx: fragment, history, live refresh ---------------------------------------------


def test_an_htmx_request_gets_only_the_results_fragment(viewer_client, wf):
    make_execution(wf, status="Failed")
    html = page(viewer_client, "?status=failed", HTTP_HX_REQUEST="true")
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="results"')
    assert 'id="filters" class="filters" aria-label="Filters" hx-swap-oob="true"' in html
    assert len(ROW_ID.findall(html)) == 1


def test_the_poll_does_not_replace_the_filter_bar(viewer_client, wf):
    make_execution(wf, status="Running")
    html = page(viewer_client, "", HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="results")
    assert 'id="filters"' not in html
    assert 'id="freshness"' in html


def test_a_history_restore_gets_the_whole_page(viewer_client, wf):
    html = page(
        viewer_client,
        "?status=failed",
        HTTP_HX_REQUEST="true",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )
    assert "<html" in html


def test_the_filter_form_works_with_and_without_javascript(viewer_client, wf):
    html = page(viewer_client)
    form = re.search(r'<form id="filter-form"[^>]*>', html, re.S).group(0)
    assert 'method="get"' in form and 'action="/executions/"' in form
    assert 'hx-get="/executions/"' in form
    assert 'hx-target="#results"' in form
    assert 'hx-push-url="true"' in form
    assert 'hx-trigger="change, submit"' in form


def test_the_results_poll_while_a_running_execution_is_on_screen(viewer_client, wf):
    make_execution(wf, status="Running", ago=timedelta(minutes=3))
    html = page(viewer_client, "?range=24h")
    assert re.search(r'<div id="results"[^>]*hx-trigger="every 10s"', html)


def test_the_results_do_not_poll_without_a_running_execution(viewer_client, wf):
    make_execution(wf, status="Success", ago=timedelta(minutes=3))
    assert "every 10s" not in page(viewer_client)


def test_the_results_do_not_poll_when_the_range_ends_in_the_past(viewer_client, wf):
    make_execution(wf, status="Running", started_at=datetime(2025, 1, 5, 12, 0, tzinfo=UTC))
    html = page(viewer_client, "?start=2025-01-05&end=2025-01-05")
    assert len(ROW_ID.findall(html)) == 1
    assert "every 10s" not in html


def test_the_results_do_not_poll_when_the_running_execution_is_filtered_out(viewer_client, wf):
    make_execution(wf, status="Running", ago=timedelta(minutes=3))
    make_execution(wf, status="Failed", ago=timedelta(minutes=3))
    assert "every 10s" not in page(viewer_client, "?status=failed")


# --- untrusted text ------------------------------------------------------------------


def test_qflow_text_is_escaped_everywhere(viewer_client):
    evil = make_workflow("<script>alert(1)</script>", cloud="<b>x</b>")
    make_execution(
        evil,
        status="<img src=x onerror=alert(1)>",
        source='"><svg onload=alert(2)>',
        region="<i>r</i>",
        cloud="<b>x</b>",
        triggered_by="<u>eve</u>",
    )
    html = page(viewer_client, "?range=all")
    for raw in (
        "<script>alert(1)</script>",
        "<img src=x",
        "<svg onload",
        "<i>r</i>",
        "<u>eve",
        "<b>x",
    ):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'data-status="&lt;img src=x onerror=alert(1)&gt;"' in html
    assert "&lt;img src=x onerror=alert(1)&gt;</span>" in html


def test_a_hostile_workflow_name_in_the_empty_message_is_escaped(viewer_client):
    evil = make_workflow("<script>alert(1)</script>")
    html = page(viewer_client, f"?workflow={evil.id}")
    assert "<script>alert(1)</script>" not in html
    assert "workflow “&lt;script&gt;alert(1)&lt;/script&gt;”" in html


# --- freshness -----------------------------------------------------------------------


def _sync(ago_s: int, *, ok: bool = True, down: bool = False, error: str = "") -> SyncRun:
    started = timezone.now() - timedelta(seconds=ago_s)
    return SyncRun.objects.create(
        started_at=started,
        finished_at=started + timedelta(seconds=2),
        ok=ok,
        upstream_down=down,
        error=error,
    )


def test_the_header_says_how_fresh_the_mirror_is(viewer_client):
    _sync(600)
    _sync(42)
    SyncRun.objects.create(started_at=timezone.now())  # still running: not counted
    html = page(viewer_client)
    assert re.search(
        r"synced <time datetime=\"[^\"]+\" title=\"[^\"]+ UTC\">4[0-4] s ago</time>", html
    )
    assert "QFlow unreachable" not in html


def test_a_never_synced_mirror_says_so(viewer_client):
    html = page(viewer_client)
    assert "never synced" in html
    assert "Press “Sync now”" in html


def test_upstream_down_shows_a_banner_since_the_first_failing_pass(viewer_client):
    _sync(3600)
    first_down = _sync(1800, ok=False, down=True, error="QFlow unreachable: timeout")
    _sync(900, ok=False, down=True, error="QFlow unreachable: timeout")
    _sync(60, ok=False, down=True, error="QFlow unreachable: timeout")
    html = page(viewer_client)
    began = timezone.localtime(first_down.started_at)
    today = timezone.localtime(timezone.now()).date()
    since = f"{began:%H:%M}" if began.date() == today else f"{began:%Y-%m-%d %H:%M}"
    assert "QFlow unreachable since <time" in html
    assert f">{since} UTC</time></strong> — showing the mirror" in html
    assert 'class="banner banner-down" role="alert"' in html
    assert "synced <time" in html  # still says how old the mirror is


def test_other_sync_errors_get_a_calmer_notice(viewer_client):
    _sync(600)
    _sync(30, ok=False, error="QFlow asked us to wait 60 s: <rate limited>")
    html = page(viewer_client)
    assert "QFlow unreachable" not in html
    assert "did not complete: QFlow asked us to wait 60 s: &lt;rate limited&gt;" in html
    assert 'class="notice"' in html


def test_a_pass_that_came_back_ends_the_banner(viewer_client):
    _sync(900, ok=False, down=True)
    _sync(30)
    assert "QFlow unreachable" not in page(viewer_client)


def test_started_shows_the_absolute_time_with_its_zone_beside_the_relative_one(viewer_client, wf):
    e = make_execution(wf, started_at=datetime(2026, 11, 30, 10, 42, 7, tzinfo=UTC))
    html = page(viewer_client, "?range=all")
    row = re.search(rf'<tr data-execution-id="{e.id}".*?</tr>', html, re.S).group(0)
    assert 'class="abs-time">2026-11-30 10:42:07 UTC</span>' in row
    assert f'data-href="/executions/{e.id}/"' in row  # the whole row opens it


def test_all_says_since_when_the_mirror_holds_history(viewer_client, wf):
    make_execution(wf)
    SyncRun.objects.create(started_at=datetime(2026, 10, 1, 8, 0, tzinfo=UTC), ok=True)
    html = page(viewer_client, "?range=all")
    assert "every execution mirrored since" in html and "2026-10-01 08:00:00 UTC" in html
    assert "QFlow itself keeps 30 days" in html
    assert "data-horizon" not in page(viewer_client, "?range=7d")


def test_a_status_qflow_sends_can_be_chosen_by_its_own_name(viewer_client, wf):
    partial = make_execution(wf, status="Partial")
    make_execution(wf, status="Success")
    make_execution(wf, status="Failed")
    html = page(viewer_client, "?status=partial")
    assert ROW_ID.findall(html) == ids(partial)  # exactly those, not every status
    assert "Unknown status" not in html
    assert 'value="Partial" checked' in html  # chosen under "As QFlow names them"
    assert "status “Partial”" in html  # the chip
    # With a class shortcut: either.
    assert set(shown(viewer_client, "?status=failed&status=Partial")) == {
        str(e.id) for e in Execution.objects.filter(status__in=["Partial", "Failed"])
    }
    # A status nobody sent is still refused, and the rest of the filter applies.
    bad = page(viewer_client, "?status=Bogus&status=failed")
    assert "Unknown status “Bogus”" in bad
    assert ROW_ID.findall(bad) == [str(Execution.objects.get(status="Failed").id)]


def test_source_region_and_cloud_are_choices_from_the_mirror_with_counts(viewer_client, wf):
    make_execution(wf, source="SCHEDULE", region="us-east-1")
    make_execution(wf, source="SCHEDULE", region="eu-west-1")
    hit = make_execution(wf, source="PUBLIC_API", region="eu-west-1")
    html = page(viewer_client)
    assert '<option value="SCHEDULE">SCHEDULE (2)</option>' in html
    assert '<option value="eu-west-1">eu-west-1 (2)</option>' in html
    assert '<option value="AWS">AWS (3)</option>' in html
    # Any case finds QFlow's spelling; each choice counts under the other filters.
    assert shown(viewer_client, "?source=public_api&region=EU-WEST-1") == ids(hit)
    narrowed = page(viewer_client, "?source=schedule")
    assert '<option value="SCHEDULE" selected>SCHEDULE (2)</option>' in narrowed
    assert '<option value="us-east-1">us-east-1 (1)</option>' in narrowed
