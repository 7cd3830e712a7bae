"""The step graph: the workflow definition's components and edges, overlaid with step statuses.

Layout is Graphviz `dot -Tsvg`, run with a fixed argv and a timeout. Nothing from QFlow is
a DOT identifier: nodes are named n0, n1, ... and QFlow's names, types and branch labels go
in as escaped DOT strings. Graphviz's SVG is parsed with ElementTree, annotated (status
classes, `data-node-id`, `data-status`, links) and serialized again, so every piece of text
and every attribute in the page is escaped by the serializer. The raw layout is cached by
its DOT source (one per workflow revision and shape), the overlay is redone per request.

Above MAX_NODES components, or with Graphviz missing or failing, the page shows an ordered
step list instead (`Graph.svg` is None and `Graph.fallback_reason` says why).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.utils.safestring import SafeString

from qflowui.mirror import status as st
from qflowui.qflow.errors import QflowBadResponse
from qflowui.qflow.parse import parse_definition

logger = logging.getLogger(__name__)

MAX_NODES = 200
DOT_TIMEOUT_SECONDS = 5.0
FORCED_DOT_TIMEOUT_SECONDS = 20.0
LABEL_MAX = 48
# Node labels: the name wrapped at NAME_WRAP characters on at most NAME_LINES lines (the
# last one cut with "…"); the whole name is in the node's <title> and aria-label.
NAME_WRAP = 36
NAME_LINES = 2
TYPE_MAX = 30
FONT_SIZE = 11  # layout and rendering use the same font (DejaVu Sans, detail.css) and size
# A chain this long, and this much longer than it is wide, is laid out top to bottom.
TB_MIN_RANKS = 6
TB_RATIO = 2.0
# The SVG's initial height in CSS px (1 graph unit = 1 px at 100 %); graph.js refines it.
BOX_MIN_HEIGHT = 160
BOX_MAX_HEIGHT = 640
CACHE_SECONDS = 24 * 3600
NOT_REACHED = "not-reached"

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)
_SVG = f"{{{SVG_NS}}}"
_DROPPED_ATTRIBUTES = ("style", "id", "font-family")
_SHAPES = frozenset(f"{_SVG}{tag}" for tag in ("path", "polygon", "ellipse", "polyline"))


@dataclass(frozen=True)
class GraphNode:
    key: str  # the DOT name (n0, n1, ... / p0 / x0, ...): never QFlow text
    node_id: str  # QFlow's component id (or an execution id for parent/linked nodes)
    name: str
    type: str
    status: str  # QFlow's status, or "not-reached"
    status_class: str  # success, failed, running, cancelled, timed_out, other, not-reached
    kind: str = "component"  # component | orphan (a step not in the definition) | parent | linked
    order: int | None = None
    workflow_name: str = ""

    @property
    def css(self) -> str:
        """The status class as a CSS class suffix (`st-timed-out`)."""
        return self.status_class.replace("_", "-")


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    label: str | None = None
    taken: bool = False
    kind: str = "next"  # next | link


@dataclass
class Graph:
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    problems: list[str] = field(default_factory=list)

    @property
    def components(self) -> list[GraphNode]:
        return [n for n in self.nodes if n.kind in ("component", "orphan")]


@dataclass(frozen=True)
class StepState:
    """What the graph needs to know of one executed step."""

    node_id: str
    node_type: str
    status: str
    status_class: str
    order: int | None = None


@dataclass(frozen=True)
class LinkedExecution:
    execution_id: str
    workflow_name: str = ""
    status: str = ""
    status_class: str = st.OTHER
    from_node: str | None = None  # the qualysevent node that started it, if known


@dataclass
class Rendered:
    svg: SafeString | None
    fallback_reason: str = ""  # why there is no SVG
    can_force: bool = False  # "show the graph anyway" is possible
    layout_cached: bool = False


# --- the model -------------------------------------------------------------------------------


def graph_build(
    definition: dict[str, Any] | None,
    steps: Iterable[StepState],
    *,
    parent: LinkedExecution | None = None,
    linked: Iterable[LinkedExecution] = (),
) -> Graph:
    """Components as nodes, `next` (string, list or mapping) as edges, steps as statuses."""
    by_node = {s.node_id: s for s in steps}
    problems: list[str] = []
    components: list[tuple[str, str, str]] = []
    edges_raw: list[tuple[str, str, str | None]] = []
    if definition:
        try:
            parsed = parse_definition(definition)
        except QflowBadResponse as exc:
            problems.append(f"The workflow definition could not be read: {exc}")
        else:
            components = [(n.id, n.name, n.type) for n in parsed.nodes]
            edges_raw = [(e.source, e.target, e.label) for e in parsed.edges]
    nodes: list[GraphNode] = []
    keys: dict[str, str] = {}
    for node_id, name, kind in components:
        if node_id in keys:
            problems.append("A component id appears twice in the definition.")
            continue
        keys[node_id] = f"n{len(keys)}"
        step = by_node.get(node_id)
        nodes.append(
            _node(keys[node_id], node_id, name, kind or (step.node_type if step else ""), step)
        )
    # Steps the (current) definition does not know: it changed since the run.
    for step in by_node.values():
        if step.node_id not in keys:
            keys[step.node_id] = f"n{len(keys)}"
            nodes.append(
                _node(keys[step.node_id], step.node_id, "", step.node_type, step, "orphan")
            )
    edges: list[GraphEdge] = []
    for source, target, label in edges_raw:
        if source not in keys or target not in keys:
            problems.append("An edge points to a component that is not in the definition.")
            continue
        taken = source in by_node and target in by_node
        edges.append(GraphEdge(keys[source], keys[target], label, taken))
    _link_executions(nodes, edges, keys, by_node, parent, list(linked))
    return Graph(nodes=nodes, edges=edges, problems=sorted(set(problems)))


def _node(
    key: str, node_id: str, name: str, kind: str, step: StepState | None, what: str = "component"
) -> GraphNode:
    if step is None:
        return GraphNode(key, node_id, name, kind, NOT_REACHED, NOT_REACHED, what)
    return GraphNode(
        key,
        node_id,
        name,
        kind,
        step.status or "(no status)",
        step.status_class,
        what,
        step.order,
    )


def _link_executions(
    nodes: list[GraphNode],
    edges: list[GraphEdge],
    keys: dict[str, str],
    by_node: dict[str, StepState],
    parent: LinkedExecution | None,
    linked: list[LinkedExecution],
) -> None:
    if parent is not None:
        start = next((n for n in nodes if n.type == "trigger" or n.node_id == "trigger"), None)
        start = start or (nodes[0] if nodes else None)
        nodes.append(_linked_node("p0", parent, "parent"))
        if start is not None:
            edges.append(GraphEdge("p0", start.key, None, True, "link"))
    events = [n for n in nodes if n.type == "qualysevent" and n.node_id in by_node]
    events = events or [n for n in nodes if n.type == "qualysevent"]
    for index, child in enumerate(linked):
        key = f"x{index}"
        nodes.append(_linked_node(key, child, "linked"))
        source = keys.get(child.from_node or "") or (events[0].key if events else None)
        if source is not None:
            edges.append(GraphEdge(source, key, None, True, "link"))


def _linked_node(key: str, link: LinkedExecution, kind: str) -> GraphNode:
    title = "parent execution" if kind == "parent" else "child execution"
    return GraphNode(
        key,
        link.execution_id,
        title,
        link.workflow_name,
        link.status or "unknown",
        link.status_class if link.status else st.OTHER,
        kind,
        workflow_name=link.workflow_name,
    )


def ordered_nodes(graph: Graph) -> list[GraphNode]:
    """Components in the order they ran, then those not reached, in definition order."""
    comps = graph.components
    ran = sorted(
        (n for n in comps if n.status != NOT_REACHED), key=lambda n: (n.order is None, n.order or 0)
    )
    return ran + [n for n in comps if n.status == NOT_REACHED]


# --- DOT ---------------------------------------------------------------------------------------


def dot_string(text: str) -> str:
    """`text` as a DOT double-quoted string: no escape sequence of Graphviz survives."""
    clean = "".join(ch for ch in text if ch >= " " or ch in "\n\t").replace("\t", " ")
    clean = clean.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{clean}"'


def _short(text: str, limit: int = LABEL_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wrap_name(text: str, width: int = NAME_WRAP, lines: int = NAME_LINES) -> list[str]:
    """`text` on at most `lines` lines of at most `width` characters, words kept whole where
    they fit; what does not fit ends the last line with "…"."""
    words = " ".join(text.split()).split(" ")
    out: list[str] = []
    current = ""
    rest = list(words)
    while rest and len(out) < lines:
        word = rest[0]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= width:
            current = candidate
            rest.pop(0)
            continue
        if not current:  # one word longer than a line: break it
            current, rest[0] = word[:width], word[width:]
        out.append(current)
        current = ""
    if current and len(out) < lines:
        out.append(current)
    if rest and out:
        last = out[-1]
        out[-1] = (last if len(last) < width else last[: width - 1]) + "…"
    return out or [""]


def _label(node: GraphNode) -> str:
    if node.kind in ("parent", "linked"):
        first = node.name
        second = node.workflow_name or node.node_id[:8]
    else:
        first = node.name or node.node_id
        second = node.type or "step"
    return "\n".join([*wrap_name(first), _short(second, TYPE_MAX)])


def ranks(graph: Graph) -> dict[str, int]:
    """Each node's rank: the length of the longest path reaching it (back edges ignored)."""
    out_edges: dict[str, list[str]] = {n.key: [] for n in graph.nodes}
    for edge in graph.edges:
        if edge.source in out_edges and edge.target in out_edges:
            out_edges[edge.source].append(edge.target)
    # Depth-first order without recursion; edges to a node on the stack are back edges.
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    order: list[str] = []
    back: set[tuple[str, str]] = set()
    for root in out_edges:
        if root in state:
            continue
        stack = [(root, iter(out_edges[root]))]
        state[root] = 1
        while stack:
            key, targets = stack[-1]
            target = next(targets, None)
            if target is None:
                stack.pop()
                state[key] = 2
                order.append(key)
            elif state.get(target) == 1:
                back.add((key, target))
            elif target not in state:
                state[target] = 1
                stack.append((target, iter(out_edges[target])))
    rank = dict.fromkeys(out_edges, 0)
    for key in reversed(order):  # topological order of the acyclic rest
        for target in out_edges[key]:
            if (key, target) not in back:
                rank[target] = max(rank[target], rank[key] + 1)
    return rank


