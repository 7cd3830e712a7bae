"""An execution's triage, under the execution's own address
(`/executions/<id>/triage/`): its state and ticket, its notes. The execution page's triage
section posts here."""

from __future__ import annotations

from django.urls import path

from qflowui.triage import execution_views

app_name = "execution_triage"

urlpatterns = [
    path("", execution_views.execution_triage, name="state"),
    path("notes/", execution_views.note_add, name="note_add"),
    path("notes/<int:note_id>/", execution_views.note_edit, name="note_edit"),
]
