"""Query-parameter helpers: ISO dates, the 30-day execution window, QQL status filters."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

# QFlow refuses execution queries that start more than 30 days back (release 1.18).
EXECUTION_WINDOW = timedelta(days=30)
# Start a little inside the window so clock skew never pushes us past the server's limit.
WINDOW_SLACK = timedelta(minutes=1)
_BARE_QQL_VALUE = re.compile(r"[A-Za-z0-9_.\-]+")


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC, the zone QFlow works in."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_z(value: datetime) -> str:
    """``2025-05-12T01:45:36.220Z``, the form the docs' samples send."""
    return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def window_start(now: datetime) -> datetime:
    return as_utc(now) - EXECUTION_WINDOW + WINDOW_SLACK


def clamp_window(
    start_at: datetime | None, end_at: datetime | None, now: datetime
) -> tuple[datetime | None, datetime | None] | None:
    """The (start, end) to send, or None when the range lies wholly before the window."""
    floor = window_start(now)
    start = as_utc(start_at) if start_at is not None else None
    end = as_utc(end_at) if end_at is not None else None
    if start is not None and start < floor:
        start = floor
    if end is not None and (end < floor or (start is not None and end < start)):
        return None
    return start, end


def qql_value(value: str) -> str:
    """A QQL value, double-quoted when it is not a single bare word."""
    if _BARE_QQL_VALUE.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def status_query(statuses: Iterable[str] | None, query: str | None) -> str | None:
    """``status: A OR status: B``, AND-ed with the caller's own QQL when there is one."""
    if isinstance(statuses, str):
        statuses = [statuses]
    wanted = [s.strip() for s in statuses or () if s and s.strip()]
    status_part = " OR ".join(f"status: {qql_value(s)}" for s in wanted)
    query = (query or "").strip()
    if status_part and query:
        return f"({query}) AND ({status_part})"
    return status_part or query or None
