"""In a real browser: from the nav to the workflow that fails most, and on to its executions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.test_executions_list import make_execution, make_workflow
from tests.test_mirror_failures import _failed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WORKFLOWS = "#results tbody tr[data-workflow-id]"
EXECUTIONS = "#results tbody tr[data-execution-id]"


def _mirror():
    ec2 = make_workflow()  # "Stop publicly exposed EC2 instances": failing now
    for hours in (30, 54, 100):
        make_execution(ec2, ago=timedelta(hours=hours), duration_ms=41_000)
    _failed(ec2, "ThrottlingException: Rate exceeded", ago=timedelta(hours=6))
    _failed(ec2, "AccessDenied: not authorized", ago=timedelta(minutes=12), duration_ms=9_000)
    make_execution(ec2, ago=timedelta(days=40))  # outside the 30 days: not listed
    s3 = make_workflow(name="Tag untagged S3 buckets")
    for day in range(0, 28, 2):
        make_execution(s3, ago=timedelta(days=day, hours=3), duration_ms=12_000 + day * 500)
    _failed(s3, "NoSuchBucket: gone", ago=timedelta(days=3), duration_ms=3_000)
    nsg = make_workflow(name="Close open NSG ports", cloud="Azure")
    for hours in (1, 20, 44, 70):
        make_execution(nsg, ago=timedelta(hours=hours), duration_ms=65_000, cloud="Azure")
    host = make_workflow(name="Quarantine compromised host")
    make_execution(host, ago=timedelta(days=11), duration_ms=230_000)
    make_execution(host, status="Timed out", ago=timedelta(days=12), duration_ms=900_000)
    make_workflow(name="Disable stale service account keys", cloud="GCP")
    return ec2, s3, nsg


def test_an_analyst_finds_the_failing_workflow_and_lists_its_executions(
    page, live_server, viewer, login
):
    ec2, s3, nsg = _mirror()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.set_viewport_size({"width": 1440, "height": 900})

    login(page, viewer)
    page.goto(f"{live_server.url}/executions/")
    page.get_by_role("link", name="Workflows", exact=True).click()
    expect(page).to_have_url(re.compile(r"/workflows/$"))
    rows = page.locator(WORKFLOWS)
    expect(rows).to_have_count(5)
    # Worst first by default: the one whose last run failed, marked red.
    expect(rows.first).to_have_attribute("data-workflow-id", str(ec2.id))
    expect(rows.first).to_have_class(re.compile(r"\bwf-failing\b"))
    expect(rows.first.locator(".badge-failed")).to_be_visible()
    expect(rows.first.locator(".wf-failure-step")).to_have_text("Stop instances")
    expect(page.locator(".workflow-summary")).to_contain_text("1 whose last run failed")
    expect(page.locator("tr.wf-idle")).to_have_count(2)
    # caret="initial": hiding the caret leaves style="" on inputs, which htmx would copy
    # over at the next swap and the CSP would (rightly) refuse.
    page.screenshot(path="/tmp/workflows.png", full_page=True, caret="initial")

    # By name, then back to failure rate: htmx swaps the table and the address follows.
    page.get_by_role("link", name="Name", exact=True).click()
    expect(page).to_have_url(re.compile(r"/workflows/\?sort=name$"))
    expect(rows.first).to_have_attribute("data-workflow-id", str(nsg.id))
    # The filter form keeps the order chosen.
    page.select_option("#wf-cloud", "AWS")
    expect(page).to_have_url(re.compile(r"/workflows/\?cloud=AWS&sort=name$"))
    expect(rows).to_have_count(3)
    page.get_by_role("link", name="Failure rate", exact=True).click()
    expect(page).to_have_url(re.compile(r"/workflows/\?cloud=AWS$"))
    expect(page.locator('[data-sort="failures"]')).to_have_attribute("aria-current", "true")
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.workflowId)")
    assert ids[:2] == [str(ec2.id), str(s3.id)]

    rows.first.locator('[data-action="executions"]').click()
    expect(page).to_have_url(re.compile(rf"/executions/\?workflow={ec2.id}&range=30d$"))
    expect(page.locator(EXECUTIONS)).to_have_count(5)
    assert problems == []
