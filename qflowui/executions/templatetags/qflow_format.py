"""Display helpers: times and durations (relative, absolute with the zone named, human), and
long upstream texts cut to TEXT_LIMIT with the way to the whole text."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from django import template
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone

from qflowui.qflow.errors import QflowInvalidId
from qflowui.qflow.validate import check_node_id

register = template.Library()

# Characters of one upstream text (an error, a tag, a variable, a name) shown on a page: a
# 2 MB step error once made a 4.8 MB page. The whole text is one link away.
TEXT_LIMIT = 10 * 1024


def zone_label(local: datetime) -> str:
    """`UTC`, or the abbreviation and the IANA name: `CET (Europe/Berlin)`."""
    name = timezone.get_current_timezone_name()
    if name == "UTC":
        return "UTC"
    abbr = local.tzname() or ""
    if not abbr or abbr == name:
        return name
    return f"{abbr} ({name})"


def short_zone(dt: datetime) -> str:
    """The zone's abbreviation for short visible times (`10:42 UTC`, `11:42 CET`)."""
    local = timezone.localtime(dt)
    return local.tzname() or timezone.get_current_timezone_name()


@register.filter
def absolute(dt: datetime | None) -> str:
    """`2025-11-23 10:42:05 UTC` in the user's zone."""
    if dt is None:
        return ""
    local = timezone.localtime(dt)
    return f"{local:%Y-%m-%d %H:%M:%S} {zone_label(local)}"


@register.filter
def iso(dt: datetime | None) -> str:
    """The machine-readable time, with the user's offset: `2025-11-23T11:42:05+01:00`."""
    if dt is None:
        return ""
    return timezone.localtime(dt).isoformat(timespec="seconds")


@register.filter
def clock(dt: datetime | None) -> str:
    """A short absolute time that still names its zone: `10:42 UTC` today, else with the date."""
    if dt is None:
        return ""
    local = timezone.localtime(dt)
    today = timezone.localtime(timezone.now()).date()
    shown = f"{local:%H:%M}" if local.date() == today else f"{local:%Y-%m-%d %H:%M}"
    return f"{shown} {short_zone(dt)}"


@register.filter
def ago(dt: datetime | None) -> str:
    """`40 s ago`, `5 min ago`, `3 h ago`, `4 d ago`."""
    if dt is None:
        return ""
    seconds = int((timezone.now() - dt).total_seconds())
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds} s ago"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        rest = minutes % 60
        return f"{hours} h {rest} min ago" if hours < 3 and rest else f"{hours} h ago"
    return f"{hours // 24} d ago"


@register.filter
def duration(ms: int | None) -> str:
    """`850 ms`, `12 s`, `1 m 12 s`, `2 h 5 m`, `3 d 4 h`."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} m {seconds} s" if seconds else f"{minutes} m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} m" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


# --- long upstream texts --------------------------------------------------------------------
#
# These return plain strings: the template escapes them like any other value. Nothing from
# QFlow is ever marked safe here.


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


@register.filter
def truncate_text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """The first `limit` characters (10 KB) of an upstream text, "…" after them when cut."""
    text = _text(value)
    return text if len(text) <= limit else text[:limit] + "…"


@register.filter
def is_cut(value: Any, limit: int = TEXT_LIMIT) -> bool:
    """True when `truncate_text` cuts this text."""
    return len(_text(value)) > limit


@register.filter
def text_size(value: Any) -> str:
    """The size of a text as a person reads it: `2.0 MB`, `12.5 KB`."""
    text = _text(value)
    return filesizeformat(len(text.encode("utf-8", "surrogatepass")))


@register.simple_tag
def step_error_url(execution_id: Any, node_id: Any) -> str:
    """Where a step's whole error is (masked, plain text), or "" when the node id cannot be
    part of a URL (then the export has it)."""
    try:
        check_node_id(node_id)
    except QflowInvalidId:
        return ""
    detail = reverse("executions:detail", args=[execution_id])
    return f"{detail}steps/{quote(node_id, safe='')}/error.txt"


@register.simple_tag
def execution_text_url(execution_id: Any, field: str, index: int) -> str:
    """Where one of an execution's variables or tags is whole (masked, plain text)."""
    return reverse("executions:text", args=[execution_id, field, index])
