"""The execution detail page in a real browser: graph, step panel, JSON tree, search, download."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from qflowui.executions import services
from tests.test_execution_detail_support import finished

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear()
    services.memo_clear()


def _with_resource_output(ex) -> bool:
    kinds = [s.node_type for s in ex.steps]
    return "resource" in kinds and ex.steps[-1].node_type != "resource" and not ex.big


def test_an_analyst_opens_a_failed_execution_and_reads_a_steps_input_and_output(
    simulator, live_server, page, viewer, login
):
    ex = finished(simulator, status="Failed", where=_with_resource_output)
    resource = next(s for s in ex.steps if s.node_type == "resource" and s.status == "Success")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_viewport_size({"width": 1400, "height": 1000})

    login(page, viewer)
    page.goto(f"{live_server.url}/executions/{ex.id}/")

    page.locator(".failure").wait_for()
    assert "Failed at step" in page.locator(".failure").inner_text()
    nodes = page.locator(".graph-svg g.node[data-node-id]")
    assert nodes.count() == len(simulator.dataset().workflow(ex.workflow_id).components)

    page.locator(f'.graph-svg g.node[data-node-id="{resource.node_id}"] a').click()

    panel = page.locator(f'#step-panel .panel[data-step="{resource.node_id}"]')
    panel.wait_for()
    page.wait_for_url(f"**/executions/{ex.id}/?step={resource.node_id}")
    page.locator("#payload-input .jt").wait_for()
    page.locator("#payload-output .jt").wait_for()
    output = page.locator("#payload-output")
    assert "collection" in output.locator(".jt").inner_text()

    # Expand a collapsed subtree: one collection item.
    path = output.locator(".jt li.jt-n:has(> details:not([open]))").first.get_attribute("data-p")
    row = output.locator(f'.jt li.jt-n[data-p="{path}"]')
    row.locator("> details > summary").click()
    expect(row.locator("> details")).to_have_attribute("open", "")
    expect(row.locator("> details > .jt-list > li.jt-n").first).to_be_visible()

    # Search a key on the server.
    output.locator("input[name=q]").fill("stepMessage")
    output.locator(".jt-search button").click()
    output.locator(".jt-results mark").first.wait_for()
    assert "/stepMessage" in output.locator(".jt-results").inner_text()

    # Download the raw (masked) JSON.
    with page.expect_download() as info:
        output.locator("a[download]").click()
    download = info.value
    assert download.suggested_filename.endswith("-output.json")
    body = json.loads(download.path().read_text(encoding="utf-8"))
    assert "collection" in body

    page.screenshot(path="/tmp/detail.png", full_page=True)
    assert dialogs == []
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_a_10_mb_output_opens_quickly_and_loads_subtrees_and_more_items_on_demand(
    simulator, live_server, page, viewer, login
):
    ds = simulator.dataset()
    ex_id, node, _ = max(ds.big_payloads, key=lambda item: item[2])
    page.set_viewport_size({"width": 1400, "height": 1000})
    login(page, viewer)

    page.goto(f"{live_server.url}/executions/{ex_id}/?step={node}")
    output = page.locator("#payload-output")
    output.locator(".jt-summary").wait_for(timeout=20_000)
    assert "MB of JSON" in output.locator(".jt-summary").inner_text()

    lazy = output.locator('li.jt-n[data-p="/collection/3"]')
    lazy.locator("> details > summary").click()
    expect(lazy.locator("> details > ul.jt-list > li.jt-n").first).to_be_visible()
    assert lazy.locator(".jt-lazy").count() == 0

    more = output.locator(".jt-more-row a").first
    more.click()
    expect(output.locator('li.jt-n[data-p="/collection/150"]')).to_be_attached()
    page.screenshot(path="/tmp/detail-big.png", full_page=False)


def test_a_running_execution_updates_itself_until_it_ends_and_the_graph_zooms(
    simulator, live_server, page, viewer, login, monkeypatch
):
    from qflowui.executions import detail
    from qflowui.qflow import client_from_settings

    monkeypatch.setattr(detail, "POLL_SECONDS", 1)
    simulator.configure(run_min_seconds=2, run_max_seconds=3, run_status="success")
    wf = next(w for w in simulator.dataset().workflows if len(w.components) <= 8)
    run = client_from_settings().run_workflow(wf.id, input={}, variables={})
    login(page, viewer)

    page.goto(f"{live_server.url}/executions/{run.execution_id}/")
    expect(page.locator("#live")).to_have_attribute("data-status", "Running")
    expect(page.locator(".live-note")).to_be_visible()
    svg = page.locator(".graph-svg")
    before = svg.get_attribute("viewBox")
    page.locator('[data-graph-zoom="in"]').click()
    zoomed = svg.get_attribute("viewBox")
    assert zoomed != before

    expect(page.locator("#live")).to_have_attribute("data-status", "Success", timeout=15_000)
    expect(page.locator(".live-note")).to_have_count(0)
    assert page.locator("#live").get_attribute("hx-trigger") is None
    # The refresh kept the zoom the analyst chose.
    assert page.locator(".graph-svg").get_attribute("viewBox") == zoomed
