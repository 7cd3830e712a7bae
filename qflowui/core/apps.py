from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "qflowui.core"
    label = "core"
    verbose_name = "qflowui core"

    def ready(self) -> None:
        from qflowui.core import logsafe, requestid

        logsafe.install()
        # On top of logsafe's: every record also gets the request id and user.
        requestid.install()
