"""Execution detail: header, step graph, steps and timeline, step panels with their payloads.

One URL serves each page and its htmx fragment: the detail page's `#live` part is what the
running-execution poll fetches (status 286 once terminal, which stops htmx polling); the
step panel, the payload trees and their subtrees are fragments for htmx and plain pages
without it, so every link also works as a link. A payload not cached yet is fetched by a
task: its block shows progress and polls (`?poll=<when asked>`) every second until the
tree is there (286).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode
from uuid import UUID

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from qflowui.core import jsonio
from qflowui.executions import graph as graphs
from qflowui.executions import jsontree, services
from qflowui.executions.provenance import started_by
from qflowui.executions.templatetags import qflow_format
from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, Step
from qflowui.qflow.errors import QflowInvalidId
from qflowui.qflow.validate import check_node_id

logger = logging.getLogger(__name__)

HTMX_STOP_POLLING = 286
POLL_SECONDS = 5
KINDS = services.KINDS


# --- urls ------------------------------------------------------------------------------------


def detail_url(execution_id: Any) -> str:
    return reverse("executions:detail", args=[execution_id])


def workflow_url(workflow_id: Any) -> str:
    """The executions list filtered to one workflow."""
    return f"{reverse('executions:list')}?{urlencode({'workflow': str(workflow_id)})}"


def linkable(node_id: str) -> bool:
    """Node ids that can be a URL path segment (the API client refuses the others too)."""
    try:
        check_node_id(node_id)
    except QflowInvalidId:
        return False
    return True


def step_url(execution_id: Any, node_id: str) -> str:
    return f"{detail_url(execution_id)}steps/{quote(node_id, safe='')}/"


def step_permalink(execution_id: Any, node_id: str) -> str:
    return f"{detail_url(execution_id)}?{urlencode({'step': node_id})}"


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
    base = step_url(execution_id, node_id)
    return jsontree.TreeUrls(tree=f"{base}{kind}/tree", download=f"{base}{kind}.json")


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


def _elapsed(start: datetime | None, end: datetime | None, running: bool) -> int | None:
    if start is None:
        return None
    if end is None:
        if not running:
            return None
        end = timezone.now()
    return max(0, int((end - start).total_seconds() * 1000))


def _components(definition: Any) -> dict[str, dict[str, Any]]:
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


def _categories(categories: Any) -> list[tuple[str, list[str]]]:
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


@dataclass
class TimelineRow:
    node_id: str
    label: str
    title: str
    status_class: str
    is_failed: bool
    x: float
    width: float
    y: float
    text_y: float
    link: dict[str, str]


TL_LEFT, TL_RIGHT, TL_ROW, TL_TOP = 250.0, 990.0, 22.0, 24.0


# Tick steps in ms: the smallest that gives at most TL_MAX_TICKS intervals is used, so labels
# are round and, at the precision each step needs, never repeat ("+1 s +1 s").
TL_MAX_TICKS = 5
_SECOND, _MINUTE, _HOUR, _DAY = 1000, 60_000, 3_600_000, 86_400_000
TL_STEPS = (
    *(m * 10**e for e in range(4) for m in (1, 2, 2.5, 5)),
    *(n * _SECOND for n in (10, 15, 30)),
    *(n * _MINUTE for n in (1, 2, 5, 10, 15, 30)),
    *(n * _HOUR for n in (1, 2, 3, 6, 12)),
    *(n * _DAY for n in (1, 2, 7, 14, 30, 90, 365)),
)


def timeline_ticks(span_ms: float) -> list[tuple[float, str]]:
    """(offset in ms, label) of the timeline's axis: round offsets from 0 to at most `span_ms`,
    labelled `0`, `+250 ms`, `+0.25 s`, `+15 s`, `+1 m 30 s`, `+2 h`... all different."""
    span_ms = max(span_ms, 1.0)
    step = next((s for s in TL_STEPS if span_ms / s <= TL_MAX_TICKS), None)
    if step is None:
        step = 365 * _DAY * math.ceil(span_ms / (365 * _DAY) / TL_MAX_TICKS)
    count = int(span_ms / step + 1e-9)
    return [(i * step, _tick_label(i * step, step, span_ms)) for i in range(count + 1)]


def _tick_label(ms: float, step: float, span_ms: float) -> str:
    if ms == 0:
        return "0"
    if step < _SECOND:
        if span_ms < _SECOND:
            return f"+{ms:g} ms" if step >= 1 else f"+{ms:.1f} ms"
        decimals = 1 if step % 100 == 0 else 2 if step % 10 == 0 else 3
        return f"+{ms / _SECOND:.{decimals}f} s"
    return "+" + qflow_format.duration(int(ms))


def _timeline(execution: Execution, rows: list[StepRow]) -> dict[str, Any] | None:
    timed = [r for r in rows if r.step.started_at is not None]
    if not timed:
        return None
    now = timezone.now()
    t0 = min([execution.started_at, *[r.step.started_at for r in timed]])
    ends = [
        r.step.ended_at or (now if not execution.is_terminal else r.step.started_at) for r in timed
    ]
    t1 = max([execution.ended_at or (now if not execution.is_terminal else t0), *ends])
    span = max((t1 - t0).total_seconds(), 0.001)
    width = TL_RIGHT - TL_LEFT
    out = []
    for index, (row, end) in enumerate(zip(timed, ends, strict=True)):
        start = (row.step.started_at - t0).total_seconds() / span
        stop = (end - t0).total_seconds() / span
        y = TL_TOP + index * TL_ROW
        label = row.name or row.step.node_id
        label = label if len(label) <= 34 else label[:33] + "…"
        out.append(
            TimelineRow(
                node_id=row.step.node_id,
                label=label,
                title=f"{row.name or row.step.node_id}: {row.step.status or 'no status'}",
                status_class=row.step.status_class.replace("_", "-"),
                is_failed=row.is_failed,
                x=round(TL_LEFT + start * width, 1),
                width=round(max((stop - start) * width, 2.0), 1),
                y=y + 3,
                text_y=y + 14,
                link=row.link,
            )
        )
    ticks = []
    span_ms = span * 1000
    for ms, label in timeline_ticks(span_ms):
        fraction = ms / span_ms
        anchor = "start" if ms == 0 else "end" if fraction > 0.94 else "middle"
        ticks.append(
            {"x": round(TL_LEFT + fraction * width, 1), "ms": ms, "label": label, "anchor": anchor}
        )
    height = TL_TOP + len(out) * TL_ROW + 6
    return {"rows": out, "ticks": ticks, "height": height, "bottom": height - 4, "left": TL_LEFT}


def _step_rows(detail: services.Detail) -> list[StepRow]:
    components = _components(detail.workflow.definition)
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
                elapsed_ms=_elapsed(step.started_at, step.ended_at, running and not step.ended_at),
                link=step_link_attrs(detail.execution.pk, step.node_id),
                is_failed=failed is not None and step.pk == failed.pk,
            )
        )
    return rows


def _live_context(request: HttpRequest, detail: services.Detail) -> dict[str, Any]:
    execution = detail.execution
    force = request.GET.get("graph") == "force"
    rows = _step_rows(detail)
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
        "poll_url": detail_url(execution.pk)
        + (f"?{urlencode(poll_params)}" if poll_params else ""),
        "poll_seconds": POLL_SECONDS,
        "live": not execution.is_terminal,
        "notices": detail.notices,
        "rows": rows,
        "failed": failed_row,
        "failed_error": services.mask_free_text(failed.error) if failed is not None else "",
        "elapsed_ms": execution.duration_ms
        if execution.duration_ms is not None
        else _elapsed(execution.started_at, execution.ended_at, not execution.is_terminal),
        "categories": _categories(execution.categories),
        "variables": _strings(execution.variables),
        "tags": _strings(execution.tags),
        "parent": parent,
        "children": children,
        "graph": _graph(detail, parent, children, force),
        "timeline": _timeline(execution, rows),
        "export_url": reverse("executions:export", args=[execution.pk]),
        "run_again_url": f"/runs/new/?{urlencode({'from': str(execution.pk)})}",
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


def _payload_block(
    execution: Execution, node_id: str, kind: str, payload: PayloadResult
) -> PayloadBlock:
    urls = tree_urls(execution.pk, node_id, kind)
    if isinstance(payload, services.Pending):
        block = PayloadBlock(kind, kind.capitalize(), f"payload-{kind}", urls, None)
        block.pending = payload
        block.poll_url = f"{urls.tree}?{urlencode({'poll': f'{payload.since:.3f}'})}"
        return block
    block = PayloadBlock(kind, kind.capitalize(), f"payload-{kind}", urls, payload)
    if payload is not None and payload.present:
        block.tree = jsontree.render_tree(payload.body, size=payload.size, urls=urls)
        if payload.size > jsontree.LARGE_LIMIT:
            block.summary = jsontree.summary(payload.body, payload.size)
    return block


def _panel_context(
    detail: services.Detail, node_id: str, given: dict[str, PayloadResult] | None = None
) -> dict[str, Any]:
    """The step panel. Payloads come from `given`, else cached ones at once and the others
    from a task (started here); without a task they load through the tree view."""
    execution = detail.execution
    step = next((s for s in detail.steps if s.node_id == node_id), None)
    component = _components(detail.workflow.definition).get(node_id)
    known = step is not None or component is not None
    blocks = []
    if step is not None and linkable(node_id):
        for kind in KINDS:
            if given is not None and kind in given:
                result = given[kind]
            else:
                result = services.payload_request(execution, step, kind, inline=False)
            blocks.append(_payload_block(execution, node_id, kind, result))
    running = not execution.is_terminal and step is not None and step.ended_at is None
    return {
        "execution": execution,
        "node_id": node_id,
        "known": known,
        "linkable": linkable(node_id),
        "step": step,
        "name": (component or {}).get("name") or "",
        "node_type": (step.node_type if step else "") or (component or {}).get("type") or "",
        "elapsed_ms": _elapsed(step.started_at, step.ended_at, running) if step else None,
        "error": services.mask_free_text(step.error) if step is not None else "",
        "blocks": blocks,
        "permalink": step_permalink(execution.pk, node_id),
        "detail_url": detail_url(execution.pk),
    }


# --- views -------------------------------------------------------------------------------------


def _load(request: HttpRequest, execution_id: UUID) -> services.Detail | HttpResponse:
    try:
        return services.execution_load(str(execution_id))
    except services.ExecutionUnknown:
        return render(
            request,
            "executions/detail.html",
            {"missing": True, "execution_id": execution_id},
            status=404,
        )
    except services.ExecutionUnavailable as exc:
        return render(
            request,
            "executions/detail.html",
            {"missing": True, "unavailable": str(exc), "execution_id": execution_id},
            status=503,
        )


@require_GET
def execution_detail(request: HttpRequest, execution_id: UUID) -> HttpResponse:
    detail = _load(request, execution_id)
    if isinstance(detail, HttpResponse):
        return detail
    context = _live_context(request, detail)
    if request.htmx and request.htmx.target == "live":
        status = HTMX_STOP_POLLING if detail.execution.is_terminal else 200
        return render(request, "executions/detail.html#live", context, status=status)
    selected = request.GET.get("step")
    if selected:
        context["panel"] = _panel_context(detail, selected[:300])
    return render(request, "executions/detail.html", context)


@require_GET
def step_panel(request: HttpRequest, execution_id: UUID, node_id: str) -> HttpResponse:
    detail = _load(request, execution_id)
    if isinstance(detail, HttpResponse):
        return detail
    context = {"panel": _panel_context(detail, node_id), "execution": detail.execution}
    if request.htmx:
        # htmx swaps only 2xx answers: the panel itself says that the step is unknown.
        return render(request, "executions/_step_panel.html", context)
    status = 200 if context["panel"]["known"] else 404
    context["workflow"] = detail.workflow
    return render(request, "executions/step.html", context, status=status)


_PATH_PARAMS = ("path", "q", "view", "offset", "full")


@require_GET
def payload_tree(request: HttpRequest, execution_id: UUID, node_id: str, kind: str) -> HttpResponse:
    """A payload's first view (no parameters), a subtree by `path`, more children (`offset`),
    a table view (`view=table`), the whole of a long string (`full`) or a search (`q`)."""
    detail = _load(request, execution_id)
    if isinstance(detail, HttpResponse):
        return detail
    execution = detail.execution
    step = next((s for s in detail.steps if s.node_id == node_id), None)
    if not any(p in request.GET for p in _PATH_PARAMS):
        return _first_view(request, detail, step, node_id, kind)
    payload = services.step_payload(execution, step, kind, prefer_cached=True)
    urls = tree_urls(execution.pk, node_id, kind)
    if not payload.present:
        return _tree_response(request, detail, node_id, kind, payload.notice or "No data.", 404)
    try:
        html = _tree_fragment(request, payload.body, urls)
    except (jsontree.PathNotFound, ValueError):
        return _tree_response(request, detail, node_id, kind, "No value at this path.", 404)
    if request.htmx:
        return HttpResponse(html)
    return _tree_response(request, detail, node_id, kind, "", 200, html)


def _first_view(
    request: HttpRequest, detail: services.Detail, step: Step | None, node_id: str, kind: str
) -> HttpResponse:
    """The payload block: the tree when cached, else progress while a task fetches it.

    A poll (`?poll=`) that gets the tree or a reason why not answers 286: htmx stops polling.
    Without htmx, the step page, whose block says to reload while the fetch goes on.
    """
    execution = detail.execution
    since = _poll_since(request)
    if since is not None:
        result: PayloadResult = services.payload_poll(execution, step, kind, since)
    else:
        result = services.payload_request(execution, step, kind)
    if not request.htmx:
        context = {
            "panel": _panel_context(detail, node_id, {kind: result}),
            "execution": execution,
            "workflow": detail.workflow,
        }
        return render(request, "executions/step.html", context)
    block = _payload_block(execution, node_id, kind, result)
    context = {"block": block, "execution": execution, "node_id": node_id}
    if since is not None and block.pending is None:
        return HttpResponseStopPolling(
            render_to_string("executions/_payload.html", context, request)
        )
    return render(request, "executions/_payload.html", context)


def _poll_since(request: HttpRequest) -> float | None:
    """When the polled fetch was asked for (epoch seconds), or None for a first view."""
    try:
        value = float(request.GET.get("poll", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _tree_fragment(request: HttpRequest, body: Any, urls: jsontree.TreeUrls) -> Any:
    query = request.GET.get("q", "")
    if query.strip():
        return jsontree.render_search(body, query[:200], urls=urls)
    tokens = jsontree.pointer_parse(request.GET.get("path", ""))
    view = request.GET.get("view")
    if view == "table":
        return jsontree.render_table(body, tokens, urls=urls)
    if view == "row":
        return jsontree.render_row(body, tokens, urls=urls)
    offset = int(request.GET.get("offset") or 0)
    if offset < 0:
        raise ValueError("negative offset")
    return jsontree.render_subtree(
        body, tokens, urls=urls, offset=offset, full=request.GET.get("full") == "1"
    )


def _tree_response(
    request: HttpRequest,
    detail: services.Detail,
    node_id: str,
    kind: str,
    message: str,
    status: int,
    html: Any = None,
) -> HttpResponse:
    if request.htmx:
        return render(request, "executions/_tree_message.html", {"message": message})
    context = {
        "panel": _panel_context(detail, node_id),
        "execution": detail.execution,
        "workflow": detail.workflow,
        "focus": {
            "kind": kind,
            "path": request.GET.get("path", ""),
            "query": request.GET.get("q", ""),
            "html": html,
            "message": message,
        },
    }
    return render(request, "executions/step.html", context, status=status)


_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _filename(*parts: str) -> str:
    return "-".join(_FILENAME_UNSAFE.sub("_", p)[:80] for p in parts if p) + ".json"


@require_GET
def payload_download(
    request: HttpRequest, execution_id: UUID, node_id: str, kind: str
) -> HttpResponse:
    """The masked payload (or the value at `path`) as a JSON file."""
    detail = _load(request, execution_id)
    if isinstance(detail, HttpResponse):
        return detail
    step = next((s for s in detail.steps if s.node_id == node_id), None)
    payload = services.step_payload(detail.execution, step, kind, prefer_cached=True)
    if not payload.present:
        return HttpResponse(
            payload.notice or "No data.", status=404, content_type="text/plain; charset=utf-8"
        )
    value = payload.body
    path = request.GET.get("path", "")
    if path:
        try:
            value = jsontree.resolve(value, jsontree.pointer_parse(path))
        except jsontree.PathNotFound:
            return HttpResponse(
                "No value at this path.", status=404, content_type="text/plain; charset=utf-8"
            )
    # Big: written compact, and streamed. A value at a path is weighed decoded (~4 x JSON).
    big = jsonio.sizeof(value) > 4 * STREAM_BYTES if path else payload.size > STREAM_BYTES
    response = _json_file(value, indent=not big, stream=big)
    name = _filename(str(execution_id)[:8], node_id, kind)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
def execution_export(request: HttpRequest, execution_id: UUID) -> HttpResponse:
    detail = _load(request, execution_id)
    if isinstance(detail, HttpResponse):
        return detail
    document = services.execution_export(detail)
    response = _json_file(document, indent=True, stream=jsonio.sizeof(document) > 4 * STREAM_BYTES)
    response["Content-Disposition"] = (
        f'attachment; filename="{_filename("execution", str(execution_id))}"'
    )
    return response


# Downloads bigger than this (JSON bytes; decoded values weigh ~4 times more) are streamed.
STREAM_BYTES = 1_000_000


def _json_file(value: Any, *, indent: bool, stream: bool) -> HttpResponse:
    """`value` as a JSON response, written by orjson: streamed in pieces when big, so its
    text is never held whole; else one bytes object (no str copy on the way out). 422 when
    nested too deep to write (values stored before qflowui bounded depth)."""
    content_type = "application/json; charset=utf-8"
    if stream:
        return StreamingHttpResponse(_pieces(value, indent), content_type=content_type)
    try:
        try:
            text = jsonio.dumps(value, indent=indent)
        except jsonio.JsonTooDeep:
            # A document (the export) holding values each within the bound, together deeper.
            text = b"".join(jsonio.iter_dumps(value, indent=indent))
        return HttpResponse(text, content_type=content_type)
    except ValueError as exc:
        return HttpResponse(
            f"qflowui cannot write this value as JSON: {exc}.",
            status=422,
            content_type="text/plain; charset=utf-8",
        )


def _pieces(value: Any, indent: bool) -> Iterator[bytes]:
    try:
        yield from jsonio.iter_dumps(value, indent=indent)
    except ValueError:
        # Only a value stored before qflowui bounded depth can get here; the file ends
        # without its closing brackets, so nobody takes it for a complete document.
        logger.exception("a JSON download could not be written to the end")
