"""/audit/: the team's audit log, for staff. Filters by kind, user and date (UTC)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from qflowui.accounts import audit
from qflowui.accounts.forms import AuditFilterForm
from qflowui.runs.models import AuditEvent

PAGE_SIZE = 100

# What each kind of the filter selects.
KIND_FILTERS: dict[str, Q] = {
    "signin": Q(action=audit.LOGIN),
    "failed": Q(action=audit.LOGIN_FAILED),
    "lockout": Q(action__in=[audit.LOCKED_OUT, audit.UNLOCKED]),
    "signout": Q(action=audit.LOGOUT),
    "run": Q(action__startswith="run.") & ~Q(action__endswith=".denied"),
    "denied": Q(action__endswith=".denied"),
}


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def filtered_events(params: dict[str, Any]) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.order_by("-at", "-id")
    if params.get("kind"):
        events = events.filter(KIND_FILTERS[params["kind"]])
    if params.get("action"):
        events = events.filter(action=params["action"])
    if params.get("user"):
        events = events.filter(actor_name__icontains=params["user"])
    if params.get("start"):
        events = events.filter(at__gte=_day_start(params["start"]))
    if params.get("end"):
        events = events.filter(at__lt=_day_start(params["end"]) + timedelta(days=1))
    return events


@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        audit.audit_record(action=audit.AUDIT_DENIED, request=request, target="audit log")
        return render(request, "runs/denied.html", {"what": "read the audit log"}, status=403)
    form = AuditFilterForm(request.GET)
    form.is_valid()  # the valid filters apply; the bad ones are shown with their message
    params = form.cleaned_data
    page = Paginator(filtered_events(params), PAGE_SIZE).get_page(params.get("page") or 1)
    rows = [{"event": e, "detail": json.dumps(e.detail, sort_keys=True)} for e in page]
    context = {"form": form, "rows": rows, "page": page, "action": params.get("action", "")}
    return render(request, "accounts/audit.html", context)
