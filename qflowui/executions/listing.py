"""The executions list as SQL over the mirror: rows, counts per status class, the chart.

A constant number of queries whatever the row count, and reads that do not grow with it:

- Counts, chart and filter choices come from the rollups (qflowui/mirror/rollups.py): the
  whole UTC days of the range from the daily rollup, its whole hours at either end from
  the hourly one, and only the minutes before the first whole hour (and after the last)
  from the executions themselves, so at most two hours of rows are read.
- Filters a rollup cannot answer (an id or hex search, "error contains", a failure group,
  triage) count the newest ROLLUP_CAP + 1 matching executions at most: "1,000+".
- A page is found by keyset (its first or last row's sort key), never by OFFSET.

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
from django.utils import timezone as dj_timezone

from qflowui.executions.chart import Chart, build_chart
from qflowui.executions.forms import TRIAGE_NONE, Filters
from qflowui.mirror import rollups
from qflowui.mirror import status as st
from qflowui.mirror.failures import FAILURE_CLASSES
from qflowui.mirror.models import (
    Execution,
    ExecutionDayRollup,
    QflowUser,
    SyncRun,
    Workflow,
)
from qflowui.triage.models import Triage
from qflowui.triage.versions import triage_version

PAGE_SIZE = 50
# Counts a rollup cannot answer stop here ("1,000+"); a plain `page=N` link (no cursor)
# may skip at most this many rows with OFFSET.
ROLLUP_CAP = 1000
OFFSET_PAGES = 20
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
    "failure_pattern",
    "failure_key",
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
    capped: bool = False  # counted among the newest ROLLUP_CAP + 1 matches only: "1,000+"
    newer: str = ""  # cursor of the page before this one ("": none)
    older: str = ""  # cursor of the page after this one ("": none)
    exact_pages: bool = True  # `pages` is known (the counts are exact)


def execution_listing(
    filters: Filters,
    *,
    now: datetime,
    tz: tzinfo,
    workflows: list[tuple[str, str, str]] | None = None,
) -> Listing:
    # A preset range starts on a whole minute: views within the same minute share the
    # same window, so their counts and chart can come from the cache.
    start, end = filters.window(now.replace(second=0, microsecond=0))
    base = _filtered(filters, start, end, workflows=workflows)
    hourly = start is not None and (end or now) - start <= HOURLY_UP_TO
    state = mirror_state()
    groups, capped = _groups(base, filters, start, end, hourly, tz, state[:2], now)
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
    qs = base if any_status else base.filter(status_condition(filters))
    rows, page, newer, older = _page(qs, filters, matching, pages, capped)
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
        pages=max(pages, page),
        chart=chart,
        live=filters.includes_now(now) and any(r.status_class == st.RUNNING for r in rows),
        first=(page - 1) * PAGE_SIZE + 1 if rows else 0,
        statuses_hidden=sum(counts.values()) - matching,
        status_counts=dict(sorted(status_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        version=state[:2],
        history_since=state[2],
        capped=capped,
        newer=newer,
        older=older,
        exact_pages=not capped,
    )


_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


# --- keyset paging ------------------------------------------------------------------------

# Each sort as (field, descending, nulls last): the rows' total order, `id` last.
SORT_KEYS = {
    "-started": (("started_at", True, False), ("id", True, False)),
    "started": (("started_at", False, False), ("id", False, False)),
    "-duration": (("duration_ms", True, True), ("started_at", True, False), ("id", True, False)),
    "duration": (("duration_ms", False, True), ("started_at", True, False), ("id", True, False)),
}


def encode_cursor(row: Execution, sort: str) -> str:
    """A row's sort key as URL text: `<duration or ~>.<started µs since epoch>.<id hex>`."""
    started = int(row.started_at.timestamp() * 1_000_000)
    text = f"{started}.{row.id.hex}"
    if sort.endswith("duration"):
        text = f"{'~' if row.duration_ms is None else row.duration_ms}.{text}"
    return text


