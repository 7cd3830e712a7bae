"""Run pages: the form (/runs/new/), a run (/runs/<id>/) with a Runner's review of a run
whose answer was lost (/runs/<id>/review/), the history (/runs/), and the header's scheduler
warning (/runs/scheduler/).

The audit log is at /audit/ (qflowui/accounts/audit_views.py).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.http.request import RawPostDataException
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from qflowui.mirror.models import Execution, Workflow
from qflowui.runs import audit
from qflowui.runs import overrides as ov
from qflowui.runs.display import shown_body, shown_json, shown_text, shown_variables
from qflowui.runs.forms import RunForm
from qflowui.runs.heartbeat import beat_status
from qflowui.runs.models import DOUBTFUL_STATES, Run, RunState
from qflowui.runs.prefill import connector_ids_seen, run_prefill, workflow_variables
from qflowui.runs.services import (
    DID_NOT_START,
    STARTED,
    IdempotencyConflict,
    body_digest,
    looking_until,
    run_create,
    run_execution_refresh,
    run_review,
)

RUN_PERMISSION = "runs.run_workflow"


def _can_run(request: HttpRequest) -> bool:
    return request.user.has_perm(RUN_PERMISSION)


def _denied(request: HttpRequest, what: str) -> HttpResponse:
    return render(request, "runs/denied.html", {"what": what}, status=403)


# --- the form ------------------------------------------------------------------------------


# The form's CSRF check needs the POST parsed. A POST Django refuses to parse (more fields than
# DATA_UPLOAD_MAX_NUMBER_FIELDS, e.g. hundreds of custom variables, or a body larger than
# DATA_UPLOAD_MAX_MEMORY_SIZE) would make the CSRF middleware answer a bare "Bad Request";
# so the view is exempt from the middleware, refuses such a POST itself with the form and a
# message (it changes nothing), and makes the CSRF check on every other request.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            request.POST  # noqa: B018 - parsed here, where its refusal can be answered
        except (TooManyFieldsSent, RequestDataTooBig) as exc:
            return _form_unreadable(request, exc)
    return _run_new(request)


@csrf_protect
def _run_new(request: HttpRequest) -> HttpResponse:
    if not _can_run(request):
        workflow = request.POST.get("workflow") or request.GET.get("workflow") or ""
        audit.audit_record(
            action=audit.RUN_DENIED,
            request=request,
            target=f"workflow {workflow[:60]}" if workflow else "run form",
            detail={"method": request.method, "reason": f"missing permission {RUN_PERMISSION}"},
        )
        return _denied(request, "run workflows")
    if request.method == "GET":
        return _form_get(request)
    return _form_post(request)


def _form_get(request: HttpRequest) -> HttpResponse:
    prefill = run_prefill(
        workflow_id=request.GET.get("workflow", "")[:64],
        from_execution=request.GET.get("from", "")[:64],
        again=request.GET.get("again", "")[:20],
    )
    form = RunForm(initial={**prefill.initial, "idempotency_key": uuid.uuid4()})
    context = _form_context(form, notes=prefill.notes, source=prefill.execution, again=prefill.run)
    if request.htmx and request.htmx.target == "workflow-info":
        return render(request, "runs/form.html#workflow-info", context)
    return render(request, "runs/form.html", context)


def _form_unreadable(request: HttpRequest, exc: Exception) -> HttpResponse:
    """The form's POST was too large for Django to read: say why, on the form; nothing runs."""
    if not _can_run(request):
        audit.audit_record(
            action=audit.RUN_DENIED,
            request=request,
            target="run form",
            detail={"method": request.method, "reason": f"missing permission {RUN_PERMISSION}"},
        )
        return _denied(request, "run workflows")
    limit = ov.max_custom_variables()
    if isinstance(exc, TooManyFieldsSent):
        pairs = _posted_pairs(request)
        kept: dict[str, str] = {}
        for name, value in pairs:
            if name in ("workflow", "input"):
                kept.setdefault(name, value)
        custom = sum(1 for name, value in pairs if _CUSTOM_KEY.match(name) and value.strip())
        sent = f" ({custom:,} custom variables)" if custom else ""
        error = (
            f"This form sent too many fields for the server to read{sent}. At most {limit} "
            "custom variables can be set. Nothing was run; the workflow and input are kept "
            "below: set the variables you need again."
        )
    else:
        kept = {}
        error = (
            f"This form is larger than the server accepts "
            f"({ov.size_text(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)}). The input is limited to "
            f"{ov.size_text(ov.max_input_bytes())} and each variable value to "
            f"{ov.size_text(ov.max_variable_bytes())}. Nothing was run."
        )
    form = RunForm(initial={**kept, "idempotency_key": uuid.uuid4()})
    context = _form_context(form, errors=[error])
    return render(request, "runs/form.html", context, status=400)


_CUSTOM_KEY = re.compile(r"^var_key_\d+$")


