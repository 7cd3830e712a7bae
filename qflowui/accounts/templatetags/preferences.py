"""The header's time-zone picker, without a context processor."""

from __future__ import annotations

from django import template
from django.utils import timezone

from qflowui.accounts import zones

register = template.Library()


@register.simple_tag
def timezone_menu() -> dict:
    current = timezone.get_current_timezone_name()
    return {"current": current, "choices": zones.header_choices(current)}
