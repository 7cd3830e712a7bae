"""Issue 11, the execution page: the graph's direction follows its shape, labels stay in their
boxes (wrapped or cut, the full name in <title>), the box follows the graph's aspect, the
timeline's ticks are distinct, and the child-executions link has its own label."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from django.core.cache import cache

from qflowui.executions import graph as graphs
from qflowui.executions.timeline import timeline_ticks
from qflowui.mirror import status as st
from tests.test_execution_detail_support import component as comp

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _no_cached_layouts():
    cache.clear()


def _render(model: graphs.Graph) -> ET.Element:
    rendered = graphs.graph_render(
        model, step_link=lambda n: {"href": f"/x/?step={n}"}, execution_link=lambda i: f"/e/{i}/"
    )
    assert rendered.svg is not None, rendered.fallback_reason
    return ET.fromstring(str(rendered.svg))  # noqa: S314 - the SVG our own code just produced


def _chain(n: int) -> graphs.Graph:
    """A 38-step sweep-like chain: trigger, then filters that may skip the next two steps."""
    components = []
    for i in range(n):
        nxt = f"c{i + 1}" if i + 1 < n else None
        if i % 4 == 2 and i + 3 < n:
            nxt = {"true": f"c{i + 1}", "false": f"c{i + 3}"}
        components.append(comp(f"c{i}", f"Describe instances (region {i})", "resource", nxt))
    steps = [graphs.StepState(f"c{i}", "resource", "Success", st.SUCCESS, i) for i in range(n - 5)]
    steps.append(graphs.StepState(f"c{n - 5}", "resource", "Failed", st.FAILED, n - 5))
    return graphs.graph_build({"components": components}, steps)


def _wide() -> graphs.Graph:
    """A trigger fanning out to six actions that join again: short and wide."""
    fan = [f"a{i}" for i in range(6)]
    components = [comp("t", "Trigger", "trigger", fan)]
    components += [comp(a, f"Action {a}", "action", "end") for a in fan]
    components.append(comp("end", "Notify", "notification"))
    return graphs.graph_build({"components": components}, [])


def _box(root: ET.Element) -> tuple[float, float]:
    _, _, w, h = (float(v) for v in root.get("viewBox").split())
    return w, h


def test_a_38_step_chain_is_laid_out_top_to_bottom_and_a_short_wide_graph_left_to_right():
    chain, wide = _chain(38), _wide()
    assert graphs.layout_direction(chain) == "TB"
    assert "rankdir=TB" in graphs.dot_source(chain)
    assert graphs.layout_direction(wide) == "LR"
    assert "rankdir=LR" in graphs.dot_source(wide)

    tall = _render(chain)
    assert tall.get("data-direction") == "TB"
    w, h = _box(tall)
    assert h > 4 * w  # a column, not a strip 8000 units wide
    flat = _render(_wide())
    assert flat.get("data-direction") == "LR"
    w, h = _box(flat)
    assert h < 2 * w  # three columns side by side


def test_the_svg_has_its_whole_graph_in_the_viewbox_and_a_height_that_follows_its_aspect():
    tall = _render(_chain(38))
    small = _render(graphs.graph_build({"components": [comp("t", "T", "trigger")]}, []))
    for root in (tall, small):
        assert root.get("width") is None  # the page's width (CSS)
        assert re.fullmatch(r"[\d.]+ [\d.]+ [\d.]+ [\d.]+", root.get("viewBox"))
        w, h = _box(root)
        assert root.get("data-graph-width") == f"{w:.0f}"
        assert root.get("data-graph-height") == f"{h:.0f}"
        assert root.get("preserveAspectRatio") == "xMidYMid meet"
    # Height in px at 100 %, within bounds: the tall chain gets the maximum, one node the minimum.
    assert int(tall.get("height")) == graphs.BOX_MAX_HEIGHT
    assert int(small.get("height")) == graphs.BOX_MIN_HEIGHT


def test_long_names_are_wrapped_then_cut_and_the_whole_name_is_in_the_title():
    long_name = "Stop every publicly exposed instance in " + "ap-southeast-1 " * 8 + "<b>&"
    model = graphs.graph_build(
        {"components": [comp("t", "T", "trigger", "s"), comp("s", long_name, "action")]}, []
    )
    root = _render(model)
    node = next(g for g in root.iter(f"{SVG}g") if g.get("data-node-id") == "s")
    texts = [t.text for t in node.iter(f"{SVG}text")]
    assert len(texts) == graphs.NAME_LINES + 1  # two lines of name, then the type
    assert all(len(t) <= graphs.NAME_WRAP for t in texts[:-1])
    assert texts[-2].endswith("…")
    assert texts[-1] == "action"
    title = node.find(f"{SVG}title")
    assert title is not None and long_name in title.text
    # One word longer than a line is broken, never left to spill.
    assert graphs.wrap_name("x" * 90) == ["x" * 36, "x" * 35 + "…"]
    assert graphs.wrap_name("Wait for instances to stop (us-east-1)") == [
        "Wait for instances to stop",
        "(us-east-1)",
    ]


def test_the_graph_is_laid_out_with_the_font_the_page_draws_it_with():
    source = graphs.dot_source(_wide())
    assert 'fontname="DejaVu Sans"' in source
    root = _render(_wide())
    sizes = {t.get("font-size") for t in root.iter(f"{SVG}text")}
    assert sizes <= {f"{graphs.FONT_SIZE}.00", "9.00"}
    assert all(t.get("font-family") is None for t in root.iter(f"{SVG}text"))  # CSS sets it
    with open("static/css/detail.css", encoding="utf-8") as css:
        rules = css.read()
    assert re.search(r'\.graph-svg text \{ font-family: "DejaVu Sans"', rules)


@pytest.mark.parametrize(
    ("span_ms", "expected"),
    [
        (1200, ["0", "+0.25 s", "+0.50 s", "+0.75 s", "+1.00 s"]),
        (45_000, ["0", "+10 s", "+20 s", "+30 s", "+40 s"]),
        (3 * 3_600_000, ["0", "+1 h", "+2 h", "+3 h"]),
    ],
)
def test_timeline_ticks_are_round_and_distinct(span_ms, expected):
    ticks = timeline_ticks(span_ms)
    labels = [label for _, label in ticks]
    assert labels == expected
    assert all(ms <= span_ms for ms, _ in ticks)


@pytest.mark.parametrize("span_ms", [1, 7, 80, 999, 1001, 1500, 2300, 61_000, 90_061_000, 9e9])
def test_timeline_tick_labels_never_repeat(span_ms):
    labels = [label for _, label in timeline_ticks(span_ms)]
    assert len(labels) == len(set(labels)) >= 2
    assert len(labels) <= 6


@pytest.mark.django_db(transaction=True)
def test_the_timeline_of_a_short_execution_and_the_child_link_label(simulator, viewer_client):
    ds = simulator.dataset()
    now, oldest = simulator.now_ms(), simulator.window_start() + 86_400_000
    parent_id, _, _child = next(
        (p, n, c)
        for p, n, c in ds.linked
        if ds.execution(p).start_ms > oldest and ds.execution(c).end_ms < now - 60_000
    )
    html = viewer_client.get(f"/executions/{parent_id}/").content.decode()
    assert "<dt>Child executions</dt>" in html
    assert html.count("<dt>Started</dt>") == 1  # the start time only
    labels = re.findall(r'<text class="tl-tick-label"[^>]*>([^<]*)</text>', html)
    assert labels and len(labels) == len(set(labels))
    assert "Ctrl/⌘ + wheel or pinch to zoom" in html
