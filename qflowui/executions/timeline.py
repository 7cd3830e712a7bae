"""The execution page's timeline: one bar per step that started, on an axis of round ticks.

Beside the list page's chart (chart.py): both are SVG drawn by their templates from the
numbers built here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from qflowui.executions.templatetags import qflow_format
from qflowui.mirror.models import Execution

if TYPE_CHECKING:
    from qflowui.executions.presentation import StepRow


@dataclass
class TimelineRow:
    node_id: str
    label: str
    title: str
    status_class: str
    is_failed: bool
    x: float
    width: float
    y: float
    text_y: float
    link: dict[str, str]


TL_LEFT, TL_RIGHT, TL_ROW, TL_TOP = 250.0, 990.0, 22.0, 24.0


# Tick steps in ms: the smallest that gives at most TL_MAX_TICKS intervals is used, so labels
# are round and, at the precision each step needs, never repeat ("+1 s +1 s").
TL_MAX_TICKS = 5
_SECOND, _MINUTE, _HOUR, _DAY = 1000, 60_000, 3_600_000, 86_400_000
TL_STEPS = (
    *(m * 10**e for e in range(4) for m in (1, 2, 2.5, 5)),
    *(n * _SECOND for n in (10, 15, 30)),
    *(n * _MINUTE for n in (1, 2, 5, 10, 15, 30)),
    *(n * _HOUR for n in (1, 2, 3, 6, 12)),
    *(n * _DAY for n in (1, 2, 7, 14, 30, 90, 365)),
)


def timeline_ticks(span_ms: float) -> list[tuple[float, str]]:
    """(offset in ms, label) of the timeline's axis: round offsets from 0 to at most `span_ms`,
    labelled `0`, `+250 ms`, `+0.25 s`, `+15 s`, `+1 m 30 s`, `+2 h`... all different."""
    span_ms = max(span_ms, 1.0)
    step = next((s for s in TL_STEPS if span_ms / s <= TL_MAX_TICKS), None)
    if step is None:
        step = 365 * _DAY * math.ceil(span_ms / (365 * _DAY) / TL_MAX_TICKS)
    count = int(span_ms / step + 1e-9)
    return [(i * step, _tick_label(i * step, step, span_ms)) for i in range(count + 1)]


def _tick_label(ms: float, step: float, span_ms: float) -> str:
    if ms == 0:
        return "0"
    if step < _SECOND:
        if span_ms < _SECOND:
            return f"+{ms:g} ms" if step >= 1 else f"+{ms:.1f} ms"
        decimals = 1 if step % 100 == 0 else 2 if step % 10 == 0 else 3
        return f"+{ms / _SECOND:.{decimals}f} s"
    return "+" + qflow_format.duration(int(ms))


def timeline(execution: Execution, rows: list[StepRow]) -> dict[str, Any] | None:
    timed = [r for r in rows if r.step.started_at is not None]
    if not timed:
        return None
    now = timezone.now()
    t0 = min([execution.started_at, *[r.step.started_at for r in timed]])
    ends = [
        r.step.ended_at or (now if not execution.is_terminal else r.step.started_at) for r in timed
    ]
    t1 = max([execution.ended_at or (now if not execution.is_terminal else t0), *ends])
    span = max((t1 - t0).total_seconds(), 0.001)
    width = TL_RIGHT - TL_LEFT
    out = []
    for index, (row, end) in enumerate(zip(timed, ends, strict=True)):
        start = (row.step.started_at - t0).total_seconds() / span
        stop = (end - t0).total_seconds() / span
        y = TL_TOP + index * TL_ROW
        label = row.name or row.step.node_id
        label = label if len(label) <= 34 else label[:33] + "…"
        out.append(
            TimelineRow(
                node_id=row.step.node_id,
                label=label,
                title=f"{row.name or row.step.node_id}: {row.step.status or 'no status'}",
                status_class=row.step.status_class.replace("_", "-"),
                is_failed=row.is_failed,
                x=round(TL_LEFT + start * width, 1),
                width=round(max((stop - start) * width, 2.0), 1),
                y=y + 3,
                text_y=y + 14,
                link=row.link,
            )
        )
    ticks = []
    span_ms = span * 1000
    for ms, label in timeline_ticks(span_ms):
        fraction = ms / span_ms
        anchor = "start" if ms == 0 else "end" if fraction > 0.94 else "middle"
        ticks.append(
            {"x": round(TL_LEFT + fraction * width, 1), "ms": ms, "label": label, "anchor": anchor}
        )
    height = TL_TOP + len(out) * TL_ROW + 6
    return {"rows": out, "ticks": ticks, "height": height, "bottom": height - 4, "left": TL_LEFT}
