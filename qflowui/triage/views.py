"""/failures/: what is failing, since when and why, across every run in range."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from qflowui.executions.forms import RANGES
from qflowui.executions.listing import sync_freshness, workflow_choices
from qflowui.triage.failures import NEW_FOR, failure_report
from qflowui.triage.forms import (
    SORTS,
    WORKFLOW_SORTS,
    FailureFilterForm,
    FailureFilters,
    WorkflowFilterForm,
    WorkflowFilters,
)
from qflowui.triage.workflows import cloud_choices, workflow_overview

TEMPLATE = "triage/failures.html"
WORKFLOWS_TEMPLATE = "triage/workflows.html"


@require_GET
def failures(request: HttpRequest) -> HttpResponse:
    form = FailureFilterForm(request.GET)
    form.is_valid()  # a bad value gets its message; the valid ones still apply
    filters = form.filters()
    now = timezone.now()
    report = failure_report(filters, now=now, tz=timezone.get_current_timezone())
    workflows = workflow_choices()
    current = str(filters.workflow) if filters.workflow else ""
    context = {
        "form": form,
        "filters": filters,
        "report": report,
        "freshness": sync_freshness(),
        "new_hours": int(NEW_FOR.total_seconds() // 3600),
        "range_label": RANGES[filters.range][1],
        "presets": [
            {
                "key": key,
                "short": short,
                "long": long,
                "current": filters.range == key,
                "url": _url(filters, range=key),
            }
            for key, (short, long, _) in RANGES.items()
        ],
        "sorts": [
            {
                "key": key,
                "label": label,
                "current": filters.sort == key,
                "url": _url(filters, sort=key),
            }
            for key, label in SORTS.items()
        ],
        "workflow_options": [
            {"id": i, "name": name, "selected": i == current} for i, name, _ in workflows
        ],
        "cloud_options": sorted(
            {cloud for _, _, cloud in workflows if cloud} | _set(filters.cloud)
        ),
        "list_url": reverse(
            "executions:list", query={**filters.list_params(), "status": "failed,timed_out"}
        ),
    }
    template = TEMPLATE
    if request.htmx and not request.htmx.history_restore_request:
        template += "#results"
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


def _set(value: str) -> set[str]:
    return {value} if value else set()


def _url(filters: FailureFilters, **changes: str) -> str:
    params = {
        "range": filters.range,
        "workflow": str(filters.workflow) if filters.workflow else "",
        "cloud": filters.cloud,
        "region": filters.region,
        "source": filters.source,
        "sort": filters.sort,
        **changes,
    }
    return reverse("triage:failures", query={k: v for k, v in params.items() if v})


@require_GET
def workflows(request: HttpRequest) -> HttpResponse:
    """/workflows/: every mirrored workflow, how it has been doing, worst first by default."""
    form = WorkflowFilterForm(request.GET)
    form.is_valid()  # a bad value gets its message; the valid ones still apply
    filters = form.filters()
    overview = workflow_overview(filters, now=timezone.now(), tz=timezone.get_current_timezone())
    fragment = bool(request.htmx and not request.htmx.history_restore_request)
    context = {
        "form": form,
        "filters": filters,
        "overview": overview,
        "fragment": fragment,
        "freshness": sync_freshness(),
        "sorts": [
            {
                "key": key,
                "label": label,
                "current": filters.sort == key,
                "url": _workflows_url(filters, sort=key),
            }
            for key, label in WORKFLOW_SORTS.items()
        ],
        "cloud_options": sorted(set(cloud_choices()) | _set(filters.cloud)),
    }
    template = WORKFLOWS_TEMPLATE + ("#results" if fragment else "")
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


def _workflows_url(filters: WorkflowFilters, **changes: str) -> str:
    return reverse("workflows:list", query=filters.params(**changes))
