from __future__ import annotations

from django.apps import AppConfig


class TeamViewsConfig(AppConfig):
    """Saved views of the executions list, shared with the team, and alerts on them."""

    name = "qflowui.teamviews"
    label = "teamviews"

    def ready(self) -> None:
        from qflowui.teamviews.destinations import install_log_filter

        install_log_filter()  # apprise's log lines never carry a destination's secrets
