from __future__ import annotations

from django.urls import path

from qflowui.triage import views

app_name = "triage"

urlpatterns = [
    path("", views.failures, name="failures"),
]
