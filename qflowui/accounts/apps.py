from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "qflowui.accounts"
    label = "accounts"

    def ready(self) -> None:
        # Sign-ins, failed sign-ins, lockouts and sign-outs go to the audit log.
        from qflowui.accounts import signals

        signals.connect()
