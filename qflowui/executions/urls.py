from __future__ import annotations

from django.urls import path

from qflowui.executions import views

app_name = "executions"

urlpatterns = [
    path("", views.execution_list, name="list"),
]
