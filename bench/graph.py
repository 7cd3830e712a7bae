"""Step graph rendering time for 10, 50 and 200 nodes (and 400, forced).

Standalone: `python bench/graph.py`. Builds workflow definitions shaped like QFlow's (a
trigger, chains of resource/filter/action nodes, filters branching with a mapping `next`,
fan-out lists), overlays statuses, and times `graph_build` + `graph_render`:
- cold: Graphviz lays the graph out (`dot -Tsvg`), then the SVG is annotated;
- cached: the layout comes from the cache, only the status overlay is redone.
Prints a markdown table.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qflowui.settings")

import django

django.setup()

from django.core.cache import cache  # noqa: E402

from qflowui.executions import graph as graphs  # noqa: E402
from qflowui.mirror import status as st  # noqa: E402

RUNS = 7


def definition(n: int) -> dict:
    """n components: a trigger, then blocks of fetch -> filter -{true/false}-> action/notify."""
    components = [{"id": "trigger", "name": "Trigger", "type": "trigger", "next": None}]
    previous = components[0]
    index = 0
    while len(components) < n:
        fetch = {"id": f"node-{index:08x}-resource", "name": f"Describe resources {index}",
                 "type": "resource", "next": None}  # fmt: skip
        check = {"id": f"node-{index:08x}-filter", "name": f"Anything found? {index}",
                 "type": "filter", "next": None}  # fmt: skip
        act = {"id": f"node-{index:08x}-action", "name": f"Remediate {index}",
               "type": "action", "next": None}  # fmt: skip
        note = {"id": f"node-{index:08x}-notification", "name": f"Notify owners {index}",
                "type": "notification", "next": None}  # fmt: skip
        previous["next"] = [previous["next"], fetch["id"]] if previous["next"] else fetch["id"]
        fetch["next"] = check["id"]
        check["next"] = {"true": act["id"], "false": [note["id"]]}
        act["next"] = note["id"]
        components += [fetch, check, act, note]
        previous = act if index % 2 else note
        index += 1
    return {"components": components[:n]}


def steps(defn: dict) -> list[graphs.StepState]:
    out = []
    for order, component in enumerate(defn["components"][: len(defn["components"]) * 2 // 3]):
        status = "Failed" if order == len(defn["components"]) * 2 // 3 - 1 else "Success"
        out.append(graphs.StepState(component["id"], component["type"], status,
                                    st.status_class(status), order + 1))  # fmt: skip
    return out


def render(defn: dict, overlay: list[graphs.StepState], force: bool) -> graphs.Rendered:
    model = graphs.graph_build(defn, overlay)
    return graphs.graph_render(
        model,
        step_link=lambda node_id: {"href": f"?step={node_id}", "hx-get": f"steps/{node_id}/"},
        execution_link=lambda execution_id: f"/executions/{execution_id}/",
        force=force,
    )


def main() -> None:
    print("| nodes | edges | cold (dot + overlay) | cached layout (overlay only) | SVG size |")
    print("|---:|---:|---:|---:|---:|")
    for n in (10, 50, 200, 400):
        defn = definition(n)
        overlay = steps(defn)
        force = n > graphs.MAX_NODES
        cold = []
        for _ in range(RUNS):
            cache.clear()
            started = time.perf_counter()
            rendered = render(defn, overlay, force)
            cold.append(time.perf_counter() - started)
            assert rendered.svg is not None, rendered.fallback_reason
        warm = []
        for _ in range(RUNS):
            started = time.perf_counter()
            rendered = render(defn, overlay, force)
            warm.append(time.perf_counter() - started)
        edges = len(graphs.graph_build(defn, overlay).edges)
        label = f"{n} (forced)" if force else str(n)
        print(
            f"| {label} | {edges} | {statistics.median(cold) * 1000:,.0f} ms "
            f"| {statistics.median(warm) * 1000:,.1f} ms | {len(rendered.svg) / 1024:,.0f} KB |"
        )


if __name__ == "__main__":
    main()
