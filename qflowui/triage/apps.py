from __future__ import annotations

from django.apps import AppConfig


class TriageConfig(AppConfig):
    """Pages across executions (failures grouped by cause, workflow health) and the triage of
    one execution: its state, ticket and notes."""

    name = "qflowui.triage"
    label = "triage"