def decode_cursor(text: str, sort: str) -> tuple | None:
    """(duration?, started_at, id) of a cursor, or None when it is not one."""
    parts = text.split(".")
    want = 3 if sort.endswith("duration") else 2
    if len(parts) != want:
        return None
    try:
        values: list = []
        if want == 3:
            values.append(None if parts[0] == "~" else int(parts[0]))
        started = _EPOCH_UTC + timedelta(microseconds=int(parts[-2]))
        values += [started, uuid.UUID(hex=parts[-1])]
    except (ValueError, OverflowError, OSError):
        return None
    return tuple(values)


def _beyond(keys: tuple, values: tuple, *, after: bool) -> Q:
    """Rows strictly after (or before) `values` in the order of `keys`."""
    cond = Q(pk__in=[])
    equal = Q()
    for (name, desc, nulls_last), value in zip(keys, values, strict=True):
        if value is None:  # nulls last: none is after a null; every value is before one
            step = Q(pk__in=[]) if after else Q(**{f"{name}__isnull": False})
            here = Q(**{f"{name}__isnull": True})
        else:
            step = Q(**{f"{name}__{'lt' if desc == after else 'gt'}": value})
            if nulls_last and after:
                step |= Q(**{f"{name}__isnull": True})
            here = Q(**{name: value})
        cond |= equal & step
        equal &= here
    return cond


def _page(
    qs: QuerySet, filters: Filters, matching: int, pages: int, capped: bool
) -> tuple[list[Execution], int, str, str]:
    """(rows, page number, cursor for Newer, cursor for Older): 51 rows read at most, by
    keyset after (or before) the cursor in the URL; a plain `page=N` skips with a bounded
    OFFSET, and the last page reads the order backwards."""
    keys = SORT_KEYS[filters.sort]
    rows_of = (
        qs.select_related("workflow")
        .only(*ROW_FIELDS)
        # Each row's triage state (None: never triaged), in the same query.
        .annotate(triage_state=Subquery(_triage_of.values("state")[:1]))
        # The name the team knows for the QFlow user who started it, in the same query.
        .annotate(triggered_name=Subquery(_name_of.values("display_name")[:1]))
        .order_by(*ORDERINGS[filters.sort])
    )
    if not matching and not capped:
        return [], 1, "", ""
    page = max(1, filters.page)
    after = decode_cursor(filters.after, filters.sort) if filters.after else None
    before = decode_cursor(filters.before, filters.sort) if filters.before else None
    if before is not None:
        found = list(rows_of.filter(_beyond(keys, before, after=False)).reverse()[: PAGE_SIZE + 1])
        more = len(found) > PAGE_SIZE
        rows = found[:PAGE_SIZE][::-1]
        if not more:
            page = 1
        newer = encode_cursor(rows[0], filters.sort) if rows and more else ""
        older = encode_cursor(rows[-1], filters.sort) if rows else ""
        return rows, page, newer, older
    if after is not None:
        found = list(rows_of.filter(_beyond(keys, after, after=True))[: PAGE_SIZE + 1])
        rows = found[:PAGE_SIZE]
        newer = encode_cursor(rows[0], filters.sort) if rows else ""
        older = encode_cursor(rows[-1], filters.sort) if len(found) > PAGE_SIZE else ""
        return rows, page, newer, older
    offset = 0
    if page > 1 and not capped and page >= pages:  # the last page: the order backwards
        page = pages
        last = matching - (pages - 1) * PAGE_SIZE
        rows = list(rows_of.reverse()[:last])[::-1]
        newer = encode_cursor(rows[0], filters.sort) if rows and pages > 1 else ""
        return rows, page, newer, ""
    if page > 1:
        page = min(page, OFFSET_PAGES)
        offset = (page - 1) * PAGE_SIZE
    found = list(rows_of[offset : offset + PAGE_SIZE + 1])
    if not found and offset:  # past the end of a capped count: the first page
        page, offset = 1, 0
        found = list(rows_of[: PAGE_SIZE + 1])
    rows = found[:PAGE_SIZE]
    newer = encode_cursor(rows[0], filters.sort) if rows and page > 1 else ""
    older = encode_cursor(rows[-1], filters.sort) if len(found) > PAGE_SIZE else ""
    return rows, page, newer, older


