"""The simulator's variants and knobs, parsed from `settings.QFLOW_SIMULATOR_OPTIONS`.

The setting is a comma-separated list of `key=value` pairs, for example
`run_response=data,total=string,statuses=upper,paging=offset,latency_ms=200`.
Every key is optional; an unknown key or a bad value raises ImproperlyConfigured.

| key | values (default first) | effect |
|---|---|---|
| run_response | message, data | `{message, executionId}` or `{"data": {envelope}}` from POST /run |
| total | number, string | `"total": 9` or `"total": "9"` in lists |
| statuses | default, upper, conductor | status spelling (see STATUS_WORDS) |
| paging | both, pageNumber, offset | which paging parameter is honoured; the other is ignored |
| window | reject, empty, clamp | startAt older than 30 days: 400, an empty list, or clamped |
| steps_key | steps, items, executionSteps | key of the steps under includeSteps=true |
| run_status | random, success, failed | final status of executions started by POST /run |
| latency_ms | 0 | added to every simulator response |
| rate_limit | 6000 | calls allowed per rate window (429 beyond) |
| rate_window_seconds | 3600 | the rate window |
| concurrency_limit | 2 | advertised in X-Concurrency-Limit-Limit (not enforced) |
| rate_headers | all, limit | every X-RateLimit-* header, or the limit and window only |
| run_min_seconds, run_max_seconds | 20, 180 | how long a POST /run execution runs |
| token_ttl_seconds | 14400 | lifetime of tokens from /auth/oidc |
| fleet_workflows | 0 | 0: the demo data set; N: a tenant of N generated workflows instead (below) |
| fleet_active | 50 | of the fleet, how many run often (the rest run rarely) |
| fleet_active_minutes | 5.0 | mean minutes between two runs of an active workflow (Poisson) |
| fleet_rare_per_month | 3.0 | runs per 30 days of a rare workflow (Poisson) |
| fleet_days | 2.0 | the fleet's executions span this many days before and after the anchor |

The fleet (`fleet_workflows=1000`) is for measuring the sync (bench/sync_freshness.py): its
executions are spread over [anchor - fleet_days, anchor + fleet_days], and the API lists only
those already created (createdAt <= now), so new ones keep appearing as time goes by.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

SUCCESS = "Success"
FAILED = "Failed"
RUNNING = "Running"
CANCELLED = "Cancelled"
TIMED_OUT = "Timed Out"
TERMINAL = (SUCCESS, FAILED, CANCELLED, TIMED_OUT)

# Canonical status (the `default` spelling) -> wire spelling, per vocabulary.
STATUS_WORDS: dict[str, dict[str, str]] = {
    "default": {s: s for s in (SUCCESS, FAILED, RUNNING, CANCELLED, TIMED_OUT)},
    "upper": {
        SUCCESS: "SUCCESS",
        FAILED: "FAILED",
        RUNNING: "RUNNING",
        CANCELLED: "CANCELLED",
        TIMED_OUT: "TIMED_OUT",
    },
    "conductor": {
        SUCCESS: "COMPLETED",
        FAILED: "FAILED",
        RUNNING: "RUNNING",
        CANCELLED: "TERMINATED",
        TIMED_OUT: "TIMED_OUT",
    },
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "run_response": ("message", "data"),
    "total": ("number", "string"),
    "statuses": ("default", "upper", "conductor"),
    "paging": ("both", "pageNumber", "offset"),
    "window": ("reject", "empty", "clamp"),
    "steps_key": ("steps", "items", "executionSteps"),
    "run_status": ("random", "success", "failed"),
    "rate_headers": ("all", "limit"),
}
_INTS = {
    "latency_ms": 0,
    "rate_limit": 1,
    "rate_window_seconds": 1,
    "concurrency_limit": 1,
    "fleet_workflows": 0,
    "fleet_active": 0,
}
_FLOATS = {
    "run_min_seconds": 0.0,
    "run_max_seconds": 0.0,
    "token_ttl_seconds": 1.0,
    "fleet_active_minutes": 0.1,
    "fleet_rare_per_month": 0.0,
    "fleet_days": 0.1,
}


@dataclass(frozen=True)
class Options:
    run_response: str = "message"
    total: str = "number"
    statuses: str = "default"
    paging: str = "both"
    window: str = "reject"
    steps_key: str = "steps"
    run_status: str = "random"
    rate_headers: str = "all"
    latency_ms: int = 0
    rate_limit: int = 6000
    rate_window_seconds: int = 3600
    concurrency_limit: int = 2
    run_min_seconds: float = 20.0
    run_max_seconds: float = 180.0
    token_ttl_seconds: float = 4 * 3600.0
    fleet_workflows: int = 0
    fleet_active: int = 50
    fleet_active_minutes: float = 5.0
    fleet_rare_per_month: float = 3.0
    fleet_days: float = 2.0

    @property
    def fleet(self) -> tuple[int, int, float, float, float] | None:
        """What the fleet data set is built from, or None for the demo data set."""
        if not self.fleet_workflows:
            return None
        return (
            self.fleet_workflows,
            min(self.fleet_active, self.fleet_workflows),
            self.fleet_active_minutes,
            self.fleet_rare_per_month,
            self.fleet_days,
        )

    @property
    def words(self) -> dict[str, str]:
        return STATUS_WORDS[self.statuses]


KEYS = tuple(f.name for f in dataclasses.fields(Options))


def coerce(key: str, value: object) -> object:
    """Check one option and return it in its proper type; raise ImproperlyConfigured if bad."""
    if key not in KEYS:
        raise ImproperlyConfigured(
            f"QFLOW_SIMULATOR_OPTIONS: unknown key {key!r}; known keys: {', '.join(KEYS)}"
        )
    if key in _CHOICES:
        by_lower = {c.lower(): c for c in _CHOICES[key]}
        choice = by_lower.get(str(value).strip().lower())
        if choice is None:
            raise ImproperlyConfigured(
                f"QFLOW_SIMULATOR_OPTIONS: {key}={value!r} is not one of {', '.join(_CHOICES[key])}"
            )
        return choice
    kind, minimum = (int, _INTS[key]) if key in _INTS else (float, _FLOATS[key])
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(
            f"QFLOW_SIMULATOR_OPTIONS: {key}={value!r} is not a {kind.__name__}"
        ) from None
    if number < minimum:
        raise ImproperlyConfigured(f"QFLOW_SIMULATOR_OPTIONS: {key} must be at least {minimum}")
    return number


def build(base: Options, changes: dict[str, object]) -> Options:
    options = dataclasses.replace(base, **{k: coerce(k, v) for k, v in changes.items()})
    if options.run_max_seconds < options.run_min_seconds:
        raise ImproperlyConfigured(
            "QFLOW_SIMULATOR_OPTIONS: run_max_seconds must not be below run_min_seconds"
        )
    return options


@functools.lru_cache(maxsize=16)
def parse(text: str) -> Options:
    """Parse the settings string, e.g. "total=string,paging=offset"."""
    changes: dict[str, object] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ImproperlyConfigured(
                f"QFLOW_SIMULATOR_OPTIONS: {item!r} is not key=value (e.g. total=string)"
            )
        changes[key.strip()] = value.strip()
    return build(Options(), changes)
