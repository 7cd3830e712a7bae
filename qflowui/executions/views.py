"""The executions list: a SQL query over the mirror, never a call to QFlow.

One view serves the page and, for htmx, its `#results` fragment (with the filter bar and
the freshness line swapped out-of-band, so errors and presets follow the URL).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from qflowui.executions.forms import (
    RANGES,
    TRIAGE_CHOICES,
    TRIAGE_NONE,
    ExecutionFilterForm,
    Filters,
)
from qflowui.executions.listing import (
    ROLLUP_CAP,
    Freshness,
    Listing,
    execution_listing,
    filter_choices,
    known_statuses,
    sync_freshness,
    workflow_choices,
)
from qflowui.executions.provenance import StartedBy, started_by
from qflowui.executions.templatetags.qflow_format import clock
from qflowui.mirror import status as st
from qflowui.mirror import tasks as mirror_tasks
from qflowui.mirror.failures import FAILURE_CLASSES, first_line
from qflowui.mirror.models import Execution, SyncRun
from qflowui.mirror.sync import upstream_wait_until
from qflowui.triage.models import TriageState

logger = logging.getLogger(__name__)

TEMPLATE = "executions/list.html"
# Loudest first: what an analyst on shift looks for.
COUNT_ORDER = (st.FAILED, st.TIMED_OUT, st.CANCELLED, st.RUNNING, st.SUCCESS, st.OTHER)
Params = dict[str, list[str]]


@require_GET
def execution_list(request: HttpRequest) -> HttpResponse:
    form = ExecutionFilterForm(request.GET)
    form.is_valid()  # bad values get their message; the valid ones still apply
    filters = form.filters(known_statuses() if form.unknown_statuses else ())
    if filters.full_id is not None:
        # A pasted execution id opens it, whatever its date (the page asks QFlow once when
        # the mirror does not have it).
        target = reverse("executions:detail", args=[filters.full_id])
        if request.htmx:
            return HttpResponseClientRedirect(target)
        return HttpResponseRedirect(target)
    # A paged view keeps the moment of its first page: the same window, the same rows.
    now = filters.asof or timezone.now()
    workflows = workflow_choices()  # the filter's select, and the search's name matches
    listing = execution_listing(
        filters, now=now, tz=timezone.get_current_timezone(), workflows=workflows
    )
    freshness = sync_freshness()
    context = {
        **_page_context(form, filters, listing, now, workflows),
        "freshness": freshness,
        "sync_state": _sync_state(freshness),
        "next_url": request.get_full_path(),
        "poll_url": request.get_full_path(),
    }
    template = TEMPLATE
    if request.htmx and not request.htmx.history_restore_request:
        template += "#results"
        context["oob"] = True
        # The 10 s poll must not reset what the user is typing in the filter bar.
        context["oob_filters"] = request.htmx.trigger != "results"
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


@dataclass
class SyncState:
    """What the header says about the sync beyond "synced 40 s ago"."""

    partial: SyncRun | None  # the last pass, when it was cut short
    skipped: int  # malformed records the last pass left out
    wait_until: datetime | None  # QFlow asked us (409/429) to make no call before this


def _sync_state(freshness: Freshness) -> SyncState:
    """From the passes the freshness line already read: no query of its own."""
    last = freshness.last
    if last is None:
        return SyncState(partial=None, skipped=0, wait_until=None)
    until = last.rate_limited_until
    return SyncState(
        partial=last if last.partial else None,
        skipped=last.records_skipped if last.ok else 0,  # a partial summary says it already
        wait_until=until if until and until > timezone.now() else None,
    )


@require_POST
def sync_now(request: HttpRequest) -> HttpResponse:
    """Queue one sync pass. A broker that is down gets a message, never an error page.

    While QFlow's last 409/429 wait lasts nothing is queued: the pass would make no call.
    """
    wait_until = upstream_wait_until()
    if wait_until is not None:
        ok = False
        text = f"Not queued: QFlow asked us to wait until {clock(wait_until)}; no call before then."
    else:
        try:
            mirror_tasks.sync.delay()
        except Exception:  # kombu, Celery and socket errors all mean "not queued"
            logger.warning("could not queue a sync pass: broker unreachable", exc_info=True)
            ok, text = False, "Sync not queued: the task broker is unreachable. Try again shortly."
        else:
            ok, text = True, "Sync queued: new executions appear when the pass finishes."
    next_url = _safe_next(request, request.POST.get("next", ""))
    if request.htmx:
        context = {
            # While QFlow's wait lasts the button itself says until when.
            "sync_message": None if wait_until else text,
            "sync_ok": ok,
            "next_url": next_url,
            "sync_state": SyncState(partial=None, skipped=0, wait_until=wait_until),
        }
        return render(request, TEMPLATE + "#sync", context)
    (messages.success if ok else messages.error)(request, text)
    return HttpResponseRedirect(next_url)


def _safe_next(request: HttpRequest, target: str) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("executions:list")


# --- what the template shows, computed here so the template only loops -------------


@dataclass
class Row:
    id: str
    short_id: str
    status: str
    status_class: str
    running: bool
    workflow_name: str
    workflow_url: str
    detail_url: str
    started_at: datetime
    duration_ms: int | None
    source: str
    source_url: str
    triggered_by: str
    triggered_name: str  # the QFlow user's name when the team has named them
    started_by: StartedBy | None
    cloud: str
    cloud_url: str
    region: str
    region_url: str
    failure_step: str = ""  # failed and timed-out rows: the failing step's name,
    failure_line: str = ""  # the first line of its error,
    failure_message: str = ""  # and the whole error (masked), shown on hover
    failure_url: str = ""  # the execution opened on that step
    triage_state: str = ""  # its triage state ("": never triaged), a badge
    triage_label: str = ""
    triage_url: str = ""  # the list with only this triage state


class Links:
    """URLs of the list with the current filters changed (the page resets unless given)."""

    def __init__(self, params: Params) -> None:
        self.path = reverse("executions:list")
        self.params = params
        self._without: dict[str, str] = {}

    def to(self, **changes: str | list[str] | None) -> str:
        merged = {k: list(v) for k, v in self.params.items()}
        for name, value in changes.items():
            if value is None or value == [] or value == "":
                merged.pop(name, None)
            else:
                merged[name] = value if isinstance(value, list) else [value]
        query = urlencode([(k, v) for k, values in merged.items() for v in values])
        return f"{self.path}?{query}" if query else self.path

    def only(self, name: str, value: str) -> str:
        """One filter set to `value`: fast, as every row has a few of these."""
        base = self._without.get(name)
        if base is None:
            pairs = [(k, v) for k, values in self.params.items() if k != name for v in values]
            base = self._without[name] = urlencode(pairs)
        extra = urlencode([(name, value)])
        return f"{self.path}?{base}&{extra}" if base else f"{self.path}?{extra}"


def _page_context(
    form: ExecutionFilterForm,
    filters: Filters,
    listing: Listing,
    now: datetime,
    workflows: list[tuple[str, str, str]],
) -> dict:
    params = filters.params()
    links = Links(params)
    selected = set(filters.statuses)
    no_dates = {"start": None, "end": None}
    people = started_by(e.pk for e in listing.rows)
    # The row query brought each row's QFlow user name along (listing._name_of).
    names = {
        e.triggered_by: e.triggered_name for e in listing.rows if getattr(e, "triggered_name", None)
    }
    asof = now.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if listing.chart is not None:
        for column in listing.chart.columns:
            column.href = _bucket_url(links, column.start, column.end, listing.chart.unit)
    return {
        "form": form,
        "filters": filters,
        "listing": listing,
        "rows": [_row(e, links, people, names) for e in listing.rows],
        "status_options": [
            {"cls": cls, "label": st.LABELS[cls], "checked": cls in selected} for cls in COUNT_ORDER
        ],
        "count_links": [
            {
                "cls": cls,
                "label": st.LABELS[cls],
                "count": listing.counts[cls],
                "selected": cls in selected,
                "url": links.to(status=[*_toggle(filters.statuses, cls), *filters.raw_statuses]),
            }
            for cls in COUNT_ORDER
        ],
        "all_count": sum(listing.counts.values()),
        "all_url": links.to(status=None),
        "presets": [
            {
                "key": key,
                "short": short,
                "long": long,
                "current": not filters.custom_dates and filters.range == key,
                "url": links.to(range=key, **no_dates),
            }
            for key, (short, long, _) in RANGES.items()
        ],
        "quick_failed_url": Links({}).to(status="failed", range="24h"),
        "quick_failed_current": (
            filters.statuses == (st.FAILED,)
            and filters.range == "24h"
            and not filters.custom_dates
            and set(params) == {"status", "range"}
        ),
        "quick_running_url": Links({}).to(status="running", range="all"),
        "clear_url": reverse("executions:list"),
        "active_filters": active_filters(filters, links, workflows, listing.rows),
        "workflow_options": _workflow_options(workflows, filters),
        "triage_options": [
            {"value": value, "label": label, "selected": value == filters.triage}
            for value, label in TRIAGE_CHOICES
        ],
        **_choices(filters, now, listing, workflows),
        "sort_links": _sort_links(filters, links),
        # Keyset: each link carries the sort key of the row it continues from; `page` only
        # numbers the page, `asof` keeps the window's "now".
        "prev_url": (
            links.to(before=listing.newer, page=str(listing.page - 1), asof=asof)
            if listing.newer
            else ""
        ),
        "next_page_url": (
            links.to(after=listing.older, page=str(listing.page + 1), asof=asof)
            if listing.older
            else ""
        ),
        "last_shown": listing.first + len(listing.rows) - 1,
        "cap": f"{ROLLUP_CAP:,}",
        # "All" is every execution mirrored since the first sync, not all of QFlow's history.
        "history_since": (
            listing.history_since if filters.range == "all" and not filters.custom_dates else None
        ),
    }


def _choices(
    filters: Filters, now: datetime, listing: Listing, workflows: list[tuple[str, str, str]]
) -> dict:
    """Source, region and cloud choices, and QFlow's own statuses, from what the mirror holds,
    each with its count; a value in the URL that the mirror lacks stays selectable."""
    facets = filter_choices(filters, now=now, version=listing.version, workflows=workflows)
    out = {}
    for name in ("source", "region", "cloud"):
        current = getattr(filters, name)
        options = [
            {"value": v, "n": n, "selected": v.lower() == current.lower()} for v, n in facets[name]
        ]
        if current and not any(o["selected"] for o in options):
            options.insert(0, {"value": current, "n": 0, "selected": True})
        out[f"{name}_options"] = options
    raw = set(filters.raw_statuses)
    out["raw_status_options"] = [
        {"value": status, "n": n, "checked": status in raw}
        for status, n in listing.status_counts.items()
    ] + [{"value": s, "n": 0, "checked": True} for s in raw if s not in listing.status_counts]
    return out


def _bucket_url(links: Links, start: datetime, end: datetime, unit: str) -> str:
    """Drill down into one bar: its bucket as absolute From/To (end inclusive, to the ms)."""
    if unit != "hour" and start.utcoffset() == timedelta(0):
        first, last = start.date().isoformat(), (end - timedelta(days=1)).date().isoformat()
    else:
        first = start.isoformat(timespec="seconds")
        last = (end - timedelta(milliseconds=1)).isoformat(timespec="milliseconds")
    return links.to(start=first, end=last, range=None)


def _toggle(statuses: tuple[str, ...], cls: str) -> list[str]:
    return [s for s in statuses if s != cls] if cls in statuses else [*statuses, cls]


def _row(
    execution: Execution, links: Links, people: dict[str, StartedBy], names: dict[str, str]
) -> Row:
    ident = str(execution.id)
    return Row(
        id=ident,
        short_id=ident[:8],
        status=execution.status,
        status_class=execution.status_class,
        running=execution.status_class == st.RUNNING,
        workflow_name=execution.workflow.name or str(execution.workflow_id),
        workflow_url=links.only("workflow", str(execution.workflow_id)),
        detail_url=reverse("executions:detail", args=[ident]),
        started_at=execution.started_at,
        duration_ms=execution.duration_ms,
        source=execution.source,
        source_url=links.only("source", execution.source) if execution.source else "",
        triggered_by=execution.triggered_by,
        triggered_name=names.get(execution.triggered_by, ""),
        started_by=people.get(ident),
        cloud=execution.cloud,
        cloud_url=links.only("cloud", execution.cloud) if execution.cloud else "",
        region=execution.region,
        region_url=links.only("region", execution.region) if execution.region else "",
        **_why(execution, ident),
        **_triage(execution, links),
    )


_TRIAGE_LABELS = dict(TriageState.choices)


def _triage(execution: Execution, links: Links) -> dict[str, str]:
    """Its triage badge (the state came with the row: no query of its own)."""
    state = getattr(execution, "triage_state", None)
    if state not in _TRIAGE_LABELS:
        return {}
    return {
        "triage_state": state,
        "triage_label": _TRIAGE_LABELS[state],
        "triage_url": links.only("triage", state),
    }


def _why(execution: Execution, ident: str) -> dict[str, str]:
    """Why a failed or timed-out execution failed, when its steps are in the mirror."""
    if execution.status_class not in FAILURE_CLASSES or not execution.failure_node_id:
        return {}
    return {
        "failure_step": execution.failure_step or execution.failure_node_id,
        "failure_line": first_line(execution.failure_message),
        "failure_message": execution.failure_message,
        "failure_url": reverse(
            "executions:detail", args=[ident], query={"step": execution.failure_node_id}
        ),
    }


def _workflow_options(workflows: list[tuple[str, str, str]], filters: Filters) -> list[dict]:
    current = str(filters.workflow) if filters.workflow else ""
    options = [{"id": i, "name": name, "selected": i == current} for i, name, _ in workflows]
    if current and not any(o["selected"] for o in options):
        options.insert(
            0, {"id": current, "name": f"{current} (not in the mirror)", "selected": True}
        )
    return options


def _workflow_name(workflows: list[tuple[str, str, str]], workflow_id: str) -> str:
    return next((name for i, name, _ in workflows if i == workflow_id), workflow_id)


def active_filters(
    filters: Filters,
    links: Links,
    workflows: list[tuple[str, str, str]],
    rows: list[Execution] = (),
) -> list[dict]:
    """Each filter in force, in words, with a link that removes it."""
    out: list[dict] = []
    if filters.statuses or filters.raw_statuses:
        labels = [st.LABELS[c] for c in filters.statuses]
        names = " or ".join([*labels, *(f"“{s}”" for s in filters.raw_statuses)])
        out.append({"name": "status", "text": f"status {names}", "url": links.to(status=None)})
    if filters.custom_dates:
        if filters.start_text and filters.end_text:
            text = f"from {filters.start_text} to {filters.end_text}"
        elif filters.start_text:
            text = f"since {filters.start_text}"
        else:
            text = f"until {filters.end_text}"
        out.append({"name": "time", "text": text, "url": links.to(start=None, end=None)})
    elif filters.id_prefix:
        pass  # an id search covers every date: the notice above the rows says so
    elif filters.range != "all":
        out.append(
            {"name": "time", "text": RANGES[filters.range][1].lower(), "url": links.to(range="all")}
        )
    if filters.workflow:
        name = _workflow_name(workflows, str(filters.workflow))
        out.append(
            {"name": "workflow", "text": f"workflow “{name}”", "url": links.to(workflow=None)}
        )
    for name in ("source", "cloud", "region"):
        value = getattr(filters, name)
        if value:
            out.append({"name": name, "text": f"{name} “{value}”", "url": links.to(**{name: None})})
    if filters.q:
        out.append({"name": "q", "text": f"search “{filters.q}”", "url": links.to(q=None)})
    if filters.error:
        text = f"error contains “{filters.error}”"
        out.append({"name": "error", "text": text, "url": links.to(error=None)})
    if filters.triage:
        text = (
            "not triaged"
            if filters.triage == TRIAGE_NONE
            else f"triage “{_TRIAGE_LABELS[filters.triage]}”"
        )
        out.append({"name": "triage", "text": text, "url": links.to(triage=None)})
    if filters.failure:
        out.append(
            {
                "name": "failure",
                "text": f"failure group {failure_group_label(filters.failure, rows)}",
                "url": links.to(failure=None),
            }
        )
    return out


def failure_group_label(key: str, rows: list[Execution] = ()) -> str:
    """A failure group in words: its step and error pattern (from a row on the page, else
    one query)."""
    shown = next((e for e in rows if e.failure_key == key), None) if rows else None
    if shown is not None:
        sample = (shown.failure_step, shown.failure_pattern)
    else:
        sample = (
            Execution.objects.filter(failure_key=key)
            .values_list("failure_step", "failure_pattern")
            .first()
        )
    if sample is None:
        return key
    step, pattern = sample
    pattern = pattern if len(pattern) <= 60 else pattern[:59] + "…"
    return f"“{step}”: {pattern}"


def _sort_links(filters: Filters, links: Links) -> dict:
    """Column headers: click to sort, click again to reverse."""
    out = {}
    for column, default in (("started", "-started"), ("duration", "-duration")):
        if filters.sort.lstrip("-") == column:
            state = "descending" if filters.sort.startswith("-") else "ascending"
            target = column if filters.sort.startswith("-") else f"-{column}"
        else:
            state, target = "none", default
        out[column] = {"state": state, "url": links.to(sort=target)}
    return out
