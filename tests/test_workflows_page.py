"""/workflows/: every mirrored workflow with its last run, success rates over 7 and 30 days,
p50/p95 durations, last failure and a per-day strip, worst first; from the mirror, in a fixed
number of queries."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from qflowui.triage.workflows import percentiles_sql, percentiles_window
from tests.test_executions_list import make_execution, make_workflow, shown
from tests.test_mirror_failures import _failed

pytestmark = pytest.mark.django_db

ROW = re.compile(r'<tr data-workflow-id="([0-9a-f-]{36})"[^>]*>(.*?)</tr>', re.S)


def rows(client, query: str = "") -> dict[str, str]:
    """The rows of the page, in order: workflow id -> its row's HTML."""
    response = client.get(f"/workflows/{query}")
    assert response.status_code == 200
    return dict(ROW.findall(response.content.decode()))


def cell(row: str, window: str) -> tuple[str, str]:
    """(the success rate, its detail) of the 7d or 30d cell."""
    match = re.search(
        rf'data-window="{window}">\s*<span class="rate[^"]*">([^<]*)</span>\s*'
        r'<span class="rate-detail">([^<]*)</span>',
        row,
    )
    assert match, row
    return match.group(1), match.group(2)


@pytest.fixture
def mirror():
    """Four workflows: one failing, one healthy, one idle for 10 days, one that never ran."""
    now = timezone.now()
    aws = make_workflow()  # "Stop publicly exposed EC2 instances"
    # Last 7 days: 3 successes, 1 failure (mirrored steps), 1 still running.
    for minutes, seconds in ((120, 10), (180, 20), (240, 30)):
        make_execution(aws, ago=timedelta(minutes=minutes), duration_ms=seconds * 1000)
    failure = _failed(
        aws, "AccessDenied: not authorized", ago=timedelta(minutes=60), duration_ms=40_000
    )
    make_execution(aws, status="Running", ago=timedelta(minutes=5))
    # 8 to 30 days back: 2 successes, a cancelled and a timed-out run.
    make_execution(aws, ago=timedelta(days=10), duration_ms=50_000)
    make_execution(aws, ago=timedelta(days=12), duration_ms=60_000)
    make_execution(aws, status="Cancelled", ago=timedelta(days=15), duration_ms=70_000)
    make_execution(aws, status="Timed out", ago=timedelta(days=20), duration_ms=80_000)
    # Older than 30 days: counted nowhere.
    make_execution(aws, ago=timedelta(days=40), duration_ms=9_000_000)
    make_execution(aws, status="Failed", ago=timedelta(days=45))

    azure = make_workflow(name="Close open NSG ports", cloud="Azure")
    make_execution(azure, ago=timedelta(minutes=2), duration_ms=5_000, cloud="Azure")
    make_execution(azure, ago=timedelta(days=1), duration_ms=7_000, cloud="Azure")

    gcp = make_workflow(name="Rotate GCP service account keys", cloud="GCP")
    make_execution(gcp, ago=timedelta(days=10), duration_ms=3_000, cloud="GCP")

    oci = make_workflow(name="Never triggered OCI cleanup", cloud="OCI")
    return {"aws": aws, "azure": azure, "gcp": gcp, "oci": oci, "failure": failure, "now": now}


def test_the_figures_match_the_mirror(viewer_client, mirror):
    found = rows(viewer_client)
    aws = found[str(mirror["aws"].pk)]
    # 7 days: 3 of 4 finished succeeded (the running one is counted as a run only).
    assert cell(aws, "7d") == ("75 %", "3/4 ok · 5 runs")
    # 30 days: 5 of 8 finished (cancelled and timed out count as not successful): 62.5 %.
    assert cell(aws, "30d") == ("62 %", "5/8 ok · 9 runs")
    # Durations of the 8 finished in 30 days: 10..80 s; percentile_cont: p50 = 45 s,
    # p95 = 70 + 0.65 * 10 = 76.5 s.
    assert 'data-p50="45000"' in aws and 'data-p95="76500"' in aws
    assert ">45 s<" in aws and ">1 m 16 s<" in aws
    # The last execution is the running one; the last failure names its step.
    assert 'class="badge badge-running">Running</span>' in aws
    assert 'class="wf-failure-step" title="The step that failed">Stop instances</span>' in aws
    failure = mirror["failure"]
    assert f'href="/executions/{failure.pk}/?step=node-stop"' in aws
    assert "badge-idle" not in aws

    azure = found[str(mirror["azure"].pk)]
    assert cell(azure, "7d") == ("100 %", "2/2 ok · 2 runs")
    assert cell(azure, "30d") == ("100 %", "2/2 ok · 2 runs")
    assert 'data-p50="6000"' in azure and 'data-p95="6900"' in azure
    assert 'class="wf-failure"' in azure and "Stop instances" not in azure

    gcp = found[str(mirror["gcp"].pk)]
    assert cell(gcp, "7d") == ("—", "0 runs")
    assert cell(gcp, "30d") == ("100 %", "1/1 ok · 1 run")
    assert "idle 7 d+" in gcp

    oci = found[str(mirror["oci"].pk)]
    assert cell(oci, "7d") == ("—", "0 runs") and cell(oci, "30d") == ("—", "0 runs")
    assert "never ran" in oci and "data-p50" not in oci

    page = viewer_client.get("/workflows/").content.decode()
    assert "<strong>4 workflows</strong>" in page
    assert "1 whose last run failed" not in page  # the AWS one is running again
    assert "2 idle 7 d+ or never run" in page