def _posted_pairs(request: HttpRequest) -> list[tuple[str, str]]:
    """The fields of a urlencoded POST Django refused to parse (too many), best effort."""
    if request.content_type != "application/x-www-form-urlencoded":
        return []
    try:
        return parse_qsl(request.body.decode(), keep_blank_values=True)
    except (RawPostDataException, RequestDataTooBig, UnicodeDecodeError, ValueError):
        return []


def _form_post(request: HttpRequest) -> HttpResponse:
    form = RunForm(request.POST)
    if not form.is_valid():
        return render(request, "runs/form.html", _form_context(form), status=400)
    body = form.body()
    workflow = form.workflow_object()
    digest = body_digest(workflow.pk, body)
    previewed = request.POST.get("preview_digest", "")
    if request.POST.get("action") != "confirm" or (previewed and previewed != digest):
        # Said inside the preview, which the page scrolls to.
        changed = request.POST.get("action") == "confirm"
        context = _form_context(form, preview=body, digest=digest, changed=changed)
        return render(request, "runs/form.html", context)
    try:
        run, created = run_create(
            user=request.user,
            workflow=workflow,
            body=body,
            idempotency_key=form.cleaned_data["idempotency_key"],
            request=request,
        )
    except IdempotencyConflict as exc:
        form.add_error(None, str(exc))
        return render(request, "runs/form.html", _form_context(form), status=409)
    if not created:
        messages.info(request, "This form was already submitted; this is the run it started.")
    return redirect(run)


def _form_context(
    form: RunForm,
    *,
    notes: list[str] | None = None,
    source: Execution | None = None,
    preview: dict[str, Any] | None = None,
    digest: str = "",
    errors: list[str] | None = None,
    again: Run | None = None,
    changed: bool = False,
) -> dict[str, Any]:
    workflow = form.workflow_object()
    return {
        "doubtful_runs": _doubtful_runs(workflow),
        "again": again,
        "page_errors": errors or [],
        "form": form,
        # Named as the page shows them ("Custom variable 1 value"), never var_value_0.
        "error_fields": [f for f in form.visible_fields() if f.errors] if form.is_bound else [],
        "workflow": workflow,
        "workflow_variables": workflow_variables(workflow),
        "connector_ids": connector_ids_seen(workflow),
        "oci_regions": ov.OCI_REGIONS,
        "cloud_groups": _cloud_groups(form, ov.cloud_name(workflow.cloud if workflow else "")),
        "legacy_fields": [form[name] for name in ov.LEGACY_FIELDS],
        "notes": notes or [],
        "source": source,
        "preview": shown_body(preview) if preview is not None else None,
        "preview_notes": form.notes() if preview is not None else [],
        "preview_warnings": form.warnings() if preview is not None else [],
        "preview_changed": changed,
        "digest": digest,
    }


def _doubtful_runs(workflow: Workflow | None) -> list[Run]:
    """Runs of this workflow whose answer was lost and that no execution is tied to yet: they
    may still be running, and running the workflow again may start it twice."""
    if workflow is None:
        return []
    doubtful = Run.objects.filter(workflow=workflow, state__in=DOUBTFUL_STATES)
    return list(doubtful.select_related("created_by").order_by("-queued_at")[:5])


def _cloud_groups(form: RunForm, cloud: str) -> list[dict[str, Any]]:
    return [
        {
            "cloud": name,
            "fields": [form[f] for f in fields],
            # Open the workflow's own cloud, and any group the user already filled in.
            "open": name == cloud or any(form[f].value() for f in fields),
        }
        for name, fields in ov.CLOUD_FIELDS.items()
    ]


# --- one run -----------------------------------------------------------------------------------


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(
        Run.objects.select_related("created_by", "workflow", "reviewed_by"), pk=pk
    )
    execution, notice = (None, "")
    if run.state == RunState.SUBMITTED:
        execution, notice = run_execution_refresh(run)
    # Stored masked since this change; masked again here for rows stored before it.
    run.error = shown_text(run.error)
    events = list(run.events.all())
    for event in events:
        event.note = shown_text(event.note)
    context = {
        "run": run,
        "execution": execution,
        "upstream_notice": shown_text(notice),
        "events": events,
        "body": shown_body(run.body()),
        "response": shown_json(run.response) if run.response else "",
        "overrides": _short_overrides(run.variables),
        "can_run": _can_run(request),
        "looking_until": looking_until(run) if run.state == RunState.UNKNOWN else None,
        "candidates": _candidates(run) if run.state == RunState.NEEDS_REVIEW else [],
        "decisions": {"started": STARTED, "not_started": DID_NOT_START},
    }
    target = request.htmx.target if request.htmx else None
    if target == "run-status":
        return _fragment(request, "runs/detail.html#run-status", context, poll=run.is_pending)
    if target == "run-execution":
        running = execution is not None and not execution.is_terminal
        return _fragment(request, "runs/detail.html#run-execution", context, poll=running)
    return render(request, "runs/detail.html", context)


