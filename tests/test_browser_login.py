"""In a real browser: sign in and see the workflows QFlow (the simulator) reports."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_user_signs_in_and_sees_the_workflows_page(page, live_server, simulator, viewer, login):
    page.goto(f"{live_server.url}/executions/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/executions/")
    expect(page.get_by_role("heading", name="Sign in to qflowui")).to_be_visible()

    login(page, viewer)

    expect(page).to_have_url(f"{live_server.url}/executions/")
    expect(page.locator("header .who")).to_have_text(viewer.username)
    rows = page.locator("#workflows tbody tr[data-workflow-id]")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 12
    expect(
        page.get_by_text("Stop publicly exposed EC2 instances", exact=False).first
    ).to_be_visible()


def test_no_script_error_or_csp_violation_on_the_login_page(page, live_server):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{live_server.url}/accounts/login/")
    expect(page.locator("#id_username")).to_be_visible()
    page.wait_for_function("() => window.htmx !== undefined")
    assert problems == []
