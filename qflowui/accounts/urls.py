from __future__ import annotations

from django.urls import path

from qflowui.accounts import views

app_name = "accounts"

urlpatterns = [
    path("timezone/", views.timezone_set, name="timezone"),
]
