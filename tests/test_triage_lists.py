"""Triage across executions (issue 12): a badge per triaged row of the executions list, the
`triage=` filter with its chip, and how many of each /failures/ group are triaged."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from qflowui.mirror.models import Execution
from qflowui.triage.models import Triage
from tests.test_executions_list import ids, make_execution, make_workflow, page, shown
from tests.test_executions_queries import fill_mirror
from tests.test_failures_page import GROUP, groups
from tests.test_mirror_failures import _failed
from tests.test_triage import HTMX, runners_group, triage_url

pytestmark = pytest.mark.django_db

BADGE = re.compile(
    r'<tr data-execution-id="([0-9a-f-]{36})".*?'
    r'(?:<a class="triage-badge triage-(\w+)"[^>]*>([^<]+)</a>|</td>)',
    re.S,
)


def badges(text: str) -> dict[str, tuple[str, str] | None]:
    """Each row's triage badge: (state, label), or None."""
    return {m[0]: ((m[1], m[2]) if m[1] else None) for m in BADGE.findall(text)}


def listed(client, href: str) -> list[str]:
    """The executions a link of a page lists."""
    query = html.unescape(href).removeprefix("/executions/")
    return shown(client, query)


def triage(execution: Execution, state: str, ticket: str = "") -> Triage:
    return Triage.objects.create(execution_id=execution.pk, state=state, ticket=ticket)


@pytest.fixture
def wf():
    return make_workflow()


# --- the executions list ------------------------------------------------------------------


def test_a_triaged_row_shows_its_state_and_the_others_none(viewer_client, wf):
    opened = make_execution(wf, status="Failed", ago=timedelta(minutes=1))
    false_alarm = make_execution(wf, status="Failed", ago=timedelta(minutes=2))
    untouched = make_execution(wf, status="Failed", ago=timedelta(minutes=3))
    triage(opened, "open")
    triage(false_alarm, "false_positive")

    found = badges(page(viewer_client))
    assert found == {
        str(opened.pk): ("open", "Open"),
        str(false_alarm.pk): ("false_positive", "False positive"),
        str(untouched.pk): None,
    }
    # The badge lists the executions in that state.
    text = page(viewer_client)
    assert re.search(r'class="triage-badge triage-open" href="/executions/\?[^"]*triage=open', text)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?triage=open", ["open"]),
        ("?triage=OPEN", ["open"]),
        ("?triage=resolved", ["resolved"]),
        ("?triage=none", ["untouched"]),
        ("", ["open", "resolved", "untouched"]),
    ],
)
def test_the_triage_filter(viewer_client, wf, query, expected):
    made = {
        "open": make_execution(wf, ago=timedelta(minutes=1)),
        "resolved": make_execution(wf, ago=timedelta(minutes=2)),
        "untouched": make_execution(wf, ago=timedelta(minutes=3)),
    }
    triage(made["open"], "open")
    triage(made["resolved"], "resolved")
    assert shown(viewer_client, query) == ids(*(made[name] for name in expected))


def test_the_filter_has_a_select_and_a_removable_chip(viewer_client, wf):
    make_execution(wf)
    text = page(viewer_client, "?triage=investigating&status=failed")
    assert re.search(r'<option value="investigating" selected>Investigating</option>', text)
    assert '<option value="none">Not triaged</option>' in text
    chip = re.search(
        r'<a href="([^"]+)" title="Remove this filter" data-filter="triage">([^<]+)', text
    )
    assert chip and "triage “Investigating”" in chip.group(2)
    assert "triage=" not in chip.group(1) and "status=failed" in chip.group(1)
    none = page(viewer_client, "?triage=none")
    assert 'data-filter="triage">not triaged' in none


def test_a_bad_triage_value_gets_a_message_and_the_other_filters_still_apply(viewer_client, wf):
    failed = make_execution(wf, status="Failed")
    make_execution(wf, status="Success")
    text = page(viewer_client, "?triage=closed&status=failed")
    assert "Unknown triage state “closed”: use open, investigating, false_positive" in text
    assert shown(viewer_client, "?triage=closed&status=failed") == ids(failed)
    assert 'data-filter="triage"' not in text


