"""The step graph: one node per component, an edge per `next` (string, list or mapping), the
status of each node from the execution's steps, cross-workflow links, escaping, fallbacks."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from django.core.cache import cache

from qflowui.executions import graph as graphs
from qflowui.mirror import status as st
from tests.test_execution_detail_support import component as comp

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _no_cached_layouts():
    cache.clear()


def _step(
    node_id: str, status: str = "Success", order: int = 1, kind: str = ""
) -> graphs.StepState:
    return graphs.StepState(node_id, kind, status, st.status_class(status), order)


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - the SVG our own code just produced


def _links(node_id: str) -> dict[str, str]:
    return {"href": f"/x/?step={node_id}", "hx-get": f"/x/steps/{node_id}/"}


def _render(model: graphs.Graph, **kw) -> graphs.Rendered:
    return graphs.graph_render(model, step_link=_links, execution_link=lambda i: f"/e/{i}/", **kw)


def _svg_nodes(svg: str) -> dict[str, ET.Element]:
    root = _parse(svg)
    return {g.get("data-node-id"): g for g in root.iter(f"{SVG}g") if g.get("data-node-id")}


def _edges(model: graphs.Graph) -> set[tuple[str, str, str | None]]:
    by_key = {n.key: n.node_id for n in model.nodes}
    return {(by_key[e.source], by_key[e.target], e.label) for e in model.edges}


def test_a_string_next_makes_one_edge_and_a_null_previous_is_fine():
    model = graphs.graph_build(
        {"components": [comp("trigger", "Trigger", "trigger", "a"), comp("a", "A", "action")]}, []
    )
    assert [n.node_id for n in model.nodes] == ["trigger", "a"]
    assert _edges(model) == {("trigger", "a", None)}


def test_a_list_next_makes_an_edge_to_each_target():
    definition = {
        "components": [
            comp("trigger", "Trigger", "trigger", ["a", "b"]),
            comp("a", "A", "action", previous="trigger"),
            comp("b", "B", "action", previous="trigger"),
        ]
    }
    assert _edges(graphs.graph_build(definition, [])) == {
        ("trigger", "a", None),
        ("trigger", "b", None),
    }


def test_a_mapping_next_labels_each_branch_even_when_a_branch_is_a_list():
    definition = {
        "components": [
            comp("f", "Found?", "filter", {"true": "yes", "false": ["no1", "no2"]}),
            comp("yes", "Yes", "action"),
            comp("no1", "No 1", "notification"),
            comp("no2", "No 2", "notification"),
        ]
    }
    model = graphs.graph_build(definition, [])
    assert _edges(model) == {("f", "yes", "true"), ("f", "no1", "false"), ("f", "no2", "false")}

    svg = str(_render(model).svg)
    labels = {t.text for t in _parse(svg).iter(f"{SVG}text")}
    assert {"true", "false"} <= labels


def test_an_edge_known_only_from_previous_is_drawn_too():
    definition = {"components": [comp("a", "A", "trigger"), comp("b", "B", "action", None, "a")]}
    assert _edges(graphs.graph_build(definition, [])) == {("a", "b", None)}


def test_each_node_takes_its_steps_status_and_the_others_are_not_reached():
    definition = {
        "components": [
            comp("trigger", "Trigger", "trigger", "a"),
            comp("a", "A", "action", "b"),
            comp("b", "B", "action", "c"),
            comp("c", "C", "notification"),
        ]
    }
    steps = [_step("trigger", "Success", 1), _step("a", "Success", 2), _step("b", "Failed", 3)]
    model = graphs.graph_build(definition, steps)

    rendered = _render(model)
    nodes = _svg_nodes(str(rendered.svg))

    assert set(nodes) == {"trigger", "a", "b", "c"}
    assert {k: g.get("data-status") for k, g in nodes.items()} == {
        "trigger": "Success",
        "a": "Success",
        "b": "Failed",
        "c": "not-reached",
    }
    assert "st-failed" in nodes["b"].get("class")
    assert "st-not-reached" in nodes["c"].get("class")
    link = nodes["b"].find(f"{SVG}a")
    assert link is not None and link.get("hx-get") == "/x/steps/b/"


def test_a_step_missing_from_the_current_definition_is_still_shown():
    model = graphs.graph_build(
        {"components": [comp("a", "A", "trigger")]}, [_step("gone", "Success")]
    )
    assert [(n.node_id, n.kind) for n in model.nodes] == [("a", "component"), ("gone", "orphan")]


def test_parent_and_child_executions_are_linked_nodes():
    definition = {
        "components": [
            comp("trigger", "Trigger", "trigger", "ev"),
            comp("ev", "Start verification", "qualysevent"),
        ]
    }
    parent = graphs.LinkedExecution("p-1", "Parent wf", "Success", st.SUCCESS)
    child = graphs.LinkedExecution("c-1", "Child wf", "Failed", st.FAILED)
    model = graphs.graph_build(
        definition, [_step("trigger"), _step("ev", order=2)], parent=parent, linked=[child]
    )

    svg = _parse(str(_render(model).svg))
    linked = {
        g.get("data-linked-execution"): g
        for g in svg.iter(f"{SVG}g")
        if g.get("data-linked-execution")
    }
    assert set(linked) == {"p-1", "c-1"}
    assert linked["c-1"].find(f"{SVG}a").get("href") == "/e/c-1/"
    assert linked["p-1"].find(f"{SVG}a").get("href") == "/e/p-1/"
    by_key = {n.key: n.node_id for n in model.nodes}
    links = {(by_key[e.source], by_key[e.target]) for e in model.edges if e.kind == "link"}
    assert links == {("p-1", "trigger"), ("ev", "c-1")}


def test_dot_strings_escape_quotes_backslashes_newlines_and_graphviz_escapes():
    assert graphs.dot_string('a"b') == '"a\\"b"'
    assert graphs.dot_string("a\\N\\G") == '"a\\\\N\\\\G"'
    assert graphs.dot_string("a\nb\x00c") == '"a\\nbc"'


HOSTILE = [
    '<script>alert("x")</script>',
    '"><img src=x onerror=alert(1)>',
    "</text><foreignObject><body onload=alert(1)>",
    "\\N \\G \\L ] ; } digraph { x -> y",
    '<a hx-get="/" hx-trigger="load">',
    "{{ 7|add:7 }} {% debug %}",
    "&lt;b&gt; &amp; &#x3C;svg onload=alert(1)&#x3E;",
]


def test_hostile_names_types_ids_and_labels_stay_text_in_the_svg():
    components = [
        comp(
            f"node-{i}-{text}",
            text,
            text,
            {text: f"node-{i + 1}-{HOSTILE[(i + 1) % len(HOSTILE)]}"},
        )
        for i, text in enumerate(HOSTILE)
    ]
    components[-1]["next"] = None
    model = graphs.graph_build({"components": components}, [_step(components[0]["id"], HOSTILE[1])])

    rendered = _render(model)
    svg = str(rendered.svg)

    root = _parse(svg)  # well-formed
    tags = {el.tag.removeprefix(SVG) for el in root.iter()}
    assert tags <= {"svg", "g", "a", "title", "path", "polygon", "text", "ellipse", "polyline"}
    assert not re.search(r"<(script|img|foreignObject|body)\b", svg, re.I)
    attributes = {name for el in root.iter() for name in el.attrib}
    assert not [a for a in attributes if a.lower().startswith("on") or a == "hx-trigger"]
    ids = {g.get("data-node-id") for g in root.iter(f"{SVG}g") if g.get("data-node-id")}
    assert ids == {c["id"] for c in components}
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "<script>" in texts  # shown as text, escaped by the serializer


def test_above_200_nodes_the_graph_gives_way_to_a_list_unless_forced():
    components = [comp(f"n{i}", f"Step {i}", "action", f"n{i + 1}") for i in range(205)]
    components[-1]["next"] = None
    model = graphs.graph_build({"components": components}, [])

    plain = _render(model)
    forced = _render(model, force=True)

    assert plain.svg is None and plain.can_force and "205 steps" in plain.fallback_reason
    assert forced.svg is not None
    assert len(_svg_nodes(str(forced.svg))) == 205


def test_without_graphviz_there_is_a_reason_and_no_svg(monkeypatch):
    monkeypatch.setattr(graphs, "dot_path", lambda: None)
    model = graphs.graph_build({"components": [comp("a", "A", "trigger")]}, [])

    rendered = _render(model)

    assert rendered.svg is None
    assert "Graphviz" in rendered.fallback_reason
    assert not rendered.can_force


def test_a_dot_that_times_out_falls_back_to_the_list(monkeypatch, tmp_path):
    slow = tmp_path / "dot"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    monkeypatch.setattr(graphs, "dot_path", lambda: str(slow))
    monkeypatch.setattr(graphs, "DOT_TIMEOUT_SECONDS", 0.3)
    model = graphs.graph_build({"components": [comp("a", "A", "trigger")]}, [])

    rendered = _render(model)

    assert rendered.svg is None
    assert "too long" in rendered.fallback_reason


def test_a_broken_definition_is_reported_not_raised():
    model = graphs.graph_build({"components": [{"name": "no id"}]}, [_step("a")])
    assert model.problems
    assert [n.node_id for n in model.nodes] == ["a"]


def test_the_layout_is_cached_and_the_overlay_is_not():
    definition = {"components": [comp("a", "A", "trigger", "b"), comp("b", "B", "action")]}
    first = _render(graphs.graph_build(definition, [_step("a")]))
    second = _render(graphs.graph_build(definition, [_step("a"), _step("b", "Failed", 2)]))

    assert not first.layout_cached and second.layout_cached
    assert _svg_nodes(str(second.svg))["b"].get("data-status") == "Failed"
    assert _svg_nodes(str(first.svg))["b"].get("data-status") == "not-reached"
