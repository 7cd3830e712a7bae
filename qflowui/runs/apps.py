from __future__ import annotations

from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "qflowui.runs"
    label = "runs"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"
