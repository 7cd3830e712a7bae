"""In a real browser: j/k/Enter through the list, / to search, ? for help, [ ] through steps."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from qflowui.mirror.models import Execution
from tests.test_executions_list import make_execution, make_workflow
from tests.test_mirror_failures import _failed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_analyst_works_the_list_and_the_steps_from_the_keyboard(
    page, live_server, viewer, login
):
    wf = make_workflow()
    newest = make_execution(wf, ago=timedelta(minutes=1))
    failed = _failed(wf, "ThrottlingException: Rate exceeded", ago=timedelta(minutes=5))
    make_execution(wf, ago=timedelta(minutes=9))
    Execution.objects.update(steps_synced_at=timezone.now())
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))

    login(page, viewer)
    page.goto(f"{live_server.url}/executions/")
    page.keyboard.press("j")
    expect(page.locator(f'tr[data-execution-id="{newest.id}"]')).to_be_focused()
    page.keyboard.press("j")
    expect(page.locator(f'tr[data-execution-id="{failed.id}"]')).to_be_focused()
    page.keyboard.press("k")
    page.keyboard.press("j")

    page.keyboard.press("/")
    expect(page.locator("#f-q")).to_be_focused()
    page.keyboard.press("j")  # typing, not moving
    expect(page.locator("#f-q")).to_have_value("j")
    page.keyboard.press("Escape")
    page.locator("#f-q").fill("")
    page.locator("body").click(position={"x": 5, "y": 5})

    page.keyboard.press("?")
    expect(page.locator("#keys-help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#keys-help")).to_be_hidden()

    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/executions/{failed.id}/"))
    page.wait_for_load_state()  # the keys are the page's script's: it runs once loaded

    page.keyboard.press("]")
    expect(page).to_have_url(re.compile(r"step=node-list"))
    page.keyboard.press("]")
    expect(page).to_have_url(re.compile(r"step=node-stop"))
    page.keyboard.press("[")
    expect(page).to_have_url(re.compile(r"step=node-list"))
    assert problems == []
