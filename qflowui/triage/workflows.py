"""Workflows overview: per mirrored workflow, how it has been doing, from the mirror.

For each workflow: its last execution, success rate and number of executions over 7 and 30
days (success rate = success / terminal executions), p50/p95 duration of its terminal
executions over 30 days, its last failure (when, which step), a per-day strip of the last 30
days coloured by status, and whether it has gone idle.

A fixed number of queries whatever the number of workflows or executions:

1. the workflows matching the filters, each with its last execution and last failure (two
   correlated subqueries) and when it last ran;
2. counts over 7 and 30 days, grouped by workflow (conditional COUNTs);
3. the last executions and last failures themselves (by primary key);
4. the per-day strip: one GROUP BY (workflow, local day, status class) over 30 days;
5. p50/p95 durations: PostgreSQL's percentile_cont, or elsewhere (SQLite, `make run`) a
   window query that returns only the two rows around each percentile of each workflow.

Nothing here calls QFlow.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from fractions import Fraction

from django.db import connection
from django.db.models import Aggregate, Count, F, FloatField, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import Window
from django.db.models.functions import Cast, RowNumber, TruncDay
from django.urls import reverse

from qflowui.mirror import status as st
from qflowui.mirror.failures import FAILURE_CLASSES
from qflowui.mirror.models import Execution, Workflow
from qflowui.triage.forms import WorkflowFilters

SHORT = timedelta(days=7)
LONG = timedelta(days=30)
IDLE_AFTER = timedelta(days=7)  # no execution for this long: marked idle
WORKFLOW_LIMIT = 500  # rows shown; the rest are counted
PERCENTILES = (50, 95)
STRIP_DAYS = 30
STRIP_WIDTH = 150
STRIP_HEIGHT = 24
MIN_SEGMENT = 2.0  # px: one failure among many successes stays visible
# Bottom to top: failures sit on the baseline, where the eye lands.
STACK = (st.FAILED, st.TIMED_OUT, st.CANCELLED, st.OTHER, st.RUNNING, st.SUCCESS)
TITLE_ORDER = (st.FAILED, st.TIMED_OUT, st.CANCELLED, st.RUNNING, st.OTHER, st.SUCCESS)


@dataclass
class Segment:
    y: float
    height: float
    status_class: str


@dataclass
class DayBar:
    x: float
    width: float
    title: str
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Span:
    runs: int = 0  # executions started in the window (running ones too)
    terminal: int = 0
    success: int = 0

    @property
    def failed(self) -> int:
        """Terminal executions that did not succeed (failed, timed out, cancelled)."""
        return self.terminal - self.success

    @property
    def success_rate(self) -> Fraction | None:
        return Fraction(self.success, self.terminal) if self.terminal else None

    @property
    def failure_rate(self) -> Fraction | None:
        return Fraction(self.failed, self.terminal) if self.terminal else None

    @property
    def success_pct(self) -> str:
        """`83 %`, never rounded up to 100 % nor down to 0 % when that would hide a run."""
        rate = self.success_rate
        if rate is None:
            return "—"
        pct = math.floor(rate * 100)
        if pct == 0 and self.success:
            return "<1 %"
        return f"{pct} %"

    @property
    def level(self) -> str:
        """For the colour: ok (all succeeded), warn (some did not), bad (half or more did not)."""
        rate = self.failure_rate
        if rate is None:
            return "none"
        if rate == 0:
            return "ok"
        return "bad" if rate >= Fraction(1, 2) else "warn"


@dataclass
class Row:
    id: str
    name: str
    cloud: str
    last_at: datetime | None
    short: Span
    long: Span
    executions_url: str
    run_url: str
    last: Execution | None = None
    last_failure: Execution | None = None
    last_failure_url: str = ""
    p50_ms: int | None = None
    p95_ms: int | None = None
    idle: bool = False  # ran, but not in the last IDLE_AFTER
    never_ran: bool = False  # no execution in the mirror at all
    strip: list[DayBar] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        """Its last execution failed or timed out."""
        return self.last is not None and self.last.status_class in FAILURE_CLASSES

    @property
    def last_failure_step(self) -> str:
        if self.last_failure is None:
            return ""
        return self.last_failure.failure_step or self.last_failure.failure_node_id


@dataclass
class Overview:
    rows: list[Row]
    total: int  # workflows matching the filters (only WORKFLOW_LIMIT shown)
    failing: int  # of those shown, whose last execution failed
    idle: int  # of those shown, idle or never run
    strip_width: int = STRIP_WIDTH
    strip_height: int = STRIP_HEIGHT
    strip_days: int = STRIP_DAYS
    idle_days: int = IDLE_AFTER.days


def workflow_overview(filters: WorkflowFilters, *, now: datetime, tz: tzinfo) -> Overview:
    workflows = _filtered(filters)
    latest = Execution.objects.filter(workflow=OuterRef("pk")).order_by("-started_at", "-id")
    failed = latest.filter(status_class__in=FAILURE_CLASSES)
    wf_rows = list(
        workflows.annotate(
            last_id=Subquery(latest.values("pk")[:1]),
            last_at=Subquery(latest.values("started_at")[:1]),
            fail_id=Subquery(failed.values("pk")[:1]),
        ).values_list("id", "name", "cloud", "last_id", "last_at", "fail_id")
    )
    counts = _counts(workflows, now)
    executions = "executions:list"
    run = "runs:new"
    rows: list[Row] = []
    pointers: dict[str, tuple] = {}
    for pk, name, cloud, last_id, last_at, fail_id in wf_rows:
        short, long = counts.get(pk, (Span(), Span()))
        row = Row(
            id=str(pk),
            name=name or str(pk),
            cloud=cloud,
            last_at=last_at,
            short=short,
            long=long,
            executions_url=reverse(executions, query={"workflow": pk, "range": "30d"}),
            run_url=reverse(run, query={"workflow": pk}),
            never_ran=last_at is None,
            idle=last_at is not None and last_at < now - IDLE_AFTER,
        )
        rows.append(row)
        pointers[row.id] = (last_id, fail_id)
    _sort(rows, filters.sort)
    total = len(rows)
    rows = rows[:WORKFLOW_LIMIT]
    overview = Overview(
        rows=rows,
        total=total,
        failing=0,
        idle=sum(1 for row in rows if row.idle or row.never_ran),
    )
    if not rows:
        return overview
    ids = [uuid.UUID(row.id) for row in rows]
    wanted = {pk for row in rows for pk in pointers[row.id] if pk is not None}
    found = {
        e.pk: e
        for e in Execution.objects.filter(pk__in=wanted).only(
            "id",
            "workflow_id",
            "status",
            "status_class",
            "started_at",
            "failure_step",
            "failure_node_id",
        )
    }
    strips = _strips(ids, now, tz)
    percentiles = _percentiles(ids, now)
    detail = "executions:detail"
    for row in rows:
        last_id, fail_id = pointers[row.id]
        row.last = found.get(last_id)
        row.last_failure = found.get(fail_id)
        if row.last_failure is not None:
            node = row.last_failure.failure_node_id
            query = {"step": node} if node else None
            row.last_failure_url = reverse(detail, args=[row.last_failure.pk], query=query)
        row.p50_ms, row.p95_ms = percentiles.get(row.id, (None, None))
        row.strip = strips.get(row.id) or _empty_strip(now, tz)
    overview.failing = sum(1 for row in rows if row.failing)
    return overview


def cloud_choices() -> list[str]:
    """The clouds of the mirror's workflows, for the filter's select."""
    return list(
        Workflow.objects.exclude(cloud="")
        .order_by("cloud")
        .values_list("cloud", flat=True)
        .distinct()
    )


def _filtered(filters: WorkflowFilters) -> QuerySet:
    qs = Workflow.objects.all()
    if filters.cloud:
        qs = qs.filter(cloud=filters.cloud)
    if filters.q:
        qs = qs.filter(name__icontains=filters.q)
    return qs.order_by()


def _counts(workflows: QuerySet, now: datetime) -> dict[uuid.UUID, tuple[Span, Span]]:
    recent = Q(started_at__gte=now - SHORT)
    terminal = Q(status_class__in=st.TERMINAL_CLASSES)
    success = Q(status_class=st.SUCCESS)
    rows = (
        Execution.objects.filter(workflow__in=workflows.values("pk"), started_at__gte=now - LONG)
        .values("workflow_id")
        .annotate(
            runs_30=Count("pk"),
            terminal_30=Count("pk", filter=terminal),
            success_30=Count("pk", filter=success),
            runs_7=Count("pk", filter=recent),
            terminal_7=Count("pk", filter=recent & terminal),
            success_7=Count("pk", filter=recent & success),
        )
        .order_by()
    )
    return {
        row["workflow_id"]: (
            Span(row["runs_7"], row["terminal_7"], row["success_7"]),
            Span(row["runs_30"], row["terminal_30"], row["success_30"]),
        )
        for row in rows
    }


def _sort(rows: list[Row], sort: str) -> None:
    def by_name(row: Row) -> tuple:
        return (row.name.casefold(), row.id)

    if sort == "name":
        rows.sort(key=by_name)
    elif sort == "last":
        rows.sort(key=by_name)
        rows.sort(key=lambda r: r.last_at.timestamp() if r.last_at else float("-inf"), reverse=True)
    else:  # failures: highest failure rate over 7 days, then over 30 days; no data last

        def worst(row: Row) -> tuple:
            short, long = row.short.failure_rate, row.long.failure_rate
            return (
                short is None,
                -(short or 0),
                -row.short.failed,
                long is None,
                -(long or 0),
                -row.long.failed,
                row.name.casefold(),
                row.id,
            )

        rows.sort(key=worst)


# --- the per-day strip --------------------------------------------------------------------


def _days(now: datetime, tz: tzinfo) -> list[datetime]:
    """The local midnight starting each of the last STRIP_DAYS days, today last."""
    today = now.astimezone(tz).date()
    return [
        datetime.combine(today - timedelta(days=back), time.min, tzinfo=tz)
        for back in range(STRIP_DAYS - 1, -1, -1)
    ]


def _strips(ids: list[uuid.UUID], now: datetime, tz: tzinfo) -> dict[str, list[DayBar]]:
    days = _days(now, tz)
    index = {day.date(): i for i, day in enumerate(days)}
    per: dict[str, list[dict[str, int]]] = {}
    rows = (
        Execution.objects.filter(workflow_id__in=ids, started_at__gte=days[0])
        .annotate(day=TruncDay("started_at", tzinfo=tz))
        .values_list("workflow_id", "day", "status_class")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for workflow_id, day, status_class, n in rows:
        i = index.get(day.astimezone(tz).date() if isinstance(day, datetime) else day)
        if i is None:
            continue
        counts = per.setdefault(str(workflow_id), [{} for _ in days])[i]
        counts[status_class] = counts.get(status_class, 0) + n
    return {key: _bars(days, counts) for key, counts in per.items()}


def _empty_strip(now: datetime, tz: tzinfo) -> list[DayBar]:
    days = _days(now, tz)
    return _bars(days, [{} for _ in days])


def _bars(days: list[datetime], counts: list[dict[str, int]]) -> list[DayBar]:
    top = max((sum(day.values()) for day in counts), default=0) or 1
    step = STRIP_WIDTH / len(days)
    bars = []
    for i, (day, per) in enumerate(zip(days, counts, strict=True)):
        total = sum(per.values())
        parts = ", ".join(f"{per[c]} {st.LABELS[c].lower()}" for c in TITLE_ORDER if per.get(c))
        bar = DayBar(
            x=round(i * step + 0.5, 2),
            width=round(max(1.0, step - 1), 2),
            title=f"{day:%Y-%m-%d}: {parts}" if total else f"{day:%Y-%m-%d}: no execution",
        )
        if total:
            height = max(MIN_SEGMENT, STRIP_HEIGHT * total / top)
            sizes = {c: max(MIN_SEGMENT, height * per[c] / total) for c in STACK if per.get(c)}
            excess = sum(sizes.values()) - height
            if excess > 0:  # the minimum sizes overflowed: take it from the largest segment
                largest = max(sizes, key=sizes.get)
                sizes[largest] = max(MIN_SEGMENT / 2, sizes[largest] - excess)
            y = float(STRIP_HEIGHT)
            for c in STACK:
                if c in sizes:
                    y -= sizes[c]
                    bar.segments.append(Segment(round(max(y, 0), 2), round(sizes[c], 2), c))
        bars.append(bar)
    return bars


# --- p50 / p95 duration -------------------------------------------------------------------


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate: the interpolated percentile of the ordered values."""

    function = "percentile_cont"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, percent: int) -> None:
        super().__init__(Cast(expression, FloatField()), fraction=f"{percent / 100:.2f}")


