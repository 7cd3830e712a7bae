"""The evidence bundle's drawings: the step graph and the timeline as standalone SVG files.

The page styles its graph and timeline with detail.css; a file opened on its own has no such
sheet, so each drawing carries its own `<style>` (colours of the page, no script, no link to
anything outside the bundle). Both are built and written by ElementTree, whose serializer
escapes every text and attribute; every text from QFlow is masked again on the way out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC

from qflowui.core.masking import mask_free_text
from qflowui.executions import graph as graphs
from qflowui.executions import presentation
from qflowui.executions.services import Detail
from qflowui.executions.timeline import timeline

SVG_NS = graphs.SVG_NS
_SVG = f"{{{SVG_NS}}}"
# Attributes that may carry QFlow's text (names, ids, types, statuses): masked like texts.
_TEXT_ATTRIBUTES = ("aria-label", "data-node-id", "data-type", "data-status", "data-step")

_FONT = '"DejaVu Sans", "Bitstream Vera Sans", Verdana, sans-serif'
GRAPH_STYLE = f"""
svg {{ background: #ffffff; }}
text {{ font-family: {_FONT}; fill: #1b2430; }}
.edge path {{ fill: none; stroke: #9aa4b2; stroke-width: 1.2; }}
.edge polygon {{ fill: #9aa4b2; stroke: #9aa4b2; }}
.edge text {{ fill: #5b6776; font-style: italic; }}
.edge-taken path {{ stroke: #4a5565; stroke-width: 1.8; }}
.edge-taken polygon {{ fill: #4a5565; stroke: #4a5565; }}
.node path, .node polygon {{ stroke-width: 1.4; fill: #eceff3; stroke: #4a5565; }}
.st-success path, .st-success polygon {{ fill: #e3f4e8; stroke: #1e7b3a; }}
.st-failed path, .st-failed polygon, .st-timed-out path, .st-timed-out polygon
  {{ fill: #fbd3ce; stroke: #b42318; stroke-width: 2.6; }}
.st-failed text {{ fill: #7a1a12; }}
.st-running path, .st-running polygon {{ fill: #e4edfc; stroke: #175cd3; stroke-width: 2.2; }}
.st-cancelled path, .st-cancelled polygon {{ fill: #fff3d6; stroke: #9a5b00; }}
.st-not-reached path, .st-not-reached polygon
  {{ fill: #fafbfc; stroke: #8a94a3; stroke-dasharray: 4 3; }}
.st-not-reached text {{ fill: #8a94a3; }}
.kind-orphan path, .kind-orphan polygon {{ stroke-dasharray: 2 2; }}
"""
TIMELINE_STYLE = f"""
svg {{ background: #ffffff; }}
text {{ font-family: {_FONT}; font-size: 12px; fill: #1b2430; }}
.tl-tick {{ stroke: #e3e7ec; stroke-width: 1; }}
.tl-tick-label {{ fill: #5b6776; font-size: 10px; }}
.tl-bar {{ fill: #1e7b3a; }}
.st-failed .tl-bar, .st-timed-out .tl-bar {{ fill: #b42318; }}
.st-running .tl-bar {{ fill: #175cd3; }}
.st-cancelled .tl-bar {{ fill: #9a5b00; }}
.st-other .tl-bar {{ fill: #4a5565; }}
.tl-failed .tl-label {{ fill: #b42318; font-weight: 700; }}
"""
TIMELINE_WIDTH = 1000


def graph_svg(detail: Detail, step_href: Callable[[str], str | None]) -> tuple[bytes | None, str]:
    """The step graph as an SVG file, or None and why it is not drawn (no Graphviz, too many
    steps, no definition). `step_href(node_id)`: a link inside the bundle, or None."""
    model = graphs.graph_build(
        detail.workflow.definition,
        [
            graphs.StepState(s.node_id, s.node_type, s.status, s.status_class, s.event_order)
            for s in detail.steps
        ],
    )

    def link(node_id: str) -> dict[str, str]:
        href = step_href(node_id)
        return {"href": href} if href else {}

    rendered = graphs.graph_render(model, step_link=link, execution_link=lambda _id: "")
    if rendered.svg is None:
        return None, rendered.fallback_reason or "The graph could not be drawn."
    root = ET.fromstring(str(rendered.svg))  # noqa: S314 - graph.py's own serialization
    width = root.get("data-graph-width", "")
    height = root.get("data-graph-height", "")
    if width and height:
        root.set("width", width)
        root.set("height", height)
    for attr in ("class", "role", "data-direction", "data-graph-width", "data-graph-height"):
        root.attrib.pop(attr, None)
    title = f"Steps of execution {detail.execution.pk} ({detail.workflow.name or 'workflow'})"
    return _finish(root, GRAPH_STYLE, title), ""


def timeline_svg(detail: Detail) -> tuple[bytes | None, str]:
    """The execution page's timeline as an SVG file, or None and why there is none."""
    execution = detail.execution
    data = timeline(execution, presentation.step_rows(detail))
    if data is None:
        return None, "No step has a start time, so there is no timeline."
    height = str(data["height"])
    root = ET.Element(
        f"{_SVG}svg",
        {
            "viewBox": f"0 0 {TIMELINE_WIDTH} {height}",
            "width": str(TIMELINE_WIDTH),
            "height": height,
            "role": "img",
        },
    )
    for tick in data["ticks"]:
        x = str(tick["x"])
        attrs = {"class": "tl-tick", "x1": x, "x2": x, "y1": "14", "y2": str(data["bottom"])}
        ET.SubElement(root, f"{_SVG}line", attrs)
        label = ET.SubElement(
            root,
            f"{_SVG}text",
            {"class": "tl-tick-label", "x": x, "y": "10", "text-anchor": tick["anchor"]},
        )
        label.text = tick["label"]
    for row in data["rows"]:
        classes = f"tl-row st-{row.status_class}" + (" tl-failed" if row.is_failed else "")
        group = ET.SubElement(root, f"{_SVG}g", {"class": classes, "data-step": row.node_id})
        ET.SubElement(group, f"{_SVG}title").text = row.title
        text = ET.SubElement(
            group, f"{_SVG}text", {"class": "tl-label", "x": "4", "y": str(row.text_y)}
        )
        text.text = row.label
        ET.SubElement(
            group,
            f"{_SVG}rect",
            {
                "class": "tl-bar",
                "x": str(row.x),
                "y": str(row.y),
                "width": str(row.width),
                "height": "14",
                "rx": "2",
            },
        )
    start = execution.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = f"Timeline of execution {execution.pk}, from {start} (0 on the axis)"
    return _finish(root, TIMELINE_STYLE, title), ""


def _finish(root: ET.Element, style: str, title: str) -> bytes:
    """Masked, titled and styled, as a UTF-8 XML document."""
    for element in root.iter():
        if element.text:
            element.text = mask_free_text(element.text)
        if element.tail:
            element.tail = mask_free_text(element.tail)
        for attr in _TEXT_ATTRIBUTES:
            if attr in element.attrib:
                element.set(attr, mask_free_text(element.attrib[attr]))
    head = ET.Element(f"{_SVG}title")
    head.text = mask_free_text(title)
    sheet = ET.Element(f"{_SVG}style")
    sheet.text = style
    root.insert(0, sheet)
    root.insert(0, head)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
