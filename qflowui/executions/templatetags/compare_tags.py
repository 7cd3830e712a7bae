"""`{% compare_actions execution %}`: what the execution page's compare buttons need.

"Compare with the last success" (failed and timed-out executions only): the successful
execution of the same workflow with the same connector and region if there is one, the
latest before this one, else the nearest after (qflowui/executions/compare.py). Two small
indexed queries (workflow, started_at), read only when the execution failed.
"""

from __future__ import annotations

from typing import Any

from django import template

from qflowui.executions import compare
from qflowui.executions.compare_views import compare_url
from qflowui.executions.templatetags.qflow_format import duration
from qflowui.mirror import status as st
from qflowui.mirror.models import Execution

register = template.Library()

WINDOW = 100  # successes looked at on each side of the execution, newest nearest first
FIELDS = ("id", "started_at", "region", "variables", "categories")


@register.simple_tag
def compare_actions(execution: Execution | None) -> dict[str, Any]:
    if execution is None or not getattr(execution, "pk", None):
        return {}
    out: dict[str, Any] = {"pick_url": compare_url(execution.pk)}
    if execution.status_class not in (st.FAILED, st.TIMED_OUT):
        return out
    out["failed"] = True
    picked = last_success(execution)
    if picked is not None:
        candidate, same_connector, same_region = picked
        out["last_success_url"] = compare_url(execution.pk, candidate.execution_id)
        out["last_success_note"] = _note(same_connector, same_region, bool(execution.region))
    return out


def last_success(execution: Execution) -> tuple[compare.Candidate, bool, bool] | None:
    successes = Execution.objects.filter(
        workflow_id=execution.workflow_id, status_class=st.SUCCESS
    ).exclude(pk=execution.pk)
    before = successes.filter(started_at__lte=execution.started_at).order_by("-started_at")
    after = successes.filter(started_at__gt=execution.started_at).order_by("started_at")
    rows = [*before.only(*FIELDS)[:WINDOW], *after.only(*FIELDS)[:WINDOW]]
    candidates = [
        compare.Candidate(
            str(row.pk),
            row.started_at,
            compare.connector_of(row.variables, row.categories),
            row.region or "",
        )
        for row in rows
    ]
    return compare.last_success_pick(
        execution.started_at,
        compare.connector_of(execution.variables, execution.categories),
        execution.region or "",
        candidates,
    )


def _note(same_connector: bool, same_region: bool, has_region: bool) -> str:
    if same_connector and same_region:
        return "same connector and region"
    if same_connector:
        return "same connector, other region" if has_region else "same connector"
    if same_region:
        return "same region, other connector"
    return "other connector and region"


@register.filter
def signed_duration(ms: int | None) -> str:
    """A difference of durations: `+12 s`, `\u2212850 ms` (a minus sign), `±0`."""
    if ms is None:
        return ""
    if ms == 0:
        return "±0"
    return ("+" if ms > 0 else "\u2212") + duration(abs(ms))


@register.filter
def same_rows(rows: list[compare.KeyDiff]) -> list[compare.KeyDiff]:
    return [row for row in rows if row.change == compare.SAME]


@register.filter
def changed_rows(rows: list[compare.KeyDiff]) -> list[compare.KeyDiff]:
    return [row for row in rows if row.change != compare.SAME]
