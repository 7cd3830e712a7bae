"""Top-level URLs. The simulator's API is mounted at the root, like a real gateway's."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from qflowui.accounts import audit_views
from qflowui.accounts import views as accounts_views
from qflowui.core import metrics
from qflowui.core import views as core_views

# A database error anywhere (also in middleware) is a 503 "database unavailable" page.
handler500 = "qflowui.core.views.server_error"
# Short pages that say the request id, so a user can quote it.
handler403 = "qflowui.core.views.permission_denied"
handler404 = "qflowui.core.views.page_not_found"

urlpatterns = [
    path("", RedirectView.as_view(url="/executions/", permanent=False), name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    # Prometheus text format, behind QFLOWUI_METRICS_TOKEN (404 when unset).
    path("metrics", metrics.metrics, name="metrics"),
    path("accounts/login/", accounts_views.LoginView.as_view(), name="login"),
    # Password sign-in for superusers when QFLOWUI_PASSWORD_LOGIN is false (axes-protected).
    path("accounts/break-glass/", accounts_views.BreakGlassView.as_view(), name="break_glass"),
    path("accounts/logout/", accounts_views.LogoutView.as_view(), name="logout"),
    # Single sign-on (OpenID Connect): /oidc/authenticate/ starts it, /oidc/callback/ is the
    # redirect URI registered with the provider.
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("accounts/", include("qflowui.accounts.urls")),
    # An execution's triage: state, ticket, notes (qflowui/triage/execution_views.py).
    path("executions/<uuid:execution_id>/triage/", include("qflowui.triage.execution_urls")),
    path("executions/", include("qflowui.executions.urls")),
    # Failures across runs, grouped by cause (qflowui/triage).
    path("failures/", include("qflowui.triage.urls")),
    # Every workflow at a glance: last run, success rates, durations, last failure.
    path("workflows/", include("qflowui.triage.workflow_urls")),
    # Saved views of the executions list and their alerts (qflowui/teamviews).
    path("views/", include("qflowui.teamviews.urls")),
    # The team's audit log (staff): sign-ins, lockouts, runs, denials.
    path("audit/", audit_views.audit_log, name="audit"),
    # Users and their groups (Viewers, Runners) are managed here by staff.
    path("admin/login/", accounts_views.admin_login),
    path("admin/", admin.site.urls),
    path("runs/", include("qflowui.runs.urls")),
    path("", include("qflowui.simulator.urls")),
]
