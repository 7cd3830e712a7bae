"""The save control's query: the list's own canonical query string, without paging."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template

from qflowui.executions.forms import Filters

register = template.Library()


@register.simple_tag
def saved_view_query(filters: Filters | None) -> str:
    if filters is None:
        return ""
    return urlencode([(k, v) for k, values in filters.params().items() for v in values])
