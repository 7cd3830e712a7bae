"""In a real browser: from "what is failing?" to the executions of one failure group."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.test_executions_list import make_execution, make_workflow
from tests.test_mirror_failures import _failed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROWS = "#results tbody tr[data-execution-id]"


def test_an_analyst_finds_the_failing_cause_and_lists_its_executions(
    page, live_server, viewer, login
):
    wf = make_workflow()
    state = "IncorrectInstanceState: The instance 'i-0{}' is not in a state to be stopped."
    group = [
        _failed(wf, state.format("663d3f3e572608d5"), ago=timedelta(hours=2)),
        _failed(wf, state.format("c6024ad8375f39ef"), ago=timedelta(hours=1)),
    ]
    other = _failed(wf, "ThrottlingException: Rate exceeded", ago=timedelta(hours=3))
    make_execution(wf, status="Success")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    login(page, viewer)
    page.goto(f"{live_server.url}/executions/")
    # The list already says why each failed row failed.
    row = page.locator(f'tr[data-execution-id="{group[1].id}"]')
    expect(row.locator("[data-failure]")).to_contain_text("Stop instances")
    expect(row.locator("[data-failure]")).to_contain_text("IncorrectInstanceState")

    page.get_by_role("link", name="Failures", exact=True).click()
    expect(page).to_have_url(re.compile(r"/failures/$"))
    groups = page.locator("tr[data-failure-key]")
    expect(groups).to_have_count(2)
    first = groups.first  # most failures first
    expect(first.locator(".group-count")).to_have_text("2")
    expect(first).to_contain_text("The instance '<name>' is not in a state")
    expect(first.locator(".badge-new")).to_be_visible()
    first.get_by_text("Example error").click()
    expect(first.locator(".group-example pre")).to_contain_text("i-0c6024ad8375f39ef")

    first.locator(".group-count").click()
    expect(page.locator(ROWS)).to_have_count(2)
    shown = set(page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.executionId)"))
    assert shown == {str(e.id) for e in group}
    assert str(other.id) not in shown
    chip = page.locator('[data-filter="failure"]')
    expect(chip).to_contain_text("Stop instances")
    chip.click()
    expect(page.locator(ROWS)).to_have_count(4)
    page.screenshot(path="/tmp/browser-failures-list.png")
    # The whole row opens the execution (here: a click on its duration).
    page.locator(f'tr[data-execution-id="{other.id}"] td.col-num').click()
    expect(page).to_have_url(re.compile(rf"/executions/{other.id}/$"))
    assert problems == []
