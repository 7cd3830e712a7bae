"""The executions list as SQL over the mirror: rows, counts per status class, the chart.

A constant number of queries whatever the row count: one GROUP BY (time bucket, status
class) gives the chart, the counts and the total for paging; one query gives the page.
Nothing here calls QFlow.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, TruncDay, TruncHour

from qflowui.executions.chart import Chart, build_chart
from qflowui.executions.forms import TRIAGE_NONE, Filters
from qflowui.mirror import status as st
from qflowui.mirror.failures import FAILURE_CLASSES
from qflowui.mirror.models import Execution, SyncRun, Workflow
from qflowui.triage.models import Triage
from qflowui.triage.versions import triage_version

PAGE_SIZE = 50
GROUPS_CACHE_SECONDS = 300
HOURLY_UP_TO = timedelta(hours=48)
ROW_FIELDS = (
    "id",
    "status",
    "status_class",
    "started_at",
    "duration_ms",
    "source",
    "triggered_by",
    "cloud",
    "region",
    "workflow",
    "workflow__name",
    "failure_node_id",
    "failure_step",
    "failure_message",
)
ORDERINGS = {
    "-started": ("-started_at", "-id"),
    "started": ("started_at", "id"),
    "-duration": (F("duration_ms").desc(nulls_last=True), "-started_at", "-id"),
    "duration": (F("duration_ms").asc(nulls_last=True), "-started_at", "-id"),
}
_HEX = re.compile(r"[0-9a-f]{1,32}")


@dataclass
class Listing:
    rows: list[Execution]
    counts: dict[str, int]  # per status class, for every filter but the status one
    matching: int  # executions matching every filter
    page: int
    pages: int
    chart: Chart | None
    live: bool  # a running execution is on screen and the range includes now
    first: int = 0  # 1-based position of the first row shown
    statuses_hidden: int = field(default=0)  # match the other filters, not the status one
    # Each status as QFlow spells it, with its count (the other filters, not the status one).
    status_counts: dict[str, int] = field(default_factory=dict)
    version: tuple = ()  # the mirror's latest writes: caches built on this page use it
    history_since: datetime | None = None  # the first sync pass: the mirror's history


def execution_listing(filters: Filters, *, now: datetime, tz: tzinfo) -> Listing:
    # A preset range starts on a whole minute: views within the same minute share the
    # same window, so their counts and chart can come from the cache.
    start, end = filters.window(now.replace(second=0, microsecond=0))
    base = _filtered(filters, start, end)
    hourly = start is not None and (end or now) - start <= HOURLY_UP_TO
    state = mirror_state()
    groups = _groups(base, filters, start, end, hourly, tz, state[:2])
    counts = dict.fromkeys(st.CLASSES, 0)
    status_counts: dict[str, int] = {}
    for _, cls, status, n in groups:
        counts[cls if cls in counts else st.OTHER] += n
        status_counts[status] = status_counts.get(status, 0) + n
    any_status = not (filters.statuses or filters.raw_statuses)
    classes, raw = set(filters.statuses), set(filters.raw_statuses)

    def picked(cls: str, status: str) -> bool:
        return any_status or cls in classes or status in raw

    matching = sum(n for _, cls, status, n in groups if picked(cls, status))
    pages = max(1, math.ceil(matching / PAGE_SIZE))
    page = min(filters.page, pages)
    rows: list[Execution] = []
    if matching:
        qs = base if any_status else base.filter(status_condition(filters))
        offset = (page - 1) * PAGE_SIZE
        rows = list(
            qs.select_related("workflow")
            .only(*ROW_FIELDS)
            # Each row's triage state (None: never triaged), in the same query.
            .annotate(triage_state=Subquery(_triage_of.values("state")[:1]))
            .order_by(*ORDERINGS[filters.sort])[offset : offset + PAGE_SIZE]
        )
    chart = build_chart(
        [(bucket, cls, n) for bucket, cls, status, n in groups if picked(cls, status)],
        start=start,
        end=end or now,
        hourly=hourly,
        tz=tz,
    )
    return Listing(
        rows=rows,
        counts=counts,
        matching=matching,
        page=page,
        pages=pages,
        chart=chart,
        live=filters.includes_now(now) and any(r.status_class == st.RUNNING for r in rows),
        first=(page - 1) * PAGE_SIZE + 1 if rows else 0,
        statuses_hidden=sum(counts.values()) - matching,
        status_counts=dict(sorted(status_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        version=state[:2],
        history_since=state[2],
    )


_triage_of = Triage.objects.filter(execution_id=OuterRef("pk"))


def cache_version(filters: Filters, version: tuple) -> tuple:
    """The version of what a cached count under these filters depends on: the mirror's, and
    with a triage filter the triage states' too (a triage edit is no mirror write)."""
    return (*version, triage_version()) if filters.triage else version


