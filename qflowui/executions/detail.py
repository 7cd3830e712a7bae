"""Execution detail views: the page, its step panels and their payloads, and the export.

HTTP in, response out: the query string is read by a form (forms.py), the context is built
by qflowui/executions/presentation.py, payloads come from services.py / payloads.py and the
JSON files from export.py.

One URL serves each page and its htmx fragment: the detail page's `#live` part is what the
running-execution poll fetches (htmx's "stop polling" status once terminal); the step
panel, the payload trees and their subtrees are fragments for htmx and plain pages without
it, so every link also works as a link. A payload not cached yet is fetched by a task: its
block shows progress and polls (`?poll=<when asked>`) every second until the tree is there
(then "stop polling").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from qflowui.core import jsonio
from qflowui.executions import export, jsontree, presentation, services
from qflowui.executions.forms import ExecutionPageForm, PayloadDownloadForm, PayloadTreeForm
from qflowui.executions.presentation import PayloadResult
from qflowui.mirror.models import Step

POLL_SECONDS = 5
TEXT = "text/plain; charset=utf-8"


# --- loading -----------------------------------------------------------------------------------


class Unavailable(Exception):
    """The execution cannot be shown; `response` says why (404 unknown, 503 unreachable)."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def answers_unavailable(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The view's answer, or the one its `Unavailable` carries."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Unavailable as exc:
            return exc.response

    return wrapped


def load_or_unavailable(request: HttpRequest, execution_id: UUID) -> services.Detail:
    """The execution, its workflow and steps; raises Unavailable when it cannot be shown."""
    try:
        return services.execution_load(str(execution_id))
    except services.ExecutionUnknown:
        context = {"missing": True, "execution_id": execution_id}
        raise Unavailable(render(request, "executions/detail.html", context, status=404)) from None
    except services.ExecutionUnavailable as exc:
        context = {"missing": True, "unavailable": str(exc), "execution_id": execution_id}
        raise Unavailable(render(request, "executions/detail.html", context, status=503)) from None


def _step(detail: services.Detail, node_id: str) -> Step | None:
    return next((s for s in detail.steps if s.node_id == node_id), None)


# --- views -------------------------------------------------------------------------------------


@require_GET
@answers_unavailable
def execution_detail(request: HttpRequest, execution_id: UUID) -> HttpResponse:
    detail = load_or_unavailable(request, execution_id)
    query = ExecutionPageForm(request.GET)
    query.is_valid()  # a bad value is ignored; the others still apply
    context = presentation.live_context(detail, force=query.force_graph, poll_seconds=POLL_SECONDS)
    if request.htmx and request.htmx.target == "live":
        if detail.execution.is_terminal:
            html = render_to_string("executions/detail.html#live", context, request)
            return HttpResponseStopPolling(html)
        return render(request, "executions/detail.html#live", context)
    if query.selected_step:
        context["panel"] = presentation.panel_context(detail, query.selected_step)
    return render(request, "executions/detail.html", context)


@require_GET
@answers_unavailable
def step_panel(request: HttpRequest, execution_id: UUID, node_id: str) -> HttpResponse:
    detail = load_or_unavailable(request, execution_id)
    context = {"panel": presentation.panel_context(detail, node_id), "execution": detail.execution}
    if request.htmx:
        # htmx swaps only 2xx answers: the panel itself says that the step is unknown.
        return render(request, "executions/_step_panel.html", context)
    status = 200 if context["panel"]["known"] else 404
    context["workflow"] = detail.workflow
    return render(request, "executions/step.html", context, status=status)


