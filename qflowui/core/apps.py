from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "qflowui.core"
    label = "core"
    verbose_name = "qflowui core"

    def ready(self) -> None:
        from qflowui.core import logsafe

        logsafe.install()
