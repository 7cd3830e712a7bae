"""Top-level URLs. The simulator's API is mounted at the root, like a real gateway's."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from qflowui.accounts import audit_views
from qflowui.core import views as core_views

# A database error anywhere (also in middleware) is a 503 "database unavailable" page.
handler500 = "qflowui.core.views.server_error"

urlpatterns = [
    path("", RedirectView.as_view(url="/executions/", permanent=False), name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("qflowui.accounts.urls")),
    path("executions/", include("qflowui.executions.urls")),
    # The team's audit log (staff): sign-ins, lockouts, runs, denials.
    path("audit/", audit_views.audit_log, name="audit"),
    # Users and their groups (Viewers, Runners) are managed here by staff.
    path("admin/", admin.site.urls),
    path("runs/", include("qflowui.runs.urls")),
    path("", include("qflowui.simulator.urls")),
]