@require_GET
@answers_unavailable
def payload_tree(request: HttpRequest, execution_id: UUID, node_id: str, kind: str) -> HttpResponse:
    """A payload's first view (no parameters), a subtree by `path`, more children (`offset`),
    a table view (`view=table`), the whole of a long string (`full`) or a search (`q`)."""
    detail = load_or_unavailable(request, execution_id)
    query = PayloadTreeForm(request.GET)
    query.is_valid()
    step = _step(detail, node_id)
    if not query.asks_for_view:
        return _first_view(request, detail, step, node_id, kind, query.cleaned_data["poll"])
    payload = services.step_payload(detail.execution, step, kind, prefer_cached=True)
    urls = presentation.tree_urls(detail.execution.pk, node_id, kind)
    if not payload.present:
        message = payload.notice or "No data."
        return _tree_response(request, detail, node_id, kind, query, message, 404)
    try:
        html = presentation.tree_fragment(payload, urls, query)
    except (jsontree.PathNotFound, ValueError):
        message = "No value at this path."
        return _tree_response(request, detail, node_id, kind, query, message, 404)
    if request.htmx:
        return HttpResponse(html)
    return _tree_response(request, detail, node_id, kind, query, "", 200, html)


def _first_view(
    request: HttpRequest,
    detail: services.Detail,
    step: Step | None,
    node_id: str,
    kind: str,
    since: float | None,
) -> HttpResponse:
    """The payload block: the tree when cached, else progress while a task fetches it.

    A poll (`since`: `?poll=`) that gets the tree or a reason why not answers "stop polling".
    Without htmx, the step page, whose block says to reload while the fetch goes on.
    """
    execution = detail.execution
    if since is not None:
        result: PayloadResult = services.payload_poll(execution, step, kind, since)
    else:
        result = services.payload_request(execution, step, kind)
    if not request.htmx:
        context = {
            "panel": presentation.panel_context(detail, node_id, {kind: result}),
            "execution": execution,
            "workflow": detail.workflow,
        }
        return render(request, "executions/step.html", context)
    block = presentation.payload_block(execution, node_id, kind, result)
    context = {"block": block, "execution": execution, "node_id": node_id}
    if since is not None and block.pending is None:
        return HttpResponseStopPolling(
            render_to_string("executions/_payload.html", context, request)
        )
    return render(request, "executions/_payload.html", context)


def _tree_response(
    request: HttpRequest,
    detail: services.Detail,
    node_id: str,
    kind: str,
    query: PayloadTreeForm,
    message: str,
    status: int,
    html: Any = None,
) -> HttpResponse:
    if request.htmx:
        return render(request, "executions/_tree_message.html", {"message": message})
    context = {
        "panel": presentation.panel_context(detail, node_id),
        "execution": detail.execution,
        "workflow": detail.workflow,
        "focus": {
            "kind": kind,
            "path": query.cleaned_data["path"],
            "query": query.cleaned_data["q"],
            "html": html,
            "message": message,
        },
    }
    return render(request, "executions/step.html", context, status=status)


@require_GET
@answers_unavailable
def payload_download(
    request: HttpRequest, execution_id: UUID, node_id: str, kind: str
) -> HttpResponse:
    """The masked payload (or the value at `path`) as a JSON file."""
    detail = load_or_unavailable(request, execution_id)
    query = PayloadDownloadForm(request.GET)
    query.is_valid()
    step = _step(detail, node_id)
    payload = services.step_payload(detail.execution, step, kind, prefer_cached=True)
    if not payload.present:
        return HttpResponse(payload.notice or "No data.", status=404, content_type=TEXT)
    value = payload.body
    path = query.cleaned_data["path"]
    if path:
        try:
            value = jsontree.resolve(value, jsontree.pointer_parse(path))
        except jsontree.PathNotFound:
            return HttpResponse("No value at this path.", status=404, content_type=TEXT)
    # Big: written compact, and streamed. A value at a path is weighed decoded (~4 x JSON).
    limit = export.STREAM_BYTES
    big = jsonio.sizeof(value) > 4 * limit if path else payload.size > limit
    response = export.json_file(value, indent=not big, stream=big)
    name = export.filename(str(execution_id)[:8], node_id, kind)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@answers_unavailable
def execution_export(request: HttpRequest, execution_id: UUID) -> HttpResponse:
    detail = load_or_unavailable(request, execution_id)
    document = services.execution_export(detail)
    big = jsonio.sizeof(document) > 4 * export.STREAM_BYTES
    response = export.json_file(document, indent=True, stream=big)
    name = export.filename("execution", str(execution_id))
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
