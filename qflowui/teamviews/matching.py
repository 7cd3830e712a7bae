"""A saved view's query, read by the executions list's own form and filter code.

Nothing here knows the list's filters by name: the query string goes through
ExecutionFilterForm and the list's queryset, so a filter added to the list works in saved
views and alerts as it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.core.cache import cache
from django.db.models import Count, QuerySet, Value
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from qflowui.executions.forms import ExecutionFilterForm, Filters
from qflowui.executions.listing import known_statuses, matching_executions, mirror_state
from qflowui.triage.versions import triage_version

COUNT_CACHE_SECONDS = 300
MAX_QUERY_LENGTH = 2000


@dataclass(frozen=True)
class ParsedQuery:
    filters: Filters
    query: str  # canonical: what the list's own links would carry, without paging
    errors: list[str]  # the list form's messages; a saved view must have none


def parse_query(text: str) -> ParsedQuery:
    """Read a list query string ("status=failed&range=24h", a leading "?" allowed)."""
    text = (text or "").strip().lstrip("?")
    if "://" in text or text.startswith("/"):  # a whole URL pasted: keep its query
        text = text.partition("?")[2]
    form = ExecutionFilterForm(QueryDict(text[:MAX_QUERY_LENGTH]))
    form.is_valid()
    filters = form.filters(known_statuses() if form.unknown_statuses else ())
    errors = [str(e) for field_errors in form.errors.values() for e in field_errors]
    if len(text) > MAX_QUERY_LENGTH:
        errors.append(f"The query is too long (at most {MAX_QUERY_LENGTH} characters).")
    params = filters.params()
    query = urlencode([(k, v) for k, values in params.items() for v in values])
    return ParsedQuery(filters=filters, query=query, errors=errors)


def matching(filters: Filters, *, now: datetime | None = None) -> QuerySet:
    """The executions the list shows for these filters (every page, the status filter too)."""
    return matching_executions(filters, now=now or timezone.now())


def view_counts(queries: list[str], *, now: datetime | None = None) -> dict[str, int]:
    """Executions matching each query: from the cache while the mirror and the minute are
    the same, else all missing ones in one UNION ALL query (one statement however many)."""
    now = now or timezone.now()
    unique = list(dict.fromkeys(queries))
    if not unique:
        return {}
    # Triage edits are not mirror writes: a `triage=` view's count follows triage_version.
    version = repr(
        (mirror_state()[:2], triage_version(), now.replace(second=0, microsecond=0).isoformat())
    )
    keys = {q: _count_key(q, version) for q in unique}
    cached = cache.get_many(list(keys.values()))
    out = {q: cached[k] for q, k in keys.items() if k in cached}
    missing = [q for q in unique if q not in out]
    if missing:
        parts = [
            matching(parse_query(q).filters, now=now)
            .order_by()
            .annotate(view=Value(i))
            .values("view")
            .annotate(n=Count("pk"))
            .values_list("view", "n")
            for i, q in enumerate(missing)
        ]
        rows = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
        found = {missing[i]: n for i, n in rows}
        fresh = {q: found.get(q, 0) for q in missing}
        cache.set_many({keys[q]: n for q, n in fresh.items()}, COUNT_CACHE_SECONDS)
        out.update(fresh)
    return out


def _count_key(query: str, version: str) -> str:
    return "teamviews:count:" + hashlib.sha256(f"{query}\n{version}".encode()).hexdigest()


def list_url(query: str) -> str:
    path = reverse("executions:list")
    return f"{path}?{query}" if query else path