def test_the_count_under_a_triage_filter_follows_a_triage_change_at_once(
    viewer_client, django_user_model, wf, django_capture_on_commit_callbacks
):
    executions = [make_execution(wf, ago=timedelta(minutes=i + 1)) for i in range(3)]
    triage(executions[0], "open")
    assert _all_count(page(viewer_client, "?triage=open")) == 1
    assert _all_count(page(viewer_client, "?triage=none")) == 2

    # A triage edit is no mirror write: the counts cached for these filters must still move.
    runner = django_user_model.objects.create_user(username="rita.runner")
    runner.groups.add(runners_group())
    runner_client = Client()
    runner_client.force_login(runner)
    with django_capture_on_commit_callbacks(execute=True):
        response = runner_client.post(triage_url(executions[1]), {"state": "open"}, **HTMX)
    assert response.status_code == 200
    assert _all_count(page(viewer_client, "?triage=open")) == 2
    assert _all_count(page(viewer_client, "?triage=none")) == 1
    assert len(shown(viewer_client, "?triage=open")) == 2


def _all_count(text: str) -> int:
    found = re.search(r'class="count count-all"[^>]*><span class="n">(\d+)</span>', text)
    assert found
    return int(found.group(1))


def _queries(client, url: str) -> int:
    cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_badges_and_the_filter_cost_no_query_of_their_own(viewer_client):
    fill_mirror(120)
    viewer_client.get("/executions/")  # the session and the user
    untriaged = _queries(viewer_client, "/executions/?range=all")
    for i, execution in enumerate(Execution.objects.order_by("-started_at")[:60]):
        triage(execution, ("open", "investigating", "resolved")[i % 3])

    text = viewer_client.get("/executions/?range=all").content.decode()
    assert len([b for b in badges(text).values() if b]) == 50  # the whole first page
    assert _queries(viewer_client, "/executions/?range=all") == untriaged <= 10
    assert _queries(viewer_client, "/executions/?range=all&triage=open") <= 10
    assert _queries(viewer_client, "/executions/?range=all&triage=none") <= 10


# --- /failures/ -----------------------------------------------------------------------------


def test_each_failure_group_says_how_many_are_triaged_and_open(viewer_client, wf):
    message = "AccessDenied: not authorized to perform ec2:StopInstances on i-0{}"
    group = [_failed(wf, message.format(f"{i:015x}"), ago=timedelta(hours=i + 1)) for i in range(4)]
    other = _failed(wf, "ThrottlingException: Rate exceeded", ago=timedelta(hours=2))
    triage(group[0], "open")
    triage(group[1], "resolved")
    triage(group[2], "open")

    found = groups(viewer_client)
    row = found[group[0].failure_key]
    assert 'data-triaged="3" data-open="2"' in row
    assert ">3 triaged</span>" in row and 'title="2 open, 1 resolved"' in row
    open_link = re.search(r'<a class="triage-open-count" href="([^"]+)"[^>]*>2 open</a>', row)
    rest = re.search(r'<a class="triage-untriaged" href="([^"]+)"[^>]*>1 untriaged</a>', row)
    assert open_link and rest
    # The links list exactly those executions.
    assert set(listed(viewer_client, open_link.group(1))) == set(ids(group[0], group[2]))
    assert listed(viewer_client, rest.group(1)) == ids(group[3])
    assert 'data-triaged="0"' in found[other.failure_key]
    assert "none triaged" in found[other.failure_key]


def test_the_failures_page_stays_bounded_with_triaged_groups(
    viewer_client, wf, django_assert_max_num_queries
):
    for i in range(30):
        execution = _failed(wf, f"Error{i}Kind: something {i} went wrong", node=f"node-{i}")
        if i % 2:
            triage(execution, "investigating")
    viewer_client.get("/failures/")  # warm the session and the user
    with django_assert_max_num_queries(14):
        response = viewer_client.get("/failures/")
    found = dict(GROUP.findall(response.content.decode()))
    assert len(found) == 30
    assert sum('data-triaged="1"' in row for row in found.values()) == 15


def test_triage_counts_cover_only_the_range_shown(viewer_client, wf):
    message = "AccessDenied: not authorized on i-0{}"
    recent = _failed(wf, message.format("aaaaaaaaaaaaaaa"), ago=timedelta(hours=1))
    old = _failed(wf, message.format("bbbbbbbbbbbbbbb"), ago=timedelta(days=3))
    triage(old, "resolved")
    row = groups(viewer_client)[recent.failure_key]  # 24 h by default
    assert 'data-triaged="0"' in row
    assert 'data-triaged="1"' in groups(viewer_client, "?range=7d")[recent.failure_key]


def test_an_unknown_id_in_the_triage_table_changes_nothing(viewer_client, wf):
    Triage.objects.create(execution_id=uuid.uuid4(), state="open")  # never mirrored
    execution = make_execution(wf, ago=timedelta(minutes=5))
    assert shown(viewer_client, "?triage=none") == ids(execution)
    assert shown(viewer_client, "?triage=open") == []
