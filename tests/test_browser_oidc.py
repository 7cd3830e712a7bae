"""In a real browser: "Sign in with …", the provider's own login and consent pages, back on
the executions list with the provider's groups as rights; removed from the runner group at the
provider, the next sign-in has no Run button. Sign-out goes through the provider's page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.oidc_support import *  # noqa: F403 - the fixtures
from tests.oidc_support import PROVIDER_NAME

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = "/tmp/oidc-login.png"


def provider_sign_in(page: Page, provider, login: str) -> None:
    """On the provider's pages: its login form, then its consent page when it asks."""
    expect(page.locator("input[name=login]")).to_be_visible()
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", provider.password(login))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/(interaction/.+|executions/.*)$"))
    if "/interaction/" in page.url:  # the consent page
        page.click("button[type=submit]")


def test_sign_in_with_the_provider_and_lose_run_rights_at_the_provider(
    page: Page, live_server, oidc
):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server.url}/executions/")
    button = page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}")
    expect(button).to_be_visible()
    page.screenshot(path=SCREENSHOT, full_page=True)
    button.click()

    expect(page).to_have_url(re.compile(re.escape(oidc.issuer) + "/interaction/"))
    provider_sign_in(page, oidc, "alice")

    expect(page).to_have_url(f"{live_server.url}/executions/")
    expect(page.locator("header .who")).to_have_text("alice")
    page.goto(f"{live_server.url}/runs/")
    expect(page.get_by_role("link", name="Run a workflow")).to_be_visible()

    # At the provider, alice moves from the runners to the viewers.
    oidc.set_user("alice", groups=["qflow-viewers"])

    # Sign out: here, then at the provider (its own confirmation page), back to our login.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(re.escape(oidc.issuer) + "/session/end"))
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")

    page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()
    provider_sign_in(page, oidc, "alice")  # the provider's session ended: its login again

    expect(page).to_have_url(f"{live_server.url}/executions/")
    page.goto(f"{live_server.url}/runs/")
    expect(page.get_by_role("heading").first).to_be_visible()
    expect(page.get_by_role("link", name="Run a workflow")).to_have_count(0)
    assert [p for p in problems if "Content Security Policy" in p] == []
