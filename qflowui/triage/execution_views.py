"""The triage section of an execution page: set the state and ticket, add and edit notes.

Each form posts here. For htmx the answer is the section's body (`#triage-body`), swapped in
place, with the message or the errors; a plain form gets a redirect to the execution page
(with a message) or, when the input is refused, this page alone with the errors and what was
typed. Viewers read; a POST from them is refused (403) and audited.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST

from qflowui.mirror.models import Execution
from qflowui.triage import services
from qflowui.triage.forms import NoteForm, TriageStateForm
from qflowui.triage.models import TriageNote
from qflowui.triage.notes import triage_panel

BODY_TEMPLATE = "triage/_panel.html"
PAGE_TEMPLATE = "triage/execution.html"


def _execution(execution_id: uuid.UUID) -> Execution:
    """Only an execution the dashboard knows (its page stores it) can be triaged."""
    execution = Execution.objects.select_related("workflow").filter(pk=execution_id).first()
    if execution is None:
        raise Http404("No such execution.")
    return execution


def _refused(request: HttpRequest, execution: Execution, what: str) -> HttpResponse | None:
    """403 (audited) for a user who may only read."""
    if services.can_triage(request.user):
        return None
    services.audit_denied(request, execution.pk, what)
    context = {"what": "triage executions"}
    return render(request, "runs/denied.html", context, status=403)


def _answer(
    request: HttpRequest,
    execution: Execution,
    *,
    message: str = "",
    ok: bool = True,
    status: int = 200,
    state_form: TriageStateForm | None = None,
    note_form: NoteForm | None = None,
    edit: dict[str, Any] | None = None,
) -> HttpResponse:
    """The section for htmx (always 200: htmx swaps only 2xx), else a redirect to the
    execution page when it went well, or this page with the errors."""
    if ok and not request.htmx:
        if message:
            messages.success(request, message)
        url = reverse("executions:detail", args=[execution.pk])
        return HttpResponseRedirect(f"{url}#triage")
    panel = triage_panel(
        execution.pk,
        request.user,
        now=timezone.now(),
        state_value=state_form.data.get("state") if state_form and state_form.errors else None,
        ticket_value=state_form.data.get("ticket") if state_form and state_form.errors else None,
    )
    context = {
        "panel": panel,
        "execution": execution,
        "message": message,
        "message_ok": ok,
        "state_form": state_form,
        "note_form": note_form,
        "edit": edit or {},
        # A refused note stays in its box; so does an edit refused as too late, to be added
        # as a new note.
        "note_text": (
            note_form.data.get("text", "")
            if note_form is not None
            else (edit or {}).get("text", "")
            if (edit or {}).get("refused")
            else ""
        ),
    }
    if request.htmx:
        response = render(request, BODY_TEMPLATE, context)
    else:
        response = render(request, PAGE_TEMPLATE, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_http_methods(["GET", "POST"])
def execution_triage(request: HttpRequest, execution_id: uuid.UUID) -> HttpResponse:
    """GET: the triage of one execution on its own (the section, or this page without
    JavaScript). POST: set its state and ticket."""
    execution = _execution(execution_id)
    if request.method == "GET":
        context = {
            "panel": triage_panel(execution.pk, request.user, now=timezone.now()),
            "execution": execution,
            "edit": {},
        }
        template = BODY_TEMPLATE if request.htmx else PAGE_TEMPLATE
        response = render(request, template, context)
        patch_vary_headers(response, ("HX-Request",))
        return response
    refused = _refused(request, execution, "set the triage state")
    if refused is not None:
        return refused
    form = TriageStateForm(request.POST)
    if not form.is_valid():
        return _answer(
            request, execution, message="Not saved.", ok=False, status=400, state_form=form
        )
    change = services.triage_set(
        execution_id=execution.pk,
        state=form.cleaned_data["state"],
        ticket=form.cleaned_data["ticket"],
        request=request,
    )
    return _answer(request, execution, message="Saved." if change.any else "Nothing changed.")


@require_POST
def note_add(request: HttpRequest, execution_id: uuid.UUID) -> HttpResponse:
    execution = _execution(execution_id)
    refused = _refused(request, execution, "add a note")
    if refused is not None:
        return refused
    form = NoteForm(request.POST)
    if not form.is_valid():
        return _answer(
            request, execution, message="Note not added.", ok=False, status=400, note_form=form
        )
    _, created = services.note_add(
        execution_id=execution.pk, text=form.cleaned_data["text"], request=request
    )
    return _answer(request, execution, message="Note added." if created else "Already added.")


@require_POST
def note_edit(request: HttpRequest, execution_id: uuid.UUID, note_id: int) -> HttpResponse:
    execution = _execution(execution_id)
    refused = _refused(request, execution, f"edit note {note_id}")
    if refused is not None:
        return refused
    form = NoteForm(request.POST)
    typed = str(request.POST.get("text", ""))
    if not form.is_valid():
        edit = {"note": note_id, "text": typed, "errors": form.errors.get("text", [])}
        return _answer(
            request, execution, message="Note not saved.", ok=False, status=400, edit=edit
        )
    try:
        _, changed = services.note_edit(
            execution_id=execution.pk,
            note_id=note_id,
            text=form.cleaned_data["text"],
            request=request,
        )
    except TriageNote.DoesNotExist:
        raise Http404("No such note.") from None
    except services.TriageRefused as refusal:
        # What was typed stays on screen, to be copied into a new note.
        edit = {"note": note_id, "text": typed, "errors": [str(refusal)], "refused": True}
        return _answer(request, execution, message=str(refusal), ok=False, status=403, edit=edit)
    return _answer(request, execution, message="Note saved." if changed else "Nothing changed.")
