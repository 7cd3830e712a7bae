"""What the execution pages show: their links and the template context of the detail page
(header, facts, steps, graph, timeline) and of a step panel (its payload blocks).

No request here: the views (detail.py) read the request, call these and render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.urls import reverse
from django.utils import timezone

from qflowui.executions import graph as graphs
from qflowui.executions import jsontree, services
from qflowui.executions.forms import PayloadTreeForm
from qflowui.executions.provenance import started_by
from qflowui.executions.timeline import timeline
from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, Step
from qflowui.qflow.errors import QflowInvalidId
from qflowui.qflow.validate import check_node_id

KINDS = services.KINDS


# --- links ------------------------------------------------------------------------------------


def detail_url(execution_id: Any) -> str:
    return reverse("executions:detail", args=[execution_id])


def workflow_url(workflow_id: Any) -> str:
    """The executions list filtered to one workflow."""
    return reverse("executions:list", query={"workflow": str(workflow_id)})


def linkable(node_id: str) -> bool:
    """Node ids that can be a URL path segment (the API client refuses the others too)."""
    try:
        check_node_id(node_id)
    except QflowInvalidId:
        return False
    return True


def step_url(execution_id: Any, node_id: str) -> str:
    return reverse("executions:step", args=[execution_id, node_id])


def step_permalink(execution_id: Any, node_id: str) -> str:
    return reverse("executions:detail", args=[execution_id], query={"step": node_id})


def step_link_attrs(execution_id: Any, node_id: str) -> dict[str, str]:
    """The attributes of a link that opens a step's panel (htmx) or the page with it (no JS)."""
    permalink = step_permalink(execution_id, node_id)
    if not linkable(node_id):
        return {"href": permalink}
    return {
        "href": permalink,
        "hx-get": step_url(execution_id, node_id),
        "hx-target": "#step-panel",
        "hx-swap": "innerHTML",
        "hx-push-url": permalink,
    }


def tree_urls(execution_id: Any, node_id: str, kind: str) -> jsontree.TreeUrls:
    args = [execution_id, node_id]
    return jsontree.TreeUrls(
        tree=reverse(f"executions:{kind}_tree", args=args),
        download=reverse(f"executions:{kind}_download", args=args),
    )


def payload_poll_url(execution_id: Any, node_id: str, kind: str, since: float) -> str:
    """The payload block's poll while a task fetches it (`since`: when it was asked for)."""
    return reverse(
        f"executions:{kind}_tree", args=[execution_id, node_id], query={"poll": f"{since:.3f}"}
    )


# --- context -----------------------------------------------------------------------------------


@dataclass
class StepRow:
    step: Step
    name: str
    elapsed_ms: int | None
    link: dict[str, str]
    is_failed: bool


@dataclass
class Related:
    execution_id: str
    url: str
    known: bool
    status: str = ""
    status_class: str = st.OTHER
    workflow_name: str = ""


def elapsed_ms(start: datetime | None, end: datetime | None, running: bool) -> int | None:
    if start is None:
        return None
    if end is None:
        if not running:
            return None
        end = timezone.now()
    return max(0, int((end - start).total_seconds() * 1000))


