"""The simulator's routes, mounted at the site root like a gateway's (`/auth`, `/qflowapi`)."""

from __future__ import annotations

from django.urls import path, re_path

from . import views

app_name = "simulator"

_EXECUTION = "qflowapi/v1/executions/<str:execution_id>"
_STEP = f"{_EXECUTION}/steps/<str:node_id>"

urlpatterns = [
    path("auth/oidc", views.auth_token, name="auth-oidc"),
    path("auth/oauth", views.auth_token, name="auth-oauth"),
    path("qflowapi/v1/workflows", views.workflow_list, name="workflow-list"),
    path("qflowapi/v1/workflows/<str:workflow_id>", views.workflow_detail, name="workflow"),
    path("qflowapi/v1/workflows/<str:workflow_id>/run", views.workflow_run, name="workflow-run"),
    path(
        "qflowapi/v1/workflows/<str:workflow_id>/executions",
        views.execution_list,
        name="execution-list",
    ),
    path(_EXECUTION, views.execution_detail, name="execution"),
    path(f"{_EXECUTION}/steps", views.step_list, name="step-list"),
    path(_STEP, views.step_detail, name="step"),
    path(f"{_STEP}/input", views.step_input, name="step-input"),
    path(f"{_STEP}/output", views.step_output, name="step-output"),
    re_path(r"^qflowapi(?:/.*)?$", views.not_found, name="not-found"),
]
