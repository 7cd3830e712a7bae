"""Issue 12 in a real browser: from a failed execution, "Compare with the last success" opens
the comparison, and a node's output diff opens in place when its button is clicked."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from qflowui.executions import services
from tests.test_compare import _seed_pair

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear()
    services.memo_clear()


def test_from_a_failure_the_last_success_opens_side_by_side_and_a_nodes_diff_opens(
    simulator, live_server, page, viewer, login
):
    bad, good = _seed_pair(simulator)
    services.execution_load(good.id)  # the mirror knows this success (a sync would too)
    resource = next(s.node_id for s in bad.steps if s.node_type == "resource")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_viewport_size({"width": 1400, "height": 1000})
    login(page, viewer)

    page.goto(f"{live_server.url}/executions/{bad.id}/")
    page.locator('[data-compare="last-success"]').click()
    page.wait_for_url(f"**/executions/compare/?a={bad.id}&b={good.id}")
    page.screenshot(path="/tmp/compare-top.png")

    diverge = page.locator("section.diverge")
    assert diverge.get_attribute("data-diverge") == bad.steps[-1].node_id
    assert "They part ways at" in diverge.inner_text()
    # The trigger's input diff loads by itself.
    page.locator('#input-diff [data-node-diff="trigger"] [data-diff-count]').wait_for()
    assert "triggerType" in page.locator("#input-diff").inner_text()

    row = page.locator(f'.steps-aligned tr[data-node-id="{resource}"]')
    row.locator('[data-diff-open="output"]').click()
    diff = page.locator(f'.node-diff[data-node-diff="{resource}"][data-kind="output"]')
    diff.wait_for()
    first = diff.locator("tr[data-path]").first
    first.wait_for()
    assert first.is_visible()
    assert int(diff.locator("[data-diff-count]").get_attribute("data-diff-count")) > 0
    assert page.url.endswith(f"?a={bad.id}&b={good.id}")  # the page's URL stays shareable
    page.screenshot(path="/tmp/compare.png", full_page=True)
    diff.screenshot(path="/tmp/compare-diff.png")

    # "Compare with…" lists this workflow's executions to pick from.
    page.goto(f"{live_server.url}/executions/{bad.id}/")
    page.locator('[data-compare="pick"]').click()
    page.locator(f'.compare-pick tr[data-execution-id="{good.id}"]').wait_for()
    page.screenshot(path="/tmp/compare-picker.png", full_page=False)
    assert not [e for e in errors if "Content Security Policy" in e], errors