def _durations(ids: list[uuid.UUID], now: datetime) -> QuerySet:
    """Terminal executions with a duration, started in the last 30 days."""
    return Execution.objects.filter(
        workflow_id__in=ids,
        started_at__gte=now - LONG,
        status_class__in=st.TERMINAL_CLASSES,
        duration_ms__isnull=False,
    )


def _percentiles(ids: list[uuid.UUID], now: datetime) -> dict[str, tuple[int, int]]:
    if connection.vendor == "postgresql":
        return percentiles_sql(ids, now)
    return percentiles_window(ids, now)


def percentiles_sql(ids: list[uuid.UUID], now: datetime) -> dict[str, tuple[int, int]]:
    """percentile_cont per workflow, in one GROUP BY (PostgreSQL)."""
    names = {p: f"p{p}" for p in PERCENTILES}
    rows = (
        _durations(ids, now)
        .values("workflow_id")
        .annotate(**{names[p]: PercentileCont("duration_ms", p) for p in PERCENTILES})
        .order_by()
    )
    return {
        str(row["workflow_id"]): tuple(round(row[names[p]]) for p in PERCENTILES) for row in rows
    }


def percentiles_window(ids: list[uuid.UUID], now: datetime) -> dict[str, tuple[int, int]]:
    """The same figures as percentile_cont, on any database with window functions (SQLite).

    For n values sorted, percentile p sits at position k = p/100 * (n - 1): the value there,
    interpolated linearly between positions floor(k) and ceil(k). The query numbers each
    workflow's durations and keeps only those positions: at most four rows per workflow,
    whatever the number of executions.
    """
    by_workflow = F("workflow_id")
    ordered = _durations(ids, now).annotate(
        rank=Window(RowNumber(), partition_by=[by_workflow], order_by=[F("duration_ms"), F("id")]),
        n=Window(Count("pk"), partition_by=[by_workflow]),
    )
    last = F("n") - 1
    wanted = Q()
    for p in PERCENTILES:
        # Integer arithmetic: floor and ceil of p * (n - 1) / 100 (rank counts from 1).
        wanted |= Q(rank=last * p / 100 + 1) | Q(rank=(last * p + 99) / 100 + 1)
    found: dict[str, dict[int, int]] = {}
    sizes: dict[str, int] = {}
    for workflow_id, duration, rank, n in ordered.filter(wanted).values_list(
        "workflow_id", "duration_ms", "rank", "n"
    ):
        key = str(workflow_id)
        found.setdefault(key, {})[rank - 1] = duration
        sizes[key] = n
    out: dict[str, tuple[int, int]] = {}
    for key, at in found.items():
        figures = []
        for p in PERCENTILES:
            k = Fraction(p * (sizes[key] - 1), 100)
            low, high = math.floor(k), math.ceil(k)
            if low not in at or high not in at:
                break
            value = at[low] + (at[high] - at[low]) * (k - low)
            figures.append(round(value))
        else:
            out[key] = tuple(figures)
    return out