_triage_of = Triage.objects.filter(execution_id=OuterRef("pk"))
_name_of = QflowUser.objects.filter(user_id=OuterRef("triggered_by"))


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
    now: datetime,
) -> tuple[list[tuple[datetime, str, str, int]], bool]:
    """Executions per (time bucket, status class, status as QFlow spells it), and whether
    they were counted among the newest ROLLUP_CAP + 1 matches only.

    From the rollups when they can answer the filters; else from the rows (capped on
    PostgreSQL). Cached until the mirror changes: the key holds the latest write to
    executions and workflows, so a sync, a detail refresh or a run's refresh starts afresh.
    """
    params = {k: v for k, v in filters.params().items() if k not in ("status", "sort")}
    raw_key = repr(
        (
            sorted(params.items()),
            start,
            end,
            filters.end_inclusive,
            hourly,
            str(tz),
            cache_version(filters, version),
        )
    )
    key = "executions:groups3:" + hashlib.sha256(raw_key.encode()).hexdigest()
    found = cache.get(key)
    if found is None:
        if rollup_answers(filters, tz, now):
            unit = "hour" if hourly else "day"
            days_ok = not hourly and _is_utc(tz)
            sql, sql_params = _rollup_sql(
                f"date_trunc('{unit}', t, %s), status_class, status",
                [_zone_name(tz)],
                filters,
                start,
                end,
                days_ok=days_ok,
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, sql_params)
                found = (list(cursor.fetchall()), False)
        else:
            capped = _capped_rows() and _needs_cap(filters)
            source = base
            if capped:
                newest = base.order_by("-started_at", "-id").values("pk")[: ROLLUP_CAP + 1]
                source = Execution.objects.filter(pk__in=newest)
            trunc = (TruncHour if hourly else TruncDay)("started_at", tzinfo=tz)
            rows = list(
                source.annotate(bucket=trunc)
                .values_list("bucket", "status_class", "status")
                .annotate(n=Count("*"))
                .order_by()
            )
            found = (rows, capped and sum(r[3] for r in rows) > ROLLUP_CAP)
        cache.set(key, found, GROUPS_CACHE_SECONDS)
    return found


def _capped_rows() -> bool:
    """On PostgreSQL (where mirrors grow large) counts the rollups cannot answer are capped;
    SQLite (development) counts every row as before."""
    return rollups.supported()


def _needs_cap(filters: Filters) -> bool:
    return bool(filters.error or filters.failure or filters.triage or _hex_search(filters.q))


def _hex_search(text: str) -> bool:
    return bool(text) and bool(_HEX.fullmatch(text.strip().lower().replace("-", "")))


_UTC_NAMES = {"UTC", "Etc/UTC", "GMT", "Etc/GMT", "UCT", "Etc/UCT", "Universal", "Zulu"}


def _zone_name(tz: tzinfo) -> str:
    return getattr(tz, "key", None) or dj_timezone._get_timezone_name(tz)


def _is_utc(tz: tzinfo) -> bool:
    """Days in this zone are UTC days: the daily rollup draws the chart's days."""
    return _zone_name(tz) in _UTC_NAMES or tz is UTC


def _whole_hours(tz: tzinfo, now: datetime) -> bool:
    """The zone's offset is whole hours all year (not India's +5:30 or Nepal's +5:45): its
    hours and days are made of the rollup's UTC hours."""
    samples = [now, *(datetime(now.year, m, 15, tzinfo=UTC) for m in range(1, 13))]
    return all(moment.astimezone(tz).utcoffset().total_seconds() % 3600 == 0 for moment in samples)


