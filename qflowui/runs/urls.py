from __future__ import annotations

from django.urls import path

from qflowui.runs import views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("new/", views.run_new, name="new"),
    path("audit/", views.audit_log, name="audit"),
    path("<int:pk>/", views.run_detail, name="detail"),
]