def matching_executions(filters: Filters, *, now: datetime) -> QuerySet:
    """Every execution the list shows for these filters (all pages, the status filter too):
    what a saved view counts and alerts on."""
    start, end = filters.window(now.replace(second=0, microsecond=0))
    qs = _filtered(filters, start, end)
    if filters.statuses or filters.raw_statuses:
        qs = qs.filter(status_condition(filters))
    return qs


def status_condition(filters: Filters) -> Q:
    """The status filter: its classes (shortcuts) or QFlow's own spellings."""
    return Q(status_class__in=filters.statuses) | Q(status__in=filters.raw_statuses)


def _groups(
    base: QuerySet,
    filters: Filters,
    start: datetime | None,
    end: datetime | None,
    hourly: bool,
    tz: tzinfo,
    version: tuple,
) -> list[tuple[datetime, str, str, int]]:
    """Executions per (time bucket, status class, status as QFlow spells it): the one query
    that reads every row in range.

    Cached until the mirror changes: the key holds the latest write to executions and
    workflows, so a sync, a detail refresh or a run's refresh starts afresh.
    """
    params = {k: v for k, v in filters.params().items() if k not in ("status", "sort")}
    raw_key = repr(
        (
            sorted(params.items()),
            start,
            end,
            filters.end_inclusive,
            filters.asof,
            hourly,
            str(tz),
            cache_version(filters, version),
        )
    )
    key = "executions:groups2:" + hashlib.sha256(raw_key.encode()).hexdigest()
    groups = cache.get(key)
    if groups is None:
        trunc = (TruncHour if hourly else TruncDay)("started_at", tzinfo=tz)
        groups = list(
            base.annotate(bucket=trunc)
            .values_list("bucket", "status_class", "status")
            .annotate(n=Count("*"))
            .order_by()
        )
        cache.set(key, groups, GROUPS_CACHE_SECONDS)
    return groups


def _mirror_version() -> tuple:
    """The latest write to the mirror's executions and workflows (both columns indexed)."""
    return mirror_state()[:2]


def mirror_state() -> tuple:
    """(latest write to executions, to workflows, the first sync pass's start): one query
    over three indexed columns. The first two version the caches; the third is how far back
    the mirror's history goes."""
    sql = (
        "SELECT (SELECT MAX(last_synced_at) FROM {}), (SELECT MAX(last_synced_at) FROM {}),"
        " (SELECT MIN(started_at) FROM {})"
    )
    tables = (Execution._meta.db_table, Workflow._meta.db_table, SyncRun._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql.format(*tables))
        return tuple(cursor.fetchone())


def _filtered(
    filters: Filters, start: datetime | None, end: datetime | None, *, facets: bool = False
) -> QuerySet:
    """Every filter but the status one (the counts per status come from this); with
    `facets`, also without source, cloud and region (their choices are counted on this)."""
    qs = Execution.objects.all()
    if filters.asof is not None:
        qs = qs.filter(first_seen_at__lte=filters.asof)
    if start is not None:
        qs = qs.filter(started_at__gte=start)
    if end is not None:
        qs = (
            qs.filter(started_at__lte=end)
            if filters.end_inclusive
            else qs.filter(started_at__lt=end)
        )
    if filters.workflow is not None:
        qs = qs.filter(workflow_id=filters.workflow)
    for name in () if facets else ("source", "cloud", "region"):
        value = getattr(filters, name)
        if value:  # as QFlow spells it or not: `schedule` finds SCHEDULE
            qs = qs.filter(**{f"{name}__iexact": value})
    if filters.q:
        qs = qs.filter(search_condition(filters.q))
    if filters.error:
        qs = qs.filter(status_class__in=FAILURE_CLASSES, failure_message__icontains=filters.error)
    if filters.failure:
        qs = qs.filter(failure_key=filters.failure, status_class__in=FAILURE_CLASSES)
    if filters.triage == TRIAGE_NONE:
        qs = qs.filter(~Exists(_triage_of))
    elif filters.triage:
        qs = qs.filter(Exists(_triage_of.filter(state=filters.triage)))
    return qs


FACETS = ("source", "region", "cloud")


