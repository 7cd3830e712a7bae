"""`user|can_view_data`: the nav shows data links only to those who may follow them."""

from __future__ import annotations

from typing import Any

from django import template

from qflowui.accounts.access import can_view

register = template.Library()


@register.filter
def can_view_data(user: Any) -> bool:
    return can_view(user)
