"""In a real browser: after Preview the page is at the preview, its Confirm button in view (it
is far below the fold otherwise), with JavaScript, with reduced motion, and without JavaScript."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from qflowui.runs.models import Run
from tests.test_runs_support import *  # noqa: F403 - the fixtures runner, runner_client, sent...
from tests.test_runs_support import fake_workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _fill_and_preview(page, live_server, wf) -> None:
    page.goto(f"{live_server.url}/runs/new/?workflow={wf.id}")
    page.fill("#id_input", '{"buckets": ["b-1"]}')
    page.select_option("#id_region", "eu-west-2")
    page.locator('details[data-cloud="GCP"] summary').click()
    page.fill("#id_project", "gcp-qualys-demo")  # another cloud's override: a warning
    page.fill("#id_var_key_0", "dryRun")  # not declared by the workflow: a warning
    page.select_option("#id_var_type_0", "Boolean")
    page.fill("#id_var_value_0", "true")
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector("[data-preview]")
    # The Confirm button is far below the fold of the new page: it was scrolled to.
    confirm = page.get_by_role("button", name="Confirm and run")
    below = confirm.evaluate("e => e.getBoundingClientRect().bottom + window.scrollY")
    assert below > 1.5 * page.viewport_size["height"]


def test_after_preview_the_preview_and_its_confirm_button_are_in_view(
    page, live_server, runner, login, monkeypatch
):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    sent: list = []
    monkeypatch.setattr(
        "qflowui.runs.services._send", lambda name, args, countdown=None: sent.append(args) or True
    )
    wf = fake_workflow()
    page.set_viewport_size({"width": 1360, "height": 900})
    login(page, runner)
    _fill_and_preview(page, live_server, wf)

    confirm = page.get_by_role("button", name="Confirm and run")
    expect(page.locator("[data-preview]")).to_contain_text('"region": "eu-west-2"')
    expect(confirm).to_be_in_viewport(ratio=1)
    expect(page.locator("#h-preview")).to_be_in_viewport()
    expect(page.locator("#preview")).to_be_focused()
    warnings = page.locator("[data-preview-warning]")
    expect(warnings).to_have_count(2)
    expect(warnings.first).to_be_in_viewport()
    page.wait_for_timeout(300)  # let a smooth scroll finish before the picture
    page.screenshot(path="/tmp/run-preview.png")
    # A warning is not a refusal.
    confirm.click()
    expect(page.locator("[data-run-state]")).to_have_attribute("data-run-state", "queued")
    assert "#preview" not in page.url
    run = Run.objects.get()
    assert run.variables["dryRun"] is True and run.variables["project"] == "gcp-qualys-demo"
    assert len(sent) == 1
    assert [p for p in problems if "favicon" not in p] == []


def test_with_reduced_motion_and_a_short_window_confirm_is_in_view_at_once(
    page, live_server, runner, login
):
    wf = fake_workflow()
    page.emulate_media(reduced_motion="reduce")
    page.set_viewport_size({"width": 1024, "height": 600})
    login(page, runner)
    _fill_and_preview(page, live_server, wf)
    page.wait_for_load_state("load")

    # No animation: in view at once, without waiting for a scroll to end.
    box = page.get_by_role("button", name="Confirm and run").bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 600


def test_without_javascript_the_preview_fragment_gets_there(browser, live_server, runner, login):
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1360, "height": 900}
    )
    page = context.new_page()
    try:
        login(page, runner)
        wf = fake_workflow()
        _fill_and_preview(page, live_server, wf)

        expect(page).to_have_url(f"{live_server.url}/runs/new/#preview")
        expect(page.locator("#h-preview")).to_be_in_viewport()
        expect(page.get_by_role("button", name="Confirm and run")).to_be_in_viewport()
    finally:
        context.close()
