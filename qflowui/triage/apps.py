from __future__ import annotations

from django.apps import AppConfig


class TriageConfig(AppConfig):
    """Pages across executions: failures grouped by cause."""

    name = "qflowui.triage"
    label = "triage"
