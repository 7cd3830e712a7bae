"""Executions over time, stacked by status class, as geometry for an inline SVG.

Only numbers and our own labels go into the chart; the template draws and escapes it.
Buckets are in the user's zone: per hour up to 48 h, else per day (per week or month
when there would be too many days to draw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from django.utils import timezone

from qflowui.mirror import status as st

WIDTH, HEIGHT = 960, 170
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 26
MAX_BARS = 120
MAX_LABELS = 10
# Bottom to top: failures first so they are never hidden under a tall green stack.
STACK = (st.FAILED, st.TIMED_OUT, st.CANCELLED, st.OTHER, st.RUNNING, st.SUCCESS)


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    status_class: str
    count: int
    title: str


@dataclass
class Column:
    """One time bucket: its stacked bars, and its bounds for a drill-down link."""

    x: float
    width: float
    start: datetime
    end: datetime
    bars: list[Bar]
    href: str = ""


@dataclass
class Tick:
    x: float
    y: float
    text: str


@dataclass
class Chart:
    unit: str  # hour, day, week, month
    zone: str
    total: int
    columns: list[Column]
    x_labels: list[Tick]
    y_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    bottom: int = HEIGHT - BOTTOM


def build_chart(
    groups: list[tuple[datetime, str, int]],
    *,
    start: datetime | None,
    end: datetime,
    hourly: bool,
    tz: tzinfo,
) -> Chart | None:
    """`groups` are (bucket start, status class, count) rows of the GROUP BY."""
    if not groups:
        return None
    counts: dict[object, dict[str, int]] = {}
    for bucket, cls, n in groups:
        key = _key(bucket, hourly, tz)
        per = counts.setdefault(key, {})
        cls = cls if cls in STACK else st.OTHER
        per[cls] = per.get(cls, 0) + n
    first = _key(start, hourly, tz) if start is not None else min(counts)
    last = max(_key(end, hourly, tz), max(counts))
    first = min(first, min(counts))
    keys = _keys(first, last, hourly)
    unit = "hour" if hourly else "day"
    if not hourly and len(keys) > MAX_BARS:
        unit, coarse = "week", (lambda d: d - timedelta(days=d.weekday()))
        if (last - first).days // 7 + 1 > MAX_BARS:
            unit, coarse = "month", (lambda d: d.replace(day=1))
        merged: dict[object, dict[str, int]] = {}
        for key, per in counts.items():
            into = merged.setdefault(coarse(key), {})
            for cls, n in per.items():
                into[cls] = into.get(cls, 0) + n
        counts = merged
        keys = sorted({coarse(k) for k in keys})
    return _draw(keys, counts, unit, tz)


def _key(moment: datetime, hourly: bool, tz: tzinfo) -> datetime | date:
    local = timezone.localtime(moment, tz)
    if hourly:
        return local.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    return local.date()


def _keys(first: datetime | date, last: datetime | date, hourly: bool) -> list:
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    keys, key = [], first
    while key <= last:
        keys.append(key)
        key += step
    return keys


def _draw(keys: list, counts: dict, unit: str, tz: tzinfo) -> Chart:
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    bottom = HEIGHT - BOTTOM
    peak = max(sum(per.values()) for per in counts.values())
    top = _nice_ceiling(peak)
    slot = plot_w / len(keys)
    bar_w = max(slot * 0.78, 1.0)
    columns: list[Column] = []
    labels: list[Tick] = []
    label_every = math.ceil(len(keys) / MAX_LABELS)
    for i, key in enumerate(keys):
        x = LEFT + i * slot + (slot - bar_w) / 2
        stacked = 0.0
        name = _bucket_name(key, unit, tz)
        bars: list[Bar] = []
        for cls in STACK:
            n = counts.get(key, {}).get(cls, 0)
            if not n:
                continue
            h = n / top * plot_h
            stacked += h
            bars.append(
                Bar(
                    x=round(x, 2),
                    y=round(bottom - stacked, 2),
                    width=round(bar_w, 2),
                    height=round(h, 2),
                    status_class=cls,
                    count=n,
                    title=f"{name}: {n} {st.LABELS[cls]}",
                )
            )
        if bars:
            bucket_start, bucket_end = bucket_bounds(key, unit, tz)
            columns.append(
                Column(
                    x=round(x, 2),
                    width=round(bar_w, 2),
                    start=bucket_start,
                    end=bucket_end,
                    bars=bars,
                )
            )
        if i % label_every == 0:
            labels.append(
                Tick(x=round(x + bar_w / 2, 2), y=HEIGHT - 8, text=_axis_label(key, unit))
            )
    y_ticks = [
        Tick(x=LEFT - 6, y=round(bottom - value / top * plot_h, 2), text=f"{value:g}")
        for value in (0, top / 2, top)
    ]
    return Chart(
        unit=unit,
        zone=timezone.get_current_timezone_name(),
        total=sum(sum(per.values()) for per in counts.values()),
        columns=columns,
        x_labels=labels,
        y_ticks=y_ticks,
    )


def _nice_ceiling(value: int) -> int:
    """A round, even top for the y axis, at least `value` (so its half is whole)."""
    if value <= 2:
        return 2
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 4, 6, 8, 10):
        top = factor * power
        if top >= value and top % 2 == 0:
            return top
    return 10 * power


def _bucket_name(key: datetime | date, unit: str, tz: tzinfo) -> str:
    if unit == "hour":
        aware = key.replace(tzinfo=tz)
        until = key + timedelta(hours=1)
        return f"{key:%Y-%m-%d %H:00}\u2013{until:%H:00} {aware.tzname()}"
    if unit == "week":
        return f"week of {key:%Y-%m-%d}"
    if unit == "month":
        return f"{key:%B %Y}"
    return f"{key:%a %Y-%m-%d}"


def _axis_label(key: datetime | date, unit: str) -> str:
    if unit == "hour":
        return f"{key:%b %d}" if key.hour == 0 else f"{key:%H:%M}"
    if unit == "month":
        return f"{key:%b %Y}"
    return f"{key:%b %d}"


def bucket_bounds(key: datetime | date, unit: str, tz: tzinfo) -> tuple[datetime, datetime]:
    """The UTC start and end of a bucket (for drill-down links)."""
    start = key if isinstance(key, datetime) else datetime.combine(key, time.min)
    step = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}
    if unit == "month":
        nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    else:
        nxt = start + step[unit]
    return start.replace(tzinfo=tz), nxt.replace(tzinfo=tz)