def test_the_strip_has_a_bar_per_day_coloured_by_status(viewer_client, mirror):
    aws = rows(viewer_client)[str(mirror["aws"].pk)]
    titles = re.findall(r"<title>([^<]+)</title>", aws)
    assert len(titles) == 30
    today = timezone.localdate().strftime("%Y-%m-%d")
    assert titles[-1].startswith(today)
    counted = 0
    for title in titles:
        counted += sum(int(n) for n in re.findall(r"(\d+) [a-z]", title.split(": ", 1)[1]))
    assert counted == 9  # the executions of the last 30 days (local days), none older
    assert "1 failed" in " ".join(titles) and "1 timed out" in " ".join(titles)
    assert 'class="bar-failed"' in aws and 'class="bar-success"' in aws
    assert 'class="bar-timed_out"' in aws and 'class="bar-cancelled"' in aws
    assert "style=" not in aws
    never = rows(viewer_client)[str(mirror["oci"].pk)]
    assert never.count("no execution</title>") == 30


def test_the_last_run_that_failed_marks_the_row(viewer_client):
    wf = make_workflow()
    make_execution(wf, ago=timedelta(hours=3))
    _failed(wf, "ThrottlingException: Rate exceeded", ago=timedelta(minutes=3))
    row = rows(viewer_client)[str(wf.pk)]
    assert 'class="badge badge-failed">Failed</span>' in row
    page = viewer_client.get("/workflows/").content.decode()
    assert 'class="wf-failing"' in page
    assert "1 whose last run failed" in page


def test_sort_orders(viewer_client, mirror):
    aws, azure, gcp, oci = (str(mirror[k].pk) for k in ("aws", "azure", "gcp", "oci"))
    # Default: failure rate over 7 days, highest first; no data last.
    assert list(rows(viewer_client)) == [aws, azure, gcp, oci]
    assert list(rows(viewer_client, "?sort=failures")) == [aws, azure, gcp, oci]
    assert list(rows(viewer_client, "?sort=last")) == [azure, aws, gcp, oci]
    assert list(rows(viewer_client, "?sort=name")) == [azure, oci, gcp, aws]
    # The order chips keep the filters and name the current order.
    page = viewer_client.get("/workflows/?sort=name&cloud=Azure").content.decode()
    assert re.search(r'href="/workflows/\?cloud=Azure&amp;sort=last"[^>]*data-sort="last"', page)
    assert re.search(r'data-sort="name" aria-current="true"', page)


def test_a_bad_order_gets_a_message_and_the_default_order(viewer_client, mirror):
    response = viewer_client.get("/workflows/?sort=%3Cb%3Eworst")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Unknown order “&lt;b&gt;worst”: use failures, last or name." in html
    assert "<b>worst" not in html
    assert next(iter(dict(ROW.findall(html)))) == str(mirror["aws"].pk)


def test_filters_by_cloud_and_name(viewer_client, mirror):
    assert list(rows(viewer_client, "?cloud=Azure")) == [str(mirror["azure"].pk)]
    assert list(rows(viewer_client, "?q=nsg")) == [str(mirror["azure"].pk)]
    assert list(rows(viewer_client, "?q=o&cloud=GCP")) == [str(mirror["gcp"].pk)]
    assert rows(viewer_client, "?cloud=Alibaba") == {}
    page = viewer_client.get("/workflows/").content.decode()
    select = page.split('id="wf-cloud"')[1].split("</select>")[0]
    options = re.findall(r'<option value="([^"]*)"', select)
    assert options == ["", "AWS", "Azure", "GCP", "OCI"]
    empty = viewer_client.get("/workflows/?q=nothing-like-this").content.decode()
    assert "No workflow in the mirror matches these filters." in empty