def filter_choices(
    filters: Filters, *, now: datetime, version: tuple | None = None
) -> dict[str, list[tuple[str, int]]]:
    """Source, region and cloud choices as the mirror holds them, each with its count of
    executions in range (under the other filters, its own left out). Cached like the chart."""
    start, end = filters.window(now.replace(second=0, microsecond=0))
    params = {k: v for k, v in filters.params().items() if k not in ("status", "sort", *FACETS)}
    version = version if version is not None else _mirror_version()
    raw_key = repr(
        (sorted(params.items()), start, end, filters.end_inclusive, cache_version(filters, version))
    )
    key = "executions:facets:" + hashlib.sha256(raw_key.encode()).hexdigest()
    combos = cache.get(key)
    if combos is None:
        combos = list(
            _filtered(filters, start, end, facets=True)
            .values_list(*FACETS)
            .annotate(n=Count("*"))
            .order_by()
        )
        cache.set(key, combos, GROUPS_CACHE_SECONDS)
    wanted = {name: getattr(filters, name).lower() for name in FACETS}
    out: dict[str, dict[str, int]] = {name: {} for name in FACETS}
    for combo in combos:
        values, n = dict(zip(FACETS, combo[:3], strict=True)), combo[3]
        for name in FACETS:
            others = all(
                not wanted[o] or (values[o] or "").lower() == wanted[o] for o in FACETS if o != name
            )
            if others and values[name]:
                out[name][values[name]] = out[name].get(values[name], 0) + n
    return {name: sorted(per.items(), key=lambda kv: kv[0].lower()) for name, per in out.items()}


def known_statuses() -> list[str]:
    """Every status QFlow has sent, as it spells them (cached until the mirror changes)."""
    key = "executions:statuses:" + hashlib.sha256(repr(_mirror_version()).encode()).hexdigest()
    statuses = cache.get(key)
    if statuses is None:
        statuses = sorted(
            s for s in Execution.objects.order_by().values_list("status", flat=True).distinct() if s
        )
        cache.set(key, statuses, GROUPS_CACHE_SECONDS)
    return statuses


def search_condition(text: str) -> Q:
    """An execution id (or its prefix), or a substring of the workflow's name.

    An id prefix becomes a range of UUIDs, so it uses the primary key's index.
    """
    cond = Q(workflow__in=Workflow.objects.filter(name__icontains=text).values("pk"))
    digits = text.strip().lower().replace("-", "")
    if _HEX.fullmatch(digits):
        low = uuid.UUID(digits.ljust(32, "0"))
        high = uuid.UUID(digits.ljust(32, "f"))
        cond |= Q(pk__gte=low, pk__lte=high)
    return cond


def workflow_choices() -> list[tuple[str, str, str]]:
    """(id, name, cloud) of every workflow in the mirror, for the filter's select."""
    rows = Workflow.objects.only("id", "name", "cloud").order_by("name", "id")
    return [(str(wf.id), wf.name or str(wf.id), wf.cloud) for wf in rows]


@dataclass
class Freshness:
    last: SyncRun | None  # the latest finished pass
    last_ok: SyncRun | None  # the latest pass that succeeded: how fresh the mirror is
    down_since: datetime | None  # start of the current run of "QFlow unreachable" passes


_EPOCH = Value(datetime(1970, 1, 1, tzinfo=UTC), output_field=DateTimeField())


FRESHNESS_WINDOW = 100  # recent passes read at once: the banner needs the current streak


def sync_freshness() -> Freshness:
    """How fresh the mirror is, from the recent passes: usually one query."""
    finished = SyncRun.objects.filter(finished_at__isnull=False).order_by("-started_at")
    recent = list(finished[:FRESHNESS_WINDOW])
    if not recent:
        return Freshness(last=None, last_ok=None, down_since=None)
    last = recent[0]
    last_ok = next((run for run in recent if run.ok), None)
    if last_ok is None and len(recent) == FRESHNESS_WINDOW:
        last_ok = finished.filter(ok=True).first()
    down_since = None
    if last.upstream_down:
        streak = 0
        while streak < len(recent) and recent[streak].upstream_down:
            streak += 1
        if streak < len(recent) or len(recent) < FRESHNESS_WINDOW:
            down_since = recent[streak - 1].started_at
        else:  # down for longer than the window: ask the database where the streak began
            reachable = finished.filter(upstream_down=False).values("started_at")[:1]
            down_since = (
                finished.filter(
                    upstream_down=True, started_at__gt=Coalesce(Subquery(reachable), _EPOCH)
                )
                .order_by("started_at")
                .values_list("started_at", flat=True)
                .first()
            )
    return Freshness(last=last, last_ok=last_ok, down_since=down_since)