def _fragment(
    request: HttpRequest, template: str, context: dict[str, Any], *, poll: bool
) -> HttpResponse:
    """A polled part of the run page; once nothing can change, htmx is told to stop polling."""
    if poll:
        return render(request, template, context)
    return HttpResponseStopPolling(render_to_string(template, context, request))


def _candidates(run: Run) -> list[dict[str, Any]]:
    """The executions listed for review, as stored (variables masked), times parsed."""
    out = []
    for item in run.candidates or []:
        if not isinstance(item, dict) or not item.get("id"):
            continue
        created = parse_datetime(str(item.get("created_at") or ""))
        variables = item.get("variables") if isinstance(item.get("variables"), list) else []
        out.append(
            {
                "id": str(item["id"]),
                "created_at": created,
                "status": shown_text(item.get("status"), 60),
                "variables": [shown_text(v, 300) for v in variables],
            }
        )
    return out


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=[(STARTED, "this is it"), (DID_NOT_START, "not started")])
    execution = forms.UUIDField(required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("decision") == STARTED and not cleaned.get("execution"):
            raise forms.ValidationError("Choose the execution that is this run.")
        return cleaned


@require_POST
def run_review_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """A Runner's answer for a needs_review run: "this is it" or "it did not start"."""
    run = get_object_or_404(Run.objects.only("pk"), pk=pk)
    if not _can_run(request):
        audit.audit_record(
            action=audit.RUN_DENIED,
            request=request,
            target=f"run {run.pk}",
            detail={"action": "review", "reason": f"missing permission {RUN_PERMISSION}"},
        )
        return _denied(request, "decide about runs")
    form = ReviewForm(request.POST)
    if not form.is_valid():
        errors = [e for field in form.errors.values() for e in field]
        messages.error(request, " ".join(errors) or "That answer could not be read.")
        return redirect(run)
    execution = form.cleaned_data.get("execution")
    decision = run_review(
        run.pk,
        user=request.user,
        decision=form.cleaned_data["decision"],
        execution_id=str(execution) if execution else None,
        request=request,
    )
    level = messages.ERROR if decision.refused else messages.SUCCESS
    if not decision.changed and not decision.refused:
        level = messages.INFO
    messages.add_message(request, level, decision.message)
    return redirect(run)


# --- the header's scheduler warning --------------------------------------------------------


@require_GET
def scheduler_status(request: HttpRequest) -> HttpResponse:
    """Loaded by the header: says when Celery beat stopped (nothing while it runs)."""
    beat = beat_status()
    since = ""
    if beat.last is not None:
        last = beat.last.astimezone(UTC)
        today = datetime.now(UTC).date()
        since = f"{last:%H:%M} UTC" if last.date() == today else f"{last:%Y-%m-%d %H:%M} UTC"
    return render(request, "runs/_scheduler.html", {"beat": beat, "since": since})


# --- history ------------------------------------------------------------------------------------


class HistoryQuery(forms.Form):
    mine = forms.BooleanField(required=False)
    state = forms.ChoiceField(required=False, choices=[("", "any"), *RunState.choices])
    page = forms.IntegerField(required=False, min_value=1)


@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    query = HistoryQuery(request.GET)
    query.is_valid()  # bad values are dropped, never a 500
    params = query.cleaned_data
    runs = Run.objects.select_related("created_by").order_by("-queued_at", "-id")
    if params.get("mine"):
        runs = runs.filter(created_by=request.user)
    if params.get("state"):
        runs = runs.filter(state=params["state"])
    page = Paginator(runs, 50).get_page(params.get("page") or 1)
    # The executions' statuses from the mirror: one query for the page.
    ids = [run.execution_id for run in page if run.execution_id]
    executions = (
        {e.pk: e for e in Execution.objects.filter(pk__in=ids).only("status", "status_class")}
        if ids
        else {}
    )
    rows = [
        {
            "run": run,
            "execution": executions.get(run.execution_id),
            "execution_short": str(run.execution_id)[:8] if run.execution_id else "",
            "overrides": _short_overrides(run.variables),
        }
        for run in page
    ]
    context = {
        "rows": rows,
        "page": page,
        "mine": bool(params.get("mine")),
        "state": params.get("state") or "",
        "states": RunState.choices,
        "can_run": _can_run(request),
    }
    return render(request, "runs/list.html", context)


def _short_overrides(variables: dict[str, Any] | None) -> str:
    """region=eu-west-1, connectorId=…f327855b316a: enough to tell runs apart in a list."""
    parts = []
    for key, value in shown_variables(variables).items():
        text = value if isinstance(value, str) else json.dumps(value)
        if key in ("connectorId", *ov.LEGACY_FIELDS) and len(text) > 13:
            text = "…" + text[-12:]
        elif len(text) > 32:
            text = text[:31] + "…"
        parts.append(f"{key}={text}")
    return ", ".join(parts)
