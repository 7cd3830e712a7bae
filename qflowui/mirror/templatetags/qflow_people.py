"""`{% qflow_user_name id %}`: a QFlow user id's name, for pages showing one execution."""

from __future__ import annotations

from django import template

from qflowui.mirror.people import names_for

register = template.Library()


@register.simple_tag
def qflow_user_name(user_id: str) -> str:
    return names_for([user_id]).get(user_id, "") if user_id else ""
