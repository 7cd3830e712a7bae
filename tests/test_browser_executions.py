"""In a real browser: filter the executions list without a reload, share the link, go back."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, Workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROWS = "#results tbody tr[data-execution-id]"


def seed() -> dict[str, list[str]]:
    now = timezone.now()
    ec2 = Workflow.objects.create(id=uuid.uuid4(), name="Stop public EC2 instances", cloud="AWS")
    rds = Workflow.objects.create(id=uuid.uuid4(), name="Encrypt RDS snapshots", cloud="AWS")
    made: dict[str, list[str]] = {}
    plan = [
        ("Failed", timedelta(hours=2), ec2, "failed_24h"),
        ("Failed", timedelta(hours=5), rds, "failed_24h"),
        ("Failed", timedelta(hours=9), ec2, "failed_24h"),
        ("Failed", timedelta(days=3), rds, "failed_old"),
        ("Failed", timedelta(days=4), ec2, "failed_old"),
        ("Success", timedelta(hours=1), ec2, "success"),
        ("Success", timedelta(hours=3), rds, "success"),
        ("Success", timedelta(days=2), rds, "success"),
        ("Running", timedelta(minutes=4), ec2, "running"),
    ]
    for status, ago, wf, key in plan:
        execution = Execution.objects.create(
            id=uuid.uuid4(),
            workflow=wf,
            status=status,
            status_class=st.status_class(status),
            is_terminal=status != "Running",
            started_at=now - ago,
            duration_ms=None if status == "Running" else 65_000,
            source="PUBLIC_API",
            cloud="AWS",
            region="us-east-1",
            last_synced_at=now,
        )
        made.setdefault(key, []).append(str(execution.id))
    return made


def shown_ids(page) -> set[str]:
    return set(page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.executionId)"))


def bar_total(page) -> int:
    titles = page.locator("#results svg rect.bar title").all_text_contents()
    return sum(int(re.search(r": (\d+) ", t).group(1)) for t in titles)


def test_an_analyst_narrows_to_recent_failures_shares_the_link_and_goes_back(
    page, live_server, viewer, login
):
    made = seed()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    login(page, viewer)
    page.goto(f"{live_server.url}/executions/")
    expect(page.locator(ROWS)).to_have_count(9)
    page.evaluate("window.__marker = 1")

    page.get_by_label("Failed", exact=True).check()
    expect(page.locator(ROWS)).to_have_count(5)
    expect(page).to_have_url(re.compile(r"status=failed"))
    assert "q=" not in page.url, "empty filter fields stay out of shared links"
    assert shown_ids(page) == set(made["failed_24h"] + made["failed_old"])
    assert bar_total(page) == 5

    page.locator("#filters a.chip", has_text="24 h").click()
    expect(page.locator(ROWS)).to_have_count(3)
    expect(page).to_have_url(re.compile(r"range=24h"))
    assert "status=failed" in page.url
    assert shown_ids(page) == set(made["failed_24h"])
    assert bar_total(page) == 3
    expect(page.locator("#results figcaption")).to_contain_text("per hour")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"

    shared = page.context.new_page()
    shared.goto(page.url)
    expect(shared.locator(ROWS)).to_have_count(3)
    assert shown_ids(shared) == set(made["failed_24h"])
    expect(shared.locator("#filters a.chip[aria-current=true]")).to_have_text("24 h")
    expect(shared.get_by_label("Failed", exact=True)).to_be_checked()
    shared.close()

    page.go_back()
    expect(page.locator(ROWS)).to_have_count(5)
    assert shown_ids(page) == set(made["failed_24h"] + made["failed_old"])
    assert "range=24h" not in page.url
    # Back fetches the page again: htmx keeps no snapshot of it in the browser.
    page.evaluate("window.__marker = 1")

    # A count is a link that adds its status to the filter, also without a reload.
    page.locator("#results a.count-success").click()
    expect(page.locator(ROWS)).to_have_count(8)
    expect(page).to_have_url(re.compile(r"status=success"))
    expect(page.get_by_label("Success", exact=True)).to_be_checked()
    assert page.evaluate("window.__marker") == 1
    assert problems == []


def test_the_copy_button_copies_the_full_execution_id(page, live_server, viewer, login):
    made = seed()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    login(page, viewer)
    page.goto(f"{live_server.url}/executions/?status=running")
    row = page.locator(ROWS).first
    ident = made["running"][0]
    expect(row.locator("a.mono")).to_have_text(ident[:8])
    row.locator("button.copy").click()
    expect(row.locator("button.copy")).to_have_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == ident
