from __future__ import annotations

from django.apps import AppConfig


class MirrorConfig(AppConfig):
    name = "qflowui.mirror"
    label = "mirror"
    verbose_name = "QFlow mirror"
