"""In a real browser: after reading payloads and signing out, the browser keeps no copy."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.test_browser_executions import ROWS, seed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STORAGE = """() => {
  const dump = (s) => Object.keys(s).map((k) => k + "=" + s.getItem(k)).join("\\n");
  return dump(window.sessionStorage) + "\\n" + dump(window.localStorage);
}"""


def test_after_htmx_navigation_and_sign_out_the_browser_storage_holds_no_page(
    page, live_server, viewer, login
):
    made = seed()
    login(page, viewer)
    page.goto(f"{live_server.url}/executions/")
    expect(page.locator(ROWS)).to_have_count(9)
    page.evaluate("window.__marker = 1")

    # htmx navigation: the filter changes the URL (hx-push-url) without a reload.
    page.get_by_label("Failed", exact=True).check()
    expect(page.locator(ROWS)).to_have_count(5)
    page.locator("#filters a.chip", has_text="24 h").click()
    expect(page.locator(ROWS)).to_have_count(3)
    assert page.evaluate("window.__marker") == 1, "htmx navigated without a reload"
    an_id = made["failed_24h"][0]
    assert an_id not in page.evaluate(STORAGE), "no snapshot while signed in either"

    # Back and forward still work: the page is fetched again.
    page.go_back()
    expect(page.locator(ROWS)).to_have_count(5)
    page.go_forward()
    expect(page.locator(ROWS)).to_have_count(3)
    expect(page).to_have_url(re.compile(r"range=24h"))

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    stored = page.evaluate(STORAGE)
    assert "htmx-history-cache" not in stored
    for execution_id in made["failed_24h"] + made["failed_old"]:
        assert execution_id not in stored

    # And going back after signing out shows the login, not the list.
    page.go_back()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    assert page.locator(ROWS).count() == 0
