"""In a real browser: a Runner triages a failed execution (state, ticket, a note, an edit),
finds it by its badge and the triage filter in the list, and a running execution's live
refresh never wipes a half-typed note."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from qflowui.triage.models import Triage, TriageNote
from tests.test_executions_list import make_execution, make_workflow
from tests.test_triage import page_ready, runners_group

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROWS = "#results tbody tr[data-execution-id]"


@pytest.fixture
def runner(django_user_model, password):
    user = django_user_model.objects.create_user(username="rita.runner", password=password)
    user.groups.add(runners_group())
    return user


def _watch(page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def test_a_runner_triages_a_failed_execution_and_finds_it_in_the_list(
    page, live_server, runner, login
):
    wf = make_workflow()
    failed = page_ready(make_execution(wf, status="Failed", ago=timedelta(minutes=30)))
    other = make_execution(wf, status="Failed", ago=timedelta(hours=2))
    problems = _watch(page)
    page.set_viewport_size({"width": 1360, "height": 1000})

    login(page, runner)
    page.goto(f"{live_server.url}/executions/{failed.pk}/")
    section = page.locator("#triage")
    expect(section.locator("[data-triage-state]")).to_have_text("Not triaged")

    section.get_by_label("State").select_option("investigating")
    section.get_by_label("Ticket").fill("https://jira.example.com/browse/SEC-42")
    section.get_by_role("button", name="Save", exact=True).click()
    expect(section.locator("[data-triage-message]")).to_have_text("Saved.")
    expect(section.locator("[data-triage-state]")).to_have_text("Investigating")
    ticket = section.locator("a[data-ticket]")
    expect(ticket).to_have_attribute("href", "https://jira.example.com/browse/SEC-42")
    expect(ticket).to_have_attribute("rel", "noopener noreferrer")
    expect(page).to_have_url(re.compile(rf"/executions/{failed.pk}/$"))  # swapped in place

    note = section.get_by_label("Add a note")
    note.fill("Role QFLOW_1 lacks ec2:StopInstances.\n<b>Asked</b> the cloud team.")
    section.get_by_role("button", name="Add note").click()
    expect(section.locator("[data-triage-message]")).to_have_text("Note added.")
    shown = section.locator(".triage-note")
    expect(shown).to_have_count(1)
    expect(shown.locator(".note-author")).to_have_text("rita.runner")
    expect(shown.locator(".note-text")).to_have_text(
        "Role QFLOW_1 lacks ec2:StopInstances.\n<b>Asked</b> the cloud team."
    )
    expect(shown.locator(".note-meta time")).to_contain_text("UTC")
    expect(section.get_by_label("Add a note")).to_have_value("")  # ready for the next one
    page.screenshot(path="/tmp/triage-panel.png", caret="initial")  # no injected style (CSP)

    # The author may still edit it: a typo fixed.
    shown.get_by_text("Edit", exact=True).click()
    shown.get_by_label("Text of this note").fill("Role QFLOW_1 lacks ec2:StopInstances.")
    shown.get_by_role("button", name="Save edit").click()
    expect(section.locator("[data-triage-message]")).to_have_text("Note saved.")
    expect(section.locator(".note-text")).to_have_text("Role QFLOW_1 lacks ec2:StopInstances.")
    expect(section.locator("[data-edited]")).to_be_visible()

    # An empty note gets a clear message, not a request the server has to guess about.
    section.get_by_role("button", name="Add note").click()
    expect(section.locator("#triage-note-error")).to_contain_text("The note is empty")
    assert TriageNote.objects.count() == 1

    # The list shows the badge; the triage filter finds it, with a removable chip.
    page.goto(f"{live_server.url}/executions/")
    row = page.locator(f'tr[data-execution-id="{failed.pk}"]')
    expect(row.locator(".triage-badge")).to_have_text("Investigating")
    expect(page.locator(f'tr[data-execution-id="{other.pk}"] .triage-badge')).to_have_count(0)
    page.screenshot(path="/tmp/triage-list.png", caret="initial")
    page.select_option("#f-triage", "investigating")
    expect(page).to_have_url(re.compile(r"triage=investigating"))
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.locator('[data-filter="triage"]')).to_contain_text("Investigating")
    page.locator('[data-filter="triage"]').click()
    expect(page.locator(ROWS)).to_have_count(2)
    assert Triage.objects.get(pk=failed.pk).state == "investigating"
    assert problems == [], "\n".join(problems)


def test_the_live_refresh_of_a_running_execution_keeps_a_half_typed_note(
    page, live_server, simulator, runner, login
):
    wf = make_workflow()
    wf.definition = {"components": []}
    wf.save()
    running = make_execution(wf, status="Running", ago=timedelta(minutes=2))
    problems = _watch(page)

    login(page, runner)
    page.goto(f"{live_server.url}/executions/{running.pk}/")
    live = page.locator("#live[hx-trigger]")
    expect(live).to_have_count(1)  # the page refreshes itself while the execution runs
    page.get_by_label("Add a note").fill("Half a thought about")
    with page.expect_response(
        lambda r: r.url.endswith(f"/executions/{running.pk}/") and r.request.method == "GET",
        timeout=15_000,
    ):
        pass  # one refresh of #live
    page.wait_for_timeout(300)  # the swap settles
    expect(page.get_by_label("Add a note")).to_have_value("Half a thought about")
    assert problems == [], "\n".join(problems)