def test_links_to_executions_and_to_run_for_runners_only(viewer_client, mirror, django_user_model):
    aws = mirror["aws"]
    row = rows(viewer_client)[str(aws.pk)]
    link = re.search(r'href="([^"]+)" data-action="executions"', row).group(1)
    assert link == f"/executions/?workflow={aws.pk}&amp;range=30d"
    assert len(shown(viewer_client, f"?workflow={aws.pk}&range=30d")) == 9
    assert 'data-action="run"' not in row  # a Viewer may look, not run

    runner = django_user_model.objects.create_user("rex.runner", password="x" * 16)
    runner.groups.add(Group.objects.get(name="Runners"))
    viewer_client.force_login(runner)
    row = rows(viewer_client)[str(aws.pk)]
    assert f'href="/runs/new/?workflow={aws.pk}" data-action="run"' in row


def test_htmx_gets_the_results_and_the_current_order(viewer_client, mirror):
    response = viewer_client.get("/workflows/?sort=name", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "<html" not in html and 'id="results"' in html
    assert 'id="wf-sort" name="sort" value="name" hx-swap-oob="true"' in html
    assert "HX-Request" in response["Vary"]
    full = viewer_client.get("/workflows/?sort=name").content.decode()
    assert 'id="wf-sort" name="sort" value="name">' in full and "hx-swap-oob" not in full


def test_hostile_names_and_steps_are_escaped(viewer_client):
    wf = make_workflow(name="<script>alert(1)</script>", cloud='"><svg onload=alert(3)>')
    _failed(wf, "<img src=x onerror=alert(2)> broke", name="<b>bold</b>")
    html = viewer_client.get("/workflows/").content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<svg onload" not in html
    assert "<img src=x" not in html


def test_only_the_team_sees_workflows(client, django_user_model):
    user = django_user_model.objects.create_user("outsider", password="x" * 12)
    make_workflow(name="Secret workflow name")
    client.force_login(user)
    response = client.get("/workflows/")
    assert response.status_code == 403
    assert "Secret workflow name" not in response.content.decode()
    assert "/workflows/" not in response.content.decode().split("<main")[0]
    client.logout()
    response = client.get("/workflows/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_nav_links_to_workflows(viewer_client):
    html = viewer_client.get("/workflows/").content.decode()
    assert '<a href="/workflows/" aria-current="page">Workflows</a>' in html


def _populate(n_workflows: int, per_workflow: int) -> None:
    for i in range(n_workflows):
        wf = make_workflow(name=f"Workflow {i:03d}", cloud=("AWS", "Azure", "GCP")[i % 3])
        for j in range(per_workflow):
            status = ("Success", "Failed", "Running", "Timed out")[j % 4]
            make_execution(wf, status=status, ago=timedelta(hours=7 * j + i), duration_ms=j * 1000)


def test_a_bounded_number_of_queries_whatever_the_workflows(
    viewer_client, django_assert_max_num_queries
):
    _populate(2, 3)
    viewer_client.get("/workflows/")  # warm the session and the user
    with CaptureQueriesContext(connection) as small:
        viewer_client.get("/workflows/")
    _populate(40, 12)
    with django_assert_max_num_queries(12):
        found = rows(viewer_client)
    assert len(found) == 42
    with CaptureQueriesContext(connection) as large:
        viewer_client.get("/workflows/")
    assert len(large) == len(small)


def test_window_percentiles_equal_percentile_cont():
    """The portable computation (SQLite) gives percentile_cont's figures exactly."""
    now = timezone.now()
    sets = {
        "one": [1234],
        "two": [1000, 2000],
        "odd": [5, 1, 9, 3, 7, 100_000, 42],
        "many": [(i * 7919) % 1009 * 10 for i in range(1, 58)],
        "ties": [500, 500, 500, 700],
    }
    ids = {}
    for name, durations in sets.items():
        wf = make_workflow(name=name)
        ids[name] = str(wf.pk)
        for d in durations:
            make_execution(wf, duration_ms=d, ago=timedelta(hours=2))
        make_execution(wf, status="Running", ago=timedelta(hours=1))  # no duration: left out
    keys = [uuid.UUID(i) for i in ids.values()]
    window = percentiles_window(keys, now)

    def cont(values: list[int], p: int) -> int:
        values = sorted(values)
        k = p * (len(values) - 1) / 100
        low = int(k)
        high = min(low + 1, len(values) - 1)
        return round(values[low] + (values[high] - values[low]) * (k - low))

    for name, durations in sets.items():
        assert window[ids[name]] == (cont(durations, 50), cont(durations, 95)), name
    assert window[ids["odd"]] == (7, 70_013)  # 42 + 0.7 * (100000 - 42) = 70012.6
    if connection.vendor == "postgresql":
        assert percentiles_sql(keys, now) == window
