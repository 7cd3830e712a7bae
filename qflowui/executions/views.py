"""Executions pages. For now a placeholder that lists QFlow's workflows through the client."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from qflowui.qflow import client_from_settings
from qflowui.qflow.errors import QflowError

logger = logging.getLogger(__name__)


@require_GET
def execution_list(request: HttpRequest) -> HttpResponse:
    workflows = []
    error = ""
    try:
        workflows = list(client_from_settings().iter_workflows())
    except QflowError as exc:
        logger.warning("listing workflows failed: %s", exc)
        error = str(exc)
    workflows.sort(key=lambda wf: (wf.name or "").lower())
    return render(
        request,
        "executions/list.html",
        {"workflows": workflows, "upstream_error": error},
    )