def layout_direction(graph: Graph) -> str:
    """Top to bottom ("TB") for a long chain (many ranks, few nodes side by side), left to
    right ("LR") for short wide graphs: a 38-step sweep drawn left to right is a thin strip."""
    rank = ranks(graph)
    if not rank:
        return "LR"
    depth = max(rank.values()) + 1
    per_rank: dict[int, int] = {}
    for value in rank.values():
        per_rank[value] = per_rank.get(value, 0) + 1
    breadth = max(per_rank.values())
    return "TB" if depth >= TB_MIN_RANKS and depth >= TB_RATIO * breadth else "LR"


def dot_source(graph: Graph) -> str:
    """The DOT text. Depends on the shape and labels only, not on statuses (cache key)."""
    direction = layout_direction(graph)
    ranksep = 0.3 if direction == "TB" else 0.5
    lines = [
        "digraph qflow {",
        f"  graph [rankdir={direction}, nodesep=0.3, ranksep={ranksep}, pad=0.15, "
        'splines=true, bgcolor="none"];',
        f'  node [shape=box, style="rounded,filled", fontname="DejaVu Sans", '
        f'fontsize={FONT_SIZE}, margin="0.16,0.07", height=0.5];',
        '  edge [fontname="DejaVu Sans", fontsize=9, arrowsize=0.6];',
    ]
    for node in graph.nodes:
        lines.append(f"  {node.key} [label={dot_string(_label(node))}];")
    for edge in graph.edges:
        attrs = f" [label={dot_string(_short(edge.label, 24))}]" if edge.label else ""
        lines.append(f"  {edge.source} -> {edge.target}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_path() -> str | None:
    return shutil.which("dot")


def _layout(source: str, timeout: float) -> tuple[bytes | None, str, bool]:
    """Graphviz's SVG for `source` (cached), or None and the reason."""
    key = "qflowui:graph:" + hashlib.sha256(source.encode()).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return cached, "", True
    dot = dot_path()
    if dot is None:
        return None, "Graphviz (dot) is not installed on the server.", False
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell; the DOT text goes to stdin
            [dot, "-Tsvg"],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        logger.warning("dot timed out after %.1f s", timeout)
        return None, "Drawing the graph took too long.", False
    except OSError as exc:
        logger.warning("dot could not run: %s", exc)
        return None, "Graphviz (dot) could not run.", False
    if done.returncode != 0 or not done.stdout:
        logger.warning("dot failed (%s): %s", done.returncode, done.stderr[:300])
        return None, "Graphviz (dot) could not draw this graph.", False
    cache.set(key, done.stdout, CACHE_SECONDS)
    return done.stdout, "", False


# --- SVG ---------------------------------------------------------------------------------------


def graph_render(
    graph: Graph,
    *,
    step_link: Callable[[str], dict[str, str]],
    execution_link: Callable[[str], str],
    force: bool = False,
) -> Rendered:
    """The graph as inline SVG, or the reason it is not drawn.

    `step_link(node_id)` gives the attributes of a component's link (href, hx-get...);
    `execution_link(id)` the URL of another execution's page.
    """
    components = graph.components
    if not components:
        return Rendered(None, "The workflow definition has no components to draw.")
    if len(components) > MAX_NODES and not force:
        return Rendered(
            None,
            f"This workflow has {len(components)} steps; graphs above {MAX_NODES} are shown as "
            "a list.",
            can_force=dot_path() is not None,
        )
    raw, reason, cached = _layout(
        dot_source(graph), FORCED_DOT_TIMEOUT_SECONDS if force else DOT_TIMEOUT_SECONDS
    )
    if raw is None:
        return Rendered(None, reason)
    try:
        svg = _annotate(raw, graph, step_link, execution_link)
    except ET.ParseError as exc:
        logger.warning("dot produced SVG we cannot parse: %s", exc)
        return Rendered(None, "Graphviz produced a drawing that could not be read.")
    return Rendered(SafeString(svg), layout_cached=cached)


def _annotate(
    raw: bytes,
    graph: Graph,
    step_link: Callable[[str], dict[str, str]],
    execution_link: Callable[[str], str],
) -> str:
    root = ET.fromstring(raw)  # noqa: S314 - our own dot's output for text we escaped
    by_key = {n.key: n for n in graph.nodes}
    edge_by_pair = {(e.source, e.target): e for e in graph.edges}
    for attr in ("width", "height"):
        root.attrib.pop(attr, None)
    width, height = _view_size(root.get("viewBox", ""))
    # The box follows the graph: its height at 100 % within bounds (graph.js refines it to
    # the page's width and centres the failed step); the whole graph stays in the viewBox.
    root.set("height", str(round(min(max(height, BOX_MIN_HEIGHT), BOX_MAX_HEIGHT))))
    root.set("data-graph-width", f"{width:.0f}")
    root.set("data-graph-height", f"{height:.0f}")
    root.set("data-direction", layout_direction(graph))
    root.set("class", "graph-svg")
    root.set("role", "group")  # it holds links (the steps): not an image
    root.set("aria-label", "Workflow step graph")
    root.set("preserveAspectRatio", "xMidYMid meet")
    for element in root.iter():
        # Colours and fonts come from detail.css (classes); Graphviz's ids could clash with
        # the page's. Dropping them also halves the SVG.
        for attr in _DROPPED_ATTRIBUTES:
            element.attrib.pop(attr, None)
        if element.tag in _SHAPES:
            element.attrib.pop("fill", None)
            element.attrib.pop("stroke", None)
    top = root.find(f"{_SVG}g")
    if top is None:
        raise ET.ParseError("no graph group")
    _drop_background(top)
    for group in list(top.iter(f"{_SVG}g")):
        kind = group.get("class", "")
        title = group.find(f"{_SVG}title")
        name = title.text if title is not None and title.text else ""
        if kind == "node" and name in by_key:
            _annotate_node(group, title, by_key[name], step_link, execution_link)
        elif kind == "edge":
            source, _, target = name.partition("->")
            edge = edge_by_pair.get((source.strip(), target.strip()))
            if title is not None:
                group.remove(title)
            classes = ["edge"]
            if edge is not None:
                classes.append("edge-taken" if edge.taken else "edge-idle")
                if edge.kind == "link":
                    classes.append("edge-link")
            group.set("class", " ".join(classes))
        elif title is not None and kind == "graph":
            group.remove(title)
    return ET.tostring(root, encoding="unicode")


def _view_size(view_box: str) -> tuple[float, float]:
    try:
        _x, _y, width, height = (float(v) for v in view_box.replace(",", " ").split())
    except ValueError as exc:
        raise ET.ParseError("no usable viewBox") from exc
    return width, height


def _drop_background(top: ET.Element) -> None:
    for child in list(top):
        if child.tag == f"{_SVG}polygon":
            top.remove(child)
            return


def _annotate_node(
    group: ET.Element,
    title: ET.Element | None,
    node: GraphNode,
    step_link: Callable[[str], dict[str, str]],
    execution_link: Callable[[str], str],
) -> None:
    group.set("class", f"node kind-{node.kind} st-{node.css}")
    group.attrib.pop("id", None)
    if node.kind in ("component", "orphan"):
        group.set("data-node-id", node.node_id)
        group.set("data-status", node.status)
        group.set("data-type", node.type)
        attrs = step_link(node.node_id)
    else:
        group.set("data-linked-execution", node.node_id)
        group.set("data-status", node.status)
        attrs = {"href": execution_link(node.node_id)}
    if title is not None:
        title.text = _tooltip(node)
    link = ET.Element(f"{_SVG}a", attrs)
    link.set("aria-label", _tooltip(node))
    for child in list(group):
        if child is title:
            continue
        group.remove(child)
        link.append(child)
    group.append(link)


def _tooltip(node: GraphNode) -> str:
    if node.kind == "parent":
        return (
            f"Parent execution {node.node_id} ({node.workflow_name or 'workflow'}): {node.status}"
        )
    if node.kind == "linked":
        return f"Child execution {node.node_id} ({node.workflow_name or 'workflow'}): {node.status}"
    shown = node.name or node.node_id
    status = "not reached" if node.status == NOT_REACHED else node.status
    extra = " (not in the current definition)" if node.kind == "orphan" else ""
    return f"{shown} · {node.type or 'step'} · {status}{extra}"
