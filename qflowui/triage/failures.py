"""Failures across runs: failed and timed-out executions grouped by cause, from the mirror.

A group is one failure key (qflowui.mirror.failures): same workflow, same failing step, same
error once ids, ARNs, accounts, addresses, numbers and times are normalised away. Seven
queries whatever the number of executions: the totals, the groups (with their newest
execution), their examples, when each group was first seen at all, the per-bucket counts
of the sparklines, what each touched (regions, connectors, accounts) from the newest
rows, and how many of each group are triaged, per state. Nothing here calls QFlow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDay, TruncHour
from django.urls import reverse

from qflowui.mirror.failures import FAILURE_CLASSES
from qflowui.mirror.models import Execution
from qflowui.triage.forms import FailureFilters
from qflowui.triage.models import Triage, TriageState

GROUP_LIMIT = 100  # groups shown; the rest are counted
DETAIL_ROWS = 2000  # newest failures read for "what it touched"
AFFECTED_SHOWN = 6
NEW_FOR = timedelta(hours=24)  # a group first seen this recently is marked new
HOURLY_UP_TO = timedelta(hours=48)
SPARK_DAYS_FOR_ALL = 30
SPARK_WIDTH = 120
SPARK_HEIGHT = 24
MAX_BARS = 72

_AWS_ACCOUNT = re.compile(r"\barn:aws[\w-]*:[\w-]*:[\w-]*:(\d{12}):")
_AZURE_SUBSCRIPTION = re.compile(r"/subscriptions/([0-9a-fA-F-]{36})")
_GCP_PROJECT = re.compile(r"\bprojects/([a-z][a-z0-9-]{4,28}[a-z0-9])\b")
_CONNECTOR_KEYS = ("connectorId", "credentials", "credentials_azure", "credentials_gcp")


@dataclass
class SparkBar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass
class Group:
    key: str
    workflow_id: str
    workflow_name: str
    step: str
    pattern: str
    example: str  # one error in full (masked when it was stored)
    example_url: str
    count: int
    last_seen: datetime
    first_in_range: datetime
    first_seen: datetime  # in the whole mirror: a group can be older than the range
    is_new: bool
    list_url: str
    spark: list[SparkBar] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    connectors: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    more_regions: int = 0
    more_connectors: int = 0
    more_accounts: int = 0
    # Triage (qflowui/triage): how many of the group's executions in range are triaged, and
    # in which states (label, count), most first; the list of the rest.
    triaged: int = 0
    triage_states: list[tuple[str, int]] = field(default_factory=list)
    open: int = 0
    untriaged: int = 0
    untriaged_url: str = ""
    open_url: str = ""


@dataclass
class Report:
    groups: list[Group]
    failures: int  # failed and timed-out executions in range (matching the filters)
    grouped: int  # of those, with a known failing step (their steps are in the mirror)
    groups_total: int  # groups in range (only GROUP_LIMIT shown)
    start: datetime | None
    spark_unit: str  # "hour" or "day"
    spark_width: int = SPARK_WIDTH
    spark_height: int = SPARK_HEIGHT
    affected_partial: bool = False  # more failures than DETAIL_ROWS: lists from the newest

    @property
    def without_steps(self) -> int:
        return self.failures - self.grouped


def failure_report(filters: FailureFilters, *, now: datetime, tz: tzinfo) -> Report:
    start = filters.start(now.replace(second=0, microsecond=0))
    base = _filtered(filters, start)
    totals = base.aggregate(n=Count("pk"), grouped=Count("pk", filter=~Q(failure_key="")))
    newest = base.filter(failure_key=OuterRef("failure_key")).order_by("-started_at", "-pk")
    ordering = ("-n", "-last", "failure_key") if filters.sort == "count" else ("-last", "-n")
    rows = list(
        base.exclude(failure_key="")
        .values("failure_key")
        .annotate(
            n=Count("pk"),
            last=Max("started_at"),
            first=Min("started_at"),
            sample=Subquery(newest.values("pk")[:1]),
        )
        .order_by(*ordering)[: GROUP_LIMIT + 1]
    )
    groups_total = len(rows)
    if groups_total > GROUP_LIMIT:
        rows = rows[:GROUP_LIMIT]
        groups_total = base.exclude(failure_key="").values("failure_key").distinct().count()
    keys = [row["failure_key"] for row in rows]
    hourly = start is not None and now - start <= HOURLY_UP_TO
    report = Report(
        groups=[],
        failures=totals["n"],
        grouped=totals["grouped"],
        groups_total=groups_total,
        start=start,
        spark_unit="hour" if hourly else "day",
    )
    if not rows:
        return report
    samples = {
        e.pk: e
        for e in Execution.objects.filter(pk__in=[row["sample"] for row in rows])
        .select_related("workflow")
        .only(
            "id",
            "workflow_id",
            "workflow__name",
            "failure_step",
            "failure_pattern",
            "failure_message",
            "failure_node_id",
        )
    }
    first_ever = dict(
        Execution.objects.filter(failure_key__in=keys, status_class__in=FAILURE_CLASSES)
        .values("failure_key")
        .annotate(first=Min("started_at"))
        .values_list("failure_key", "first")
    )
    sparks = _sparks(base, keys, start, now, hourly, tz)
    affected, report.affected_partial = _affected(base, keys)
    triaged = _triaged(base, keys)
    list_view = "executions:list"
    for row in rows:
        sample = samples.get(row["sample"])
        if sample is None:  # gone between two queries: shown next time
            continue
        key = row["failure_key"]
        first_seen = first_ever.get(key) or row["first"]
        query = {**filters.list_params(), "failure": key}
        group = Group(
            key=key,
            workflow_id=str(sample.workflow_id),
            workflow_name=sample.workflow.name or str(sample.workflow_id),
            step=sample.failure_step or sample.failure_node_id,
            pattern=sample.failure_pattern,
            example=sample.failure_message,
            example_url=reverse(
                "executions:detail", args=[sample.pk], query={"step": sample.failure_node_id or ""}
            ),
            count=row["n"],
            last_seen=row["last"],
            first_in_range=row["first"],
            first_seen=first_seen,
            is_new=first_seen >= now - NEW_FOR,
            list_url=reverse(list_view, query=query),
            spark=sparks.get(key, []),
        )
        states = triaged.get(key, {})
        group.triaged = sum(states.values())
        group.open = states.get(TriageState.OPEN, 0)
        group.untriaged = max(0, group.count - group.triaged)
        group.triage_states = [
            (TriageState(state).label, n)
            for state, n in sorted(states.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        group.untriaged_url = reverse(list_view, query={**query, "triage": "none"})
        group.open_url = reverse(list_view, query={**query, "triage": TriageState.OPEN})
        seen = affected.get(key, {})
        for name in ("regions", "connectors", "accounts"):
            values = sorted(seen.get(name, ()))
            setattr(group, name, values[:AFFECTED_SHOWN])
            setattr(group, f"more_{name}", max(0, len(values) - AFFECTED_SHOWN))
        report.groups.append(group)
    return report


def _filtered(filters: FailureFilters, start: datetime | None) -> QuerySet:
    qs = Execution.objects.filter(status_class__in=FAILURE_CLASSES)
    if start is not None:
        qs = qs.filter(started_at__gte=start)
    if filters.workflow is not None:
        qs = qs.filter(workflow_id=filters.workflow)
    for name in ("cloud", "region", "source"):
        value = getattr(filters, name)
        if value:
            qs = qs.filter(**{name: value})
    return qs


def _buckets(start: datetime | None, now: datetime, hourly: bool, tz: tzinfo) -> list[datetime]:
    """The start of each sparkline bar: hours over a short range, local days otherwise."""
    if hourly:
        moment = start.astimezone(tz).replace(minute=0, second=0, microsecond=0)
        out = []
        while moment <= now and len(out) < MAX_BARS:
            out.append(moment)
            moment = (moment + timedelta(hours=1)).astimezone(tz)
        return out
    begin = start or now - timedelta(days=SPARK_DAYS_FOR_ALL - 1)
    day, last = begin.astimezone(tz).date(), now.astimezone(tz).date()
    out = []
    while day <= last and len(out) < MAX_BARS:
        out.append(datetime.combine(day, time.min, tzinfo=tz))
        day += timedelta(days=1)
    return out


def _sparks(
    base: QuerySet,
    keys: list[str],
    start: datetime | None,
    now: datetime,
    hourly: bool,
    tz: tzinfo,
) -> dict[str, list[SparkBar]]:
    buckets = _buckets(start, now, hourly, tz)
    if not buckets:
        return {}
    trunc = (TruncHour if hourly else TruncDay)("started_at", tzinfo=tz)
    counts: dict[str, dict[datetime, int]] = {}
    rows = (
        base.filter(failure_key__in=keys, started_at__gte=buckets[0])
        .annotate(bucket=trunc)
        .values_list("failure_key", "bucket")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for key, bucket, n in rows:
        counts.setdefault(key, {})[bucket] = n
    width = SPARK_WIDTH / len(buckets)
    out: dict[str, list[SparkBar]] = {}
    for key, per in counts.items():
        top = max(per.values())
        bars = []
        for i, low in enumerate(buckets):
            n = per.get(low, 0)
            height = 0.0 if not n else max(2.0, SPARK_HEIGHT * n / top)
            label = low.strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d")
            bars.append(
                SparkBar(
                    x=round(i * width + 0.5, 2),
                    y=round(SPARK_HEIGHT - height, 2),
                    width=round(max(1.0, width - 1), 2),
                    height=round(height, 2),
                    title=f"{label}: {n} failure{'s' if n != 1 else ''}",
                )
            )
        out[key] = bars
    return out


def _affected(base: QuerySet, keys: list[str]) -> tuple[dict[str, dict[str, set]], bool]:
    """Regions, connectors and accounts each group touched, from its newest failures."""
    rows = list(
        base.filter(failure_key__in=keys)
        .order_by("-started_at")
        .values_list("failure_key", "region", "variables", "failure_message")[: DETAIL_ROWS + 1]
    )
    partial = len(rows) > DETAIL_ROWS
    out: dict[str, dict[str, set]] = {}
    for key, region, variables, message in rows[:DETAIL_ROWS]:
        seen = out.setdefault(key, {"regions": set(), "connectors": set(), "accounts": set()})
        if region:
            seen["regions"].add(region)
        seen["connectors"].update(_connectors(variables))
        seen["accounts"].update(_accounts(message))
    return out, partial


def _triaged(base: QuerySet, keys: list[str]) -> dict[str, dict[str, int]]:
    """Per group, its triaged executions in range per triage state (one query)."""
    triage = Triage.objects.filter(execution_id=OuterRef("pk"))
    rows = (
        base.filter(Exists(triage), failure_key__in=keys)
        .annotate(triage_state=Subquery(triage.values("state")[:1]))
        .values_list("failure_key", "triage_state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    out: dict[str, dict[str, int]] = {}
    for key, state, n in rows:
        if state in TriageState.values:
            out.setdefault(key, {})[state] = n
    return out


def _connectors(variables: Any) -> set[str]:
    """connectorId (or a legacy credentials reference) from an execution's variables, which
    QFlow sends as "key=value" strings or {key, value} objects."""
    found: set[str] = set()
    if not isinstance(variables, list):
        return found
    for item in variables[:200]:
        if isinstance(item, str) and "=" in item:
            key, _, value = item.partition("=")
        elif isinstance(item, dict):
            key, value = str(item.get("key") or item.get("name") or ""), item.get("value")
            if isinstance(value, list):
                value = value[0] if value else ""
        else:
            continue
        if key.strip() in _CONNECTOR_KEYS and isinstance(value, str):
            value = value.strip().strip('"').lstrip("@")
            if value and "*" not in value:
                found.add(value[:64])
    return found


def _accounts(message: str) -> set[str]:
    text = (message or "")[:4000]
    found = set(_AWS_ACCOUNT.findall(text))
    found.update(_AZURE_SUBSCRIPTION.findall(text))
    found.update(_GCP_PROJECT.findall(text))
    return found