def rollup_answers(filters: Filters, tz: tzinfo, now: datetime) -> bool:
    """Can the rollups give these filters' counts and chart? Not for an id or hex search,
    "error contains", a failure group or triage (no rollup dimension), nor in a zone whose
    offset is not whole hours; and only on PostgreSQL."""
    return rollups.supported() and not _needs_cap(filters) and _whole_hours(tz, now)


def _floor(moment: datetime, unit: str) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == "day" else moment


def _ceil(moment: datetime, unit: str) -> datetime:
    down = _floor(moment, unit)
    return down if down == moment else down + (timedelta(days=1) if unit == "day" else _HOUR)


_HOUR = timedelta(hours=1)


def _window_parts(
    start: datetime | None, end: datetime | None, end_inclusive: bool, *, days_ok: bool
) -> list[tuple[str, datetime | None, datetime | None, bool]]:
    """The window as (table, from, to, to inclusive) pieces: the rows for the minutes before
    the first whole hour and after the last, the hourly rollup for whole hours, the daily
    one (when `days_ok`) for whole UTC days. None: open."""
    rows, hours, days = rollups.EXECUTIONS, rollups.HOURS, rollups.DAYS
    h0 = _ceil(start, "hour") if start is not None else None
    h1 = _floor(end, "hour") if end is not None else None
    if h0 is not None and h1 is not None and h0 >= h1:
        return [(rows, start, end, end_inclusive)]
    parts = []
    if start is not None and start < h0:
        parts.append((rows, start, h0, False))
    if end is not None and (h1 < end or end_inclusive):
        parts.append((rows, h1, end, end_inclusive))
    d0 = _ceil(h0, "day") if h0 is not None else None
    d1 = _floor(h1, "day") if h1 is not None else None
    if days_ok and (d0 is None or d1 is None or d0 < d1):
        parts.append((days, d0, d1, False))
        if h0 is not None and h0 < d0:
            parts.append((hours, h0, d0, False))
        if h1 is not None and d1 < h1:
            parts.append((hours, d1, h1, False))
    else:
        parts.append((hours, h0, h1, False))
    return parts


def _dims_sql(filters: Filters, *, facets: bool = False) -> tuple[list[str], list]:
    """The filters a rollup has a column for, as SQL over a rollup or the executions."""
    where: list[str] = []
    params: list = []
    if filters.workflow is not None:
        where.append("workflow_id = %s::uuid")
        params.append(str(filters.workflow))
    for name in () if facets else ("source", "cloud", "region"):
        value = getattr(filters, name)
        if value:  # as QFlow spells it or not: `schedule` finds SCHEDULE
            where.append(f"UPPER({name}) = UPPER(%s)")
            params.append(value)
    if filters.q:  # a workflow's name (a hex search never comes here)
        where.append(
            f"workflow_id IN (SELECT id FROM {Workflow._meta.db_table}"  # noqa: S608 (ours)
            " WHERE POSITION(UPPER(%s) IN UPPER(name)) > 0)"
        )
        params.append(filters.q)
    return where, params


