"""Issue 11 in a real browser: a 38-step graph is readable in its box and opens on the failed
step, Ctrl + wheel zooms, a step's panel comes into view on click and on a ?step= link."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from qflowui.executions import services
from tests.test_execution_detail_support import finished

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every node: its shape's box and each label line's box, in screen px.
NODE_BOXES = """() => [...document.querySelectorAll('.graph-svg g.node')].map(g => {
  const shape = g.querySelector('path, polygon').getBoundingClientRect();
  const texts = [...g.querySelectorAll('text')].map(t => t.getBoundingClientRect());
  return {
    id: g.getAttribute('data-node-id'),
    shape: [shape.left, shape.top, shape.right, shape.bottom],
    texts: texts.map(t => [t.left, t.top, t.right, t.bottom]),
  };
})"""


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear()
    services.memo_clear()


def _sweep(simulator, status: str | None = "Failed", min_steps: int = 2):
    key = simulator.dataset().workflow_by_key("ec2_sweep").id
    return finished(
        simulator,
        status=status,
        where=lambda ex: ex.workflow_id == key and len(ex.steps) >= min_steps,
    )


def _in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    height = page.viewport_size["height"]
    return (
        box is not None and 0 <= box["y"] < height and box["y"] + min(box["height"], 40) <= height
    )


def test_a_38_step_graph_fits_its_box_readably_and_opens_on_the_failed_step(
    simulator, live_server, page, viewer, login
):
    ex = _sweep(simulator)
    failed_node = next(s.node_id for s in ex.steps if s.status == "Failed")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_viewport_size({"width": 1400, "height": 1000})
    login(page, viewer)
    page.goto(f"{live_server.url}/executions/{ex.id}/")
    svg = page.locator(".graph-svg")
    svg.wait_for()
    assert svg.get_attribute("data-direction") == "TB"
    assert page.locator(".graph-svg g.node[data-node-id]").count() == 38

    box = page.locator("[data-graph]").bounding_box()
    assert box["height"] >= 500  # the box follows the tall graph, within its maximum
    assert box["height"] <= 0.8 * 1000 + 2
    # Readable at the opening scale: labels drawn at (about) their 11 px or more.
    scale = page.evaluate(
        "() => { const s = document.querySelector('.graph-svg');"
        " return s.getBoundingClientRect().width / s.viewBox.baseVal.width; }"
    )
    assert scale >= 0.8
    # No label spills out of its box.
    for node in page.evaluate(NODE_BOXES):
        left, top, right, bottom = node["shape"]
        for t_left, t_top, t_right, t_bottom in node["texts"]:
            assert bottom - top >= t_bottom - t_top, node["id"]
            assert t_left >= left - 0.5 and t_right <= right + 0.5, node["id"]
            assert t_top >= top - 0.5 and t_bottom <= bottom + 0.5, node["id"]
    # The failed step is in the graph's box without zooming.
    failed = page.locator(f'.graph-svg g.node[data-node-id="{failed_node}"]').bounding_box()
    assert box["y"] <= failed["y"] and failed["y"] + failed["height"] <= box["y"] + box["height"]
    assert box["x"] <= failed["x"] and failed["x"] + failed["width"] <= box["x"] + box["width"]

    page.locator("[data-graph]").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/graph-long.png", full_page=False)

    # Ctrl + wheel over the graph zooms (around the pointer); a plain wheel does not.
    before = svg.get_attribute("viewBox")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 100)
    page.mouse.wheel(0, 200)
    page.wait_for_timeout(200)
    assert svg.get_attribute("viewBox") == before
    page.keyboard.down("Control")
    page.mouse.wheel(0, -200)
    page.keyboard.up("Control")
    page.wait_for_function(
        "before => document.querySelector('.graph-svg').getAttribute('viewBox') !== before",
        arg=before,
    )
    after = [float(v) for v in svg.get_attribute("viewBox").split()]
    assert after[2] < float(before.split()[2])  # zoomed in: a narrower window of the graph
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_clicking_a_step_row_brings_its_panel_into_view_and_a_step_link_opens_on_it(
    simulator, live_server, page, viewer, login
):
    ex = _sweep(simulator, status=None, min_steps=20)
    last = ex.steps[-1].node_id
    page.set_viewport_size({"width": 1300, "height": 800})
    page.emulate_media(reduced_motion="reduce")
    login(page, viewer)
    page.goto(f"{live_server.url}/executions/{ex.id}/")
    row = page.locator(f'.steps-table tr[data-step="{last}"]')
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    assert not _in_viewport(page, "#step-panel")
    row.locator("td").last.click()  # the row, not its link
    page.locator(f'#step-panel .panel[data-step="{last}"]').wait_for()
    page.wait_for_url(f"**/executions/{ex.id}/?step={last}")
    page.wait_for_function(
        "() => { const r = document.getElementById('step-panel').getBoundingClientRect();"
        " return r.top >= 0 && r.top < window.innerHeight * 0.5; }"
    )
    assert _in_viewport(page, "#step-panel")
    assert page.locator(f'.steps-table tr.selected[data-step="{last}"]').count() == 1

    # A graph node does the same.
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    first = ex.steps[1].node_id
    page.locator("[data-graph]").scroll_into_view_if_needed()
    node = page.locator(f'.graph-svg g.node[data-node-id="{first}"] a')
    node.dispatch_event("click")
    page.locator(f'#step-panel .panel[data-step="{first}"]').wait_for()
    page.wait_for_function(
        "() => { const r = document.getElementById('step-panel').getBoundingClientRect();"
        " return r.top >= 0 && r.top < window.innerHeight * 0.5; }"
    )

    # A permalink opens scrolled to the panel.
    page.goto(f"{live_server.url}/executions/{ex.id}/?step={last}")
    page.locator(f'#step-panel .panel[data-step="{last}"]').wait_for()
    page.wait_for_function("() => window.scrollY > 0")
    assert _in_viewport(page, "#step-panel")


def test_a_short_graph_is_shown_whole_left_to_right(simulator, live_server, page, viewer, login):
    wide = {"fetch_join", "standard"}
    ex = finished(
        simulator,
        where=lambda e: simulator.dataset().workflow(e.workflow_id).spec.shape in wide,
    )
    page.set_viewport_size({"width": 1400, "height": 1000})
    login(page, viewer)
    page.goto(f"{live_server.url}/executions/{ex.id}/")
    svg = page.locator(".graph-svg")
    svg.wait_for()
    box = page.locator("[data-graph]").bounding_box()
    assert box["height"] < 700
    # Every node is inside the box: the whole graph is shown.
    for node in page.evaluate(NODE_BOXES):
        left, top, right, bottom = node["shape"]
        assert box["x"] - 1 <= left and right <= box["x"] + box["width"] + 1, node["id"]
        assert box["y"] - 1 <= top and bottom <= box["y"] + box["height"] + 1, node["id"]
    page.locator("[data-graph]").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/graph-short.png", full_page=False)
