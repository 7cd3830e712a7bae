"""/workflows/: the overview of every mirrored workflow (qflowui/triage/workflows.py)."""

from __future__ import annotations

from django.urls import path

from qflowui.triage import views

app_name = "workflows"

urlpatterns = [
    path("", views.workflows, name="list"),
]
