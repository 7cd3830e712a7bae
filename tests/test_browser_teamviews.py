"""A browser saves the list's current filters as a team view and finds it in the navigation
with its live count."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from qflowui.teamviews.models import SavedView
from tests.test_teamviews_support import execution, workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_analyst_saves_prod_aws_failures_and_sees_it_in_the_nav_with_its_count(
    page, live_server, viewer, login
):
    aws, azure = workflow(), workflow("Azure VM audit", cloud="Azure")
    for _ in range(3):
        execution(aws, "Failed", step="Describe instances", error="AccessDenied for i-0abc")
    execution(aws, "Success")
    execution(azure, "Failed")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    login(page, viewer)
    page.goto(f"{live_server.url}/executions/?status=failed&cloud=AWS&range=24h&page=1")
    expect(page.locator("#results tbody tr[data-execution-id]")).to_have_count(3)

    page.locator("#save-view-box > summary").click()
    page.fill("#save-view-name", "Prod AWS failures")
    page.get_by_label("Share with the team").check()
    page.locator("#save-view button[type=submit]").click()

    expect(page.locator("#save-view-result")).to_contain_text("Saved “Prod AWS failures”")
    view = SavedView.objects.get()
    assert view.shared and view.query == "status=failed&range=24h&cloud=AWS"
    item = page.locator(f'[data-saved-view="{view.pk}"]')
    expect(item).to_contain_text("Prod AWS failures")  # the nav reloaded itself after the save
    expect(item).to_contain_text("· 3")
    page.locator("[data-views-menu] > summary").click()
    expect(item).to_be_visible()
    page.screenshot(path="/tmp/views-nav.png")

    item.click()
    expect(page.locator("#results tbody tr[data-execution-id]")).to_have_count(3)
    page.goto(f"{live_server.url}/views/{view.pk}/")
    expect(page.locator(".view-count")).to_contain_text("3 matching executions")
    page.screenshot(path="/tmp/views-page.png", full_page=True)
    assert problems == []
