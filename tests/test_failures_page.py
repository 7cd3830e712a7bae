"""/failures/: failed and timed-out executions grouped by workflow, failing step and error
signature, each group with its count, first/last seen, sparkline, what it touched, an example
and a link to exactly its executions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from qflowui.mirror.models import Execution
from tests.test_executions_list import make_execution, make_workflow, shown
from tests.test_mirror_failures import _failed

pytestmark = pytest.mark.django_db

GROUP = re.compile(r'<tr data-failure-key="([0-9a-f]{16})">(.*?)</tr>', re.S)
DENIED = (
    "AccessDenied: User: arn:aws:sts::{account}:assumed-role/QFLOW_1/qflow-1a2b3c4d is not "
    "authorized to perform: ec2:StopInstances on resource: arn:aws:ec2:{region}:{account}:"
    "instance/{instance}"
)


def groups(client, query: str = "") -> dict[str, str]:
    response = client.get(f"/failures/{query}")
    assert response.status_code == 200
    return dict(GROUP.findall(response.content.decode()))


def _denied(wf, instance, account="123456789012", region="us-east-1", **kw):
    message = DENIED.format(account=account, region=region, instance=instance)
    return _failed(wf, message, region=region, **kw)


def test_errors_that_differ_only_by_ids_are_one_group_with_the_right_count(viewer_client):
    wf = make_workflow()
    a = _denied(wf, "i-0663d3f3e572608d5", ago=timedelta(hours=2))
    b = _denied(wf, "i-0c6024ad8375f39ef", account="210987654321", ago=timedelta(hours=1))
    c = _denied(wf, "i-0aaaabbbbccccdddd", region="eu-west-1", ago=timedelta(minutes=5))
    throttled = _failed(wf, "ThrottlingException: Rate exceeded", ago=timedelta(hours=3))
    make_execution(wf, status="Success")
    make_execution(wf, status="Failed", ago=timedelta(hours=1))  # steps not fetched yet

    found = groups(viewer_client)
    assert set(found) == {a.failure_key, throttled.failure_key}
    row = found[a.failure_key]
    assert re.search(r'class="group-count"[^>]*>3</a>', row)
    assert "Stop publicly exposed EC2 instances" in row and "Stop instances" in row
    assert "AccessDenied: User: &lt;arn&gt; is not authorized" in row  # the pattern
    # The example is the newest error in full; what the group touched is listed.
    assert "i-0aaaabbbbccccdddd" in row
    assert "<code>eu-west-1</code>" in row and "<code>us-east-1</code>" in row
    assert "<code>123456789012</code>" in row and "<code>210987654321</code>" in row
    assert 'class="badge badge-new"' in row
    assert re.search(r'class="group-count"[^>]*>1</a>', found[throttled.failure_key])

    page = viewer_client.get("/failures/").content.decode()
    assert "<strong>5 failed or timed-out executions</strong>" in page
    assert "<strong>2 groups</strong>" in page
    assert "1 not grouped yet" in page

    # Its link lists exactly those executions.
    link = re.search(r'class="group-count" href="([^"]+)"', row).group(1).replace("&amp;", "&")
    assert f"failure={a.failure_key}" in link
    assert sorted(shown(viewer_client, link.split("/executions/", 1)[1])) == sorted(
        str(e.id) for e in (a, b, c)
    )
    assert b.failure_key == a.failure_key == c.failure_key


def test_groups_sort_by_count_or_by_last_seen_and_old_groups_are_not_new(viewer_client):
    wf = make_workflow()
    old = _failed(wf, "ThrottlingException: Rate exceeded", ago=timedelta(days=5))
    _failed(wf, "ThrottlingException: Rate exceeded", ago=timedelta(hours=20))
    _failed(wf, "ThrottlingException: Rate exceeded", ago=timedelta(hours=10))
    recent = _failed(wf, "ExpiredToken: The security token is expired", ago=timedelta(minutes=1))

    by_count = list(groups(viewer_client, "?range=7d"))
    assert by_count == [old.failure_key, recent.failure_key]
    by_last = list(groups(viewer_client, "?range=7d&sort=last"))
    assert by_last == [recent.failure_key, old.failure_key]

    found = groups(viewer_client, "?range=24h")
    # Seen 5 days ago already: not new, and its first sighting is shown though out of range.
    assert "badge-new" not in found[old.failure_key]
    assert "before this range" in found[old.failure_key]
    assert re.search(r'class="group-count"[^>]*>2</a>', found[old.failure_key])
    assert "badge-new" in found[recent.failure_key]


def test_the_sparkline_has_a_bar_per_hour_with_the_counts(viewer_client):
    wf = make_workflow()
    now = timezone.now()
    # Two failures in the same (previous) hour whatever the minute the test runs at, one apart.
    into_hour = now.minute
    for minutes in (into_hour + 20, into_hour + 30, 190 + into_hour):
        e = _failed(wf, "ThrottlingException: Rate exceeded", ago=timedelta(minutes=minutes))
    row = groups(viewer_client, "?range=24h")[e.failure_key]
    titles = re.findall(r"<title>([^<]+)</title>", row)
    assert len(titles) in (24, 25)
    counts = [int(re.search(r": (\d+) failure", t).group(1)) for t in titles]
    assert sum(counts) == 3 and max(counts) == 2
    assert now.strftime("%Y-%m-%d") in titles[-1] or len(titles) == 25


def test_filters_narrow_the_groups_and_bad_values_get_a_message(viewer_client):
    aws = make_workflow()
    azure = make_workflow(name="Close open NSG ports", cloud="Azure")
    a = _failed(aws, "ThrottlingException: Rate exceeded")
    z = _failed(azure, "TooManyRequests: throttled", cloud="Azure", region="westeurope")
    assert set(groups(viewer_client, "?cloud=Azure")) == {z.failure_key}
    assert set(groups(viewer_client, f"?workflow={aws.pk}")) == {a.failure_key}
    assert set(groups(viewer_client, "?region=us-east-1")) == {a.failure_key}
    bad = viewer_client.get("/failures/?range=5y&workflow=nope&sort=name").content.decode()
    assert "Unknown range “5y”" in bad and "is not a workflow id" in bad
    assert "Unknown order “name”" in bad
    assert set(dict(GROUP.findall(bad))) == {a.failure_key, z.failure_key}


def test_hostile_text_is_escaped(viewer_client):
    wf = make_workflow(name="<script>alert(1)</script>")
    _failed(wf, "<img src=x onerror=alert(2)> broke", name="<b>bold</b>")
    html = viewer_client.get("/failures/").content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "<b>bold</b>" not in html
    assert "&lt;img src=x onerror=alert(&lt;n&gt;)&gt; broke" in html


def test_a_bounded_number_of_queries_whatever_the_groups(
    viewer_client, django_assert_max_num_queries
):
    wf = make_workflow()
    for i in range(30):
        _failed(wf, f"Error{i}Kind: something {i} went wrong", node=f"node-{i}")
    viewer_client.get("/failures/")  # warm the session and the user
    with django_assert_max_num_queries(14):
        found = groups(viewer_client)
    assert len(found) == 30


def test_nothing_failed_says_so(viewer_client):
    make_execution(make_workflow(), status="Success")
    html = viewer_client.get("/failures/").content.decode()
    assert "No failed or timed-out execution" in html


def test_only_the_team_sees_failures(client, django_user_model):
    user = django_user_model.objects.create_user("outsider", password="x" * 12)
    client.force_login(user)
    assert client.get("/failures/").status_code == 403
    client.logout()
    response = client.get("/failures/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert Execution.objects.count() == 0