def _rollup_sql(
    select: str,
    select_params: list,
    filters: Filters,
    start: datetime | None,
    end: datetime | None,
    *,
    days_ok: bool,
    columns: int = 3,
    facets: bool = False,
) -> tuple[str, list]:
    """One query: `select` + SUM(n) grouped over the window's pieces (UNION ALL)."""
    dims, dim_params = _dims_sql(filters, facets=facets)
    pieces, params = [], list(select_params)
    for table, low, high, inclusive in _window_parts(
        start, end, filters.end_inclusive, days_ok=days_ok
    ):
        column, n = ("started_at", "1") if table == rollups.EXECUTIONS else ("bucket", "n")
        where = list(dims)
        piece_params: list = []
        if low is not None:
            where.insert(0, f"{column} >= %s")
            piece_params.append(low)
        if high is not None:
            where.insert(len(piece_params), f"{column} {'<=' if inclusive else '<'} %s")
            piece_params.append(high)
        pieces.append(
            # Only our own names and %s placeholders are formatted in; values are parameters.
            f"SELECT {column} AS t, status_class, status, source, cloud, region, {n} AS n"  # noqa: S608
            f" FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
        )
        params += piece_params + dim_params
    groups = ", ".join(str(i) for i in range(1, columns + 1))
    sql = (
        f"SELECT {select}, SUM(n)::bigint FROM ({' UNION ALL '.join(pieces)}) AS pieces"  # noqa: S608
        f" GROUP BY {groups} HAVING SUM(n) > 0"
    )
    return sql, params


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
    filters: Filters,
    start: datetime | None,
    end: datetime | None,
    *,
    facets: bool = False,
    workflows: list[tuple[str, str, str]] | None = None,
) -> QuerySet:
    """Every filter but the status one (the counts per status come from this); with
    `facets`, also without source, cloud and region (their choices are counted on this)."""
    # `asof` (the moment page 1 was shown) fixes the window's "now"; keyset paging keeps the
    # pages apart, so rows first seen since then need no filter of their own.
    qs = Execution.objects.all()
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
        qs = qs.filter(search_condition(filters.q, workflows))
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
    filters: Filters,
    *,
    now: datetime,
    version: tuple | None = None,
    workflows: list[tuple[str, str, str]] | None = None,
) -> dict[str, list[tuple[str, int]]]:
    """Source, region and cloud choices as the mirror holds them, each with its count of
    executions in range (under the other filters, its own left out). Cached like the chart."""
    start, end = filters.window(now.replace(second=0, microsecond=0))
    params = {k: v for k, v in filters.params().items() if k not in ("status", "sort", *FACETS)}
    version = version if version is not None else _mirror_version()
    raw_key = repr(
        (sorted(params.items()), start, end, filters.end_inclusive, cache_version(filters, version))
    )
    key = "executions:facets2:" + hashlib.sha256(raw_key.encode()).hexdigest()
    combos = cache.get(key)
    if combos is None and rollups.supported() and not _needs_cap(filters):
        # Facets do not depend on the time zone: whole UTC days from the daily rollup.
        sql, sql_params = _rollup_sql(
            "source, region, cloud", [], filters, start, end, days_ok=True, facets=True
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, sql_params)
            combos = list(cursor.fetchall())
        cache.set(key, combos, GROUPS_CACHE_SECONDS)
    elif combos is None:
        rows = _filtered(filters, start, end, facets=True, workflows=workflows)
        if _capped_rows() and _needs_cap(filters):  # the newest ROLLUP_CAP + 1 matches
            newest = rows.order_by("-started_at", "-id").values("pk")[: ROLLUP_CAP + 1]
            rows = Execution.objects.filter(pk__in=newest)
        combos = list(rows.values_list(*FACETS).annotate(n=Count("*")).order_by())
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
        rows = (
            ExecutionDayRollup.objects.filter(n__gt=0)
            if rollups.supported()
            else Execution.objects.all()
        )
        statuses = sorted(
            s for s in rows.order_by().values_list("status", flat=True).distinct() if s
        )
        cache.set(key, statuses, GROUPS_CACHE_SECONDS)
    return statuses


def search_condition(text: str, workflows: list[tuple[str, str, str]] | None = None) -> Q:
    """An execution id (or its prefix), or a substring of the workflow's name.

    An id prefix becomes a range of UUIDs, so it uses the primary key's index. With
    `workflows` (workflow_choices(), which the page reads anyway) the names are matched here
    and the condition is a plain list of ids: `id range OR workflow IN (...)` is two index
    scans, where a sub-select in the OR made PostgreSQL walk every row (the prefix cliff).
    """
    if workflows is None:
        cond = Q(workflow__in=Workflow.objects.filter(name__icontains=text).values("pk"))
    else:
        needle = text.casefold()
        ids = [i for i, name, _ in workflows if name != i and needle in name.casefold()]
        cond = Q(workflow_id__in=ids) if ids else Q(pk__in=[])
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