def components_of(definition: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(definition, dict) or not isinstance(definition.get("components"), list):
        return {}
    out = {}
    for item in definition["components"]:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            out[item["id"]] = item
    return out


def _related(ids: list[str]) -> list[Related]:
    clean = []
    for value in ids:
        try:
            clean.append(str(UUID(str(value))))
        except ValueError:
            continue
    known = {
        str(e.pk): e for e in Execution.objects.filter(pk__in=clean).select_related("workflow")
    }
    out = []
    for execution_id in dict.fromkeys(clean):
        row = known.get(execution_id)
        out.append(
            Related(
                execution_id,
                detail_url(execution_id),
                row is not None,
                row.status if row else "",
                row.status_class if row else st.OTHER,
                row.workflow.name if row else "",
            )
        )
    return out


def categories_shown(categories: Any) -> list[tuple[str, list[str]]]:
    if not isinstance(categories, dict):
        return []
    names = {
        "cloud_providers": "Clouds",
        "regions": "Regions",
        "accounts": "Accounts",
        "projects": "Projects",
        "resource_groups": "Resource groups",
        "services": "Services",
        "solutions": "Solutions",
        "apps": "Apps",
    }
    out = []
    for key, values in categories.items():
        items = values if isinstance(values, list) else [values]
        shown = [services.mask_free_text(str(v)) for v in items if v not in (None, "", [])]
        if shown:
            out.append((names.get(str(key), str(key).replace("_", " ").capitalize()), shown))
    order = list(names.values())
    out.sort(key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    return out


def _strings(values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    out = []
    for value in values:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        out.append(services.mask_free_text(text))
    return out


def _graph(
    detail: services.Detail, parent: list[Related], children: list[Related], force: bool
) -> dict[str, Any]:
    execution = detail.execution
    model = graphs.graph_build(
        detail.workflow.definition,
        [
            graphs.StepState(s.node_id, s.node_type, s.status, s.status_class, s.event_order)
            for s in detail.steps
        ],
        parent=_linked(parent[0]) if parent else None,
        linked=[_linked(r) for r in children],
    )
    rendered = graphs.graph_render(
        model,
        step_link=lambda node_id: step_link_attrs(execution.pk, node_id),
        execution_link=detail_url,
        force=force,
    )
    ordered = [
        (node, step_link_attrs(execution.pk, node.node_id)) for node in graphs.ordered_nodes(model)
    ]
    return {
        "svg": rendered.svg,
        "reason": rendered.fallback_reason,
        "can_force": rendered.can_force,
        "ordered": ordered,
        "problems": model.problems,
        "count": len(model.components),
    }


def _linked(rel: Related) -> graphs.LinkedExecution:
    return graphs.LinkedExecution(rel.execution_id, rel.workflow_name, rel.status, rel.status_class)


def step_rows(detail: services.Detail) -> list[StepRow]:
    components = components_of(detail.workflow.definition)
    failed = services.failed_step(detail.steps)
    running = not detail.execution.is_terminal
    rows = []
    for step in detail.steps:
        component = components.get(step.node_id, {})
        name = component.get("name") if isinstance(component.get("name"), str) else ""
        rows.append(
            StepRow(
                step=step,
                name=name,
                elapsed_ms=elapsed_ms(
                    step.started_at, step.ended_at, running and not step.ended_at
                ),
                link=step_link_attrs(detail.execution.pk, step.node_id),
                is_failed=failed is not None and step.pk == failed.pk,
            )
        )
    return rows


def live_context(detail: services.Detail, *, force: bool, poll_seconds: int) -> dict[str, Any]:
    """The detail page's `#live` part: what the running execution's poll refreshes.
    `force`: draw the graph however big it is."""
    execution = detail.execution
    rows = step_rows(detail)
    failed = services.failed_step(detail.steps)
    failed_row = next((r for r in rows if failed is not None and r.step.pk == failed.pk), None)
    poll_params = {"graph": "force"} if force else {}
    parent = _related([str(execution.parent_execution_id)]) if execution.parent_execution_id else []
    children = _related(list(execution.linked_execution_ids or []))
    return {
        "execution": execution,
        "workflow": detail.workflow,
        "workflow_list_url": workflow_url(execution.workflow_id),
        "detail_url": detail_url(execution.pk),
        "poll_url": reverse("executions:detail", args=[execution.pk], query=poll_params),
        "poll_seconds": poll_seconds,
        "live": not execution.is_terminal,
        "notices": detail.notices,
        "rows": rows,
        "failed": failed_row,
        "failed_error": services.mask_free_text(failed.error) if failed is not None else "",
        "elapsed_ms": execution.duration_ms
        if execution.duration_ms is not None
        else elapsed_ms(execution.started_at, execution.ended_at, not execution.is_terminal),
        "categories": categories_shown(execution.categories),
        "variables": _strings(execution.variables),
        "tags": _strings(execution.tags),
        "parent": parent,
        "children": children,
        "graph": _graph(detail, parent, children, force),
        "timeline": timeline(execution, rows),
        "export_url": reverse("executions:export", args=[execution.pk]),
        "run_again_url": reverse("runs:new", query={"from": str(execution.pk)}),
        "started_by": started_by([execution.pk]).get(str(execution.pk)),
        "checked_at": timezone.now(),
    }


# --- step panel --------------------------------------------------------------------------------


PayloadResult = services.Payload | services.Pending | None


@dataclass
class PayloadBlock:
    kind: str
    title: str
    dom_id: str
    urls: jsontree.TreeUrls
    payload: services.Payload | None  # None: loaded on demand (htmx) from urls.tree
    tree: Any = None
    summary: list[str] | None = None
    pending: services.Pending | None = None  # a task is fetching it: show progress, poll
    poll_url: str = ""


def payload_block(
    execution: Execution, node_id: str, kind: str, payload: PayloadResult
) -> PayloadBlock:
    urls = tree_urls(execution.pk, node_id, kind)
    if isinstance(payload, services.Pending):
        block = PayloadBlock(kind, kind.capitalize(), f"payload-{kind}", urls, None)
        block.pending = payload
        block.poll_url = payload_poll_url(execution.pk, node_id, kind, payload.since)
        return block
    block = PayloadBlock(kind, kind.capitalize(), f"payload-{kind}", urls, payload)
    if payload is not None and payload.present:
        try:
            block.tree, block.summary = _first_view(payload, urls)
        except jsontree.HeadIncomplete:
            payload.first_view_drawn_whole()
            block.tree, block.summary = _first_view(payload, urls)
    return block


def _first_view(payload: services.Payload, urls: jsontree.TreeUrls) -> tuple[Any, list[str] | None]:
    """The tree and (large payloads) the summary, from the head when there is one."""
    value = payload.first_view()
    tree = jsontree.render_tree(value, size=payload.size, urls=urls)
    if payload.size > jsontree.LARGE_LIMIT:
        return tree, jsontree.summary(value, payload.size)
    return tree, None


def panel_context(
    detail: services.Detail, node_id: str, given: dict[str, PayloadResult] | None = None
) -> dict[str, Any]:
    """The step panel. Payloads come from `given`, else cached ones at once and the others
    from a task (started here); without a task they load through the tree view."""
    execution = detail.execution
    step = next((s for s in detail.steps if s.node_id == node_id), None)
    component = components_of(detail.workflow.definition).get(node_id)
    known = step is not None or component is not None
    blocks = []
    if step is not None and linkable(node_id):
        for kind in KINDS:
            if given is not None and kind in given:
                result = given[kind]
            else:
                result = services.payload_request(execution, step, kind, inline=False)
            blocks.append(payload_block(execution, node_id, kind, result))
    running = not execution.is_terminal and step is not None and step.ended_at is None
    return {
        "execution": execution,
        "node_id": node_id,
        "known": known,
        "linkable": linkable(node_id),
        "step": step,
        "name": (component or {}).get("name") or "",
        "node_type": (step.node_type if step else "") or (component or {}).get("type") or "",
        "elapsed_ms": elapsed_ms(step.started_at, step.ended_at, running) if step else None,
        "error": services.mask_free_text(step.error) if step is not None else "",
        "blocks": blocks,
        "permalink": step_permalink(execution.pk, node_id),
        "detail_url": detail_url(execution.pk),
    }


def tree_fragment(payload: Any, urls: jsontree.TreeUrls, query: PayloadTreeForm) -> Any:
    """What a payload's tree view asks for (its query validated by PayloadTreeForm): a search,
    a table or a row, else a subtree. Raises jsontree.PathNotFound or ValueError when there is
    no value at that path or the offset is bad.

    `payload` is a services.Payload (a search that its stored text rules out never decodes
    it) or the payload's value itself."""
    data = query.cleaned_data
    if data["q"].strip():
        needle = data["q"][:200]
        if isinstance(payload, services.Payload):
            text = payload.lowered_text()
            if text is not None and not jsontree.may_match(text, needle, lowered=True):
                return jsontree.render_no_match(needle)
            payload = payload.body
        return jsontree.render_search(payload, needle, urls=urls)
    body = payload.body if isinstance(payload, services.Payload) else payload
    tokens = jsontree.pointer_parse(data["path"])
    if data["view"] == "table":
        return jsontree.render_table(body, tokens, urls=urls)
    if data["view"] == "row":
        return jsontree.render_row(body, tokens, urls=urls)
    if "offset" in query.errors:
        raise ValueError("bad offset")
    return jsontree.render_subtree(
        body, tokens, urls=urls, offset=data["offset"], full=data["full"]
    )
