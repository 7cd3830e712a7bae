"""In a real browser: sign in and land on the executions of the mirror."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from qflowui.mirror.sync import mirror_sync

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_user_signs_in_and_sees_the_mirrored_executions(
    page, live_server, simulator, viewer, login
):
    run = mirror_sync()
    assert run.ok, run.error

    page.goto(f"{live_server.url}/executions/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/executions/")
    expect(page.get_by_role("heading", name="Sign in to qflowui")).to_be_visible()

    login(page, viewer)

    expect(page).to_have_url(f"{live_server.url}/executions/")
    expect(page.locator("header .who")).to_have_text(viewer.username)
    rows = page.locator("#results tr[data-execution-id]")
    expect(rows.first).to_be_visible()
    assert rows.count() == 50
    expect(page.locator(".synced").first).to_contain_text("synced")


def test_no_script_error_or_csp_violation_on_the_login_page(page, live_server):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{live_server.url}/accounts/login/")
    expect(page.locator("#id_username")).to_be_visible()
    page.wait_for_function("() => window.htmx !== undefined")
    assert problems == []
