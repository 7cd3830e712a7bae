from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class SimulatorConfig(AppConfig):
    name = "qflowui.simulator"
    label = "simulator"
    verbose_name = "QFlow simulator"

    def ready(self) -> None:
        from . import config

        # Fail at start-up, not on the first request, when the options are misspelt.
        config.parse(getattr(settings, "QFLOW_SIMULATOR_OPTIONS", "") or "")
