"""Freshness of the mirror for a tenant of 1,000 workflows under a 300 calls/hour rate limit.

Freshness: the time from an execution's creation in QFlow (its createdAt) to its row in the
mirror (the row's first_seen_at). The scenario of issue 13: the simulator serves a fleet of
1,000 workflows, 50 of them active (a run every 5 minutes on average) and 950 rare (3 runs in
30 days on average), both as Poisson processes; QFlow allows 300 calls per hour.

Simulated time, in process: a fake clock drives Django's ``timezone.now`` (so the sync, its
leases, its budget and every row's timestamps) and the simulator's clock (so its data, its
rolling rate window and its runs). A sync pass runs every QFLOW_SYNC_INTERVAL_SECONDS of
simulated time (60 s), exactly as beat would start it, with the app's own QFlow client, whose
requests go to the simulator's views through Django's WSGI handler (no sockets, so 24 hours
take minutes). The clock stands still during a pass. Before the measured day, the mirror is
brought up to date (a warm-up with an unlimited rate, not counted), as a running deployment's
mirror is.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/qflowui REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/sync_freshness.py            # 24 h, the issue's scenario
    ... bench/sync_freshness.py --hours 4 --rate-limit 2000  # shorter, or another budget

Runs against a throwaway test database (a fresh ``test_...`` database on the DATABASE_URL
server, else SQLite in memory) and the cache REDIS_URL names (cleared: use a database of its
own). Prints a markdown table (recorded in docs/benchmarks.md, "## Sync freshness").
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import os
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ARGS = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ARGS.add_argument("--hours", type=float, default=24.0, help="simulated hours measured")
ARGS.add_argument("--workflows", type=int, default=1000)
ARGS.add_argument("--active", type=int, default=50)
ARGS.add_argument("--active-minutes", type=float, default=5.0)
ARGS.add_argument("--rare-per-month", type=float, default=3.0)
ARGS.add_argument("--rate-limit", type=int, default=300, help="QFlow's calls per window")
ARGS.add_argument("--window", type=int, default=3600, help="QFlow's rate window, seconds")
ARGS.add_argument("--interval", type=int, default=60, help="beat interval, seconds")
ARGS.add_argument("--workers", type=int, default=1, help="passes started at each beat")
OPTS = ARGS.parse_args()

TOKEN = "bench-sync-freshness-token-0123456789"  # noqa: S105 - the simulator's fixed token
os.environ.pop("QFLOW_BASE_URL", None)  # the built-in simulator is the upstream
os.environ["QFLOW_TOKEN"] = TOKEN
os.environ["QFLOW_SIMULATOR"] = "true"
os.environ["QFLOW_SYNC_INTERVAL_SECONDS"] = str(OPTS.interval)
os.environ["QFLOW_SIMULATOR_OPTIONS"] = (
    f"fleet_workflows={OPTS.workflows},fleet_active={OPTS.active},"
    f"fleet_active_minutes={OPTS.active_minutes},fleet_rare_per_month={OPTS.rare_per_month},"
    f"fleet_days={max(2.0, OPTS.hours / 24 + 1)}"
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qflowui.settings")

import django  # noqa: E402

django.setup()
logging.getLogger("qflowui").setLevel(logging.ERROR)  # 1,440 passes' summaries: not here

import requests  # noqa: E402
from django.core.cache import cache, caches  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402
from machine import machine_description  # noqa: E402

from qflowui.mirror import sync as mirror  # noqa: E402
from qflowui.mirror.models import Execution, SyncRun, Workflow  # noqa: E402
from qflowui.qflow import QflowClient  # noqa: E402
from qflowui.simulator import control  # noqa: E402

BASE = "http://127.0.0.1:8000"


# --- the fake clock -----------------------------------------------------------------------


class Clock:
    def __init__(self, start: float) -> None:
        self.t = start

    def time(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, tz=UTC)

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


# --- requests to the simulator's views, in process ------------------------------------------


class WSGIAdapter(requests.adapters.BaseAdapter):
    """Sends a prepared request to a WSGI application in this process."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        parts = urlsplit(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        environ = {
            "REQUEST_METHOD": request.method,
            "PATH_INFO": unquote(parts.path),
            "QUERY_STRING": parts.query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "127.0.0.1:8000",
        }
        for name, value in request.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key != "CONTENT_LENGTH":
                environ[f"HTTP_{key}"] = value
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list, exc_info: Any = None) -> None:
            started["status"], started["headers"] = status, headers

        chunks = self.app(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        response = requests.Response()
        response.status_code = int(started["status"].split()[0])
        response.headers = requests.structures.CaseInsensitiveDict(started["headers"])
        response._content = content
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


def make_client(clock: Clock, session: requests.Session) -> QflowClient:
    client = QflowClient(BASE, token=TOKEN, session=session, max_rate_wait=30.0)
    client._sleep = clock.sleep  # a 409/429 wait passes simulated time
    client._now = clock.now
    return client


# --- the run --------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def minutes(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def run() -> None:
    real_start = time.monotonic()
    clock = Clock(1_767_225_600.0)  # 2026-01-01 00:00 UTC
    control.clock = clock.time
    timezone.now = clock.now  # the sync, its budget and every auto_now field
    cache.clear()
    caches["simulator"].clear()
    control.reset()
    session = requests.Session()
    session.mount(BASE, WSGIAdapter(WSGIHandler()))

    ds = control.dataset()
    active_ids = {w.id for w in ds.workflows[: OPTS.active]}

    # Warm-up: a mirror in steady state, with a rate limit that does not bind (not counted).
    control.configure(rate_limit=10**7, rate_window_seconds=OPTS.window)
    for _ in range(50):
        done = mirror.mirror_sync(client=make_client(clock, session))
        if done.ok:
            break
        clock.sleep(OPTS.interval)
    assert done.ok, f"warm-up did not complete: {done.summary}"
    SyncRun.objects.update(api_calls=0)  # the warm-up's calls are not the measured day's
    forget = getattr(mirror, "forget_shared_budget", None)
    if forget:
        forget()
    control.reset()
    control.configure(rate_limit=OPTS.rate_limit, rate_window_seconds=OPTS.window)
    print(f"warm-up done in {time.monotonic() - real_start:.0f} s real", file=sys.stderr)

    t0 = clock.now()
    end = t0 + timedelta(hours=OPTS.hours)
    last_visit: dict[str, datetime] = {
        str(pk): at or t0 for pk, at in Workflow.objects.values_list("pk", "last_visited_at")
    }
    max_gap: dict[str, float] = defaultdict(float)
    passes: list[SyncRun] = []
    status = defaultdict(int)
    next_beat = clock.t
    while clock.now() < end:
        clock.t = next_beat
        for _ in range(OPTS.workers):
            done = mirror.mirror_sync(client=make_client(clock, session))
            status["skipped" if getattr(done, "skipped", False) else done.status] += 1
            if done.pk:
                passes.append(done)
        for pk, at in Workflow.objects.filter(last_visited_at__gt=t0).values_list(
            "pk", "last_visited_at"
        ):
            key = str(pk)
            if at > last_visit[key]:
                max_gap[key] = max(max_gap[key], (at - last_visit[key]).total_seconds())
                last_visit[key] = at
        next_beat += OPTS.interval
        if len(passes) % 120 == 0:
            print(
                f"  {clock.now() - t0} simulated, {time.monotonic() - real_start:.0f} s real",
                file=sys.stderr,
            )
    t_end = clock.now()
    for key, at in last_visit.items():  # a workflow not visited since: its gap so far
        max_gap[key] = max(max_gap[key], (t_end - at).total_seconds())

    # Freshness of every execution created during the measured day.
    fresh: dict[str, list[float]] = {"active": [], "rare": []}
    missing = defaultdict(int)
    mirrored = {
        str(pk): seen
        for pk, seen in Execution.objects.filter(created_at__gt=t0).values_list(
            "pk", "first_seen_at"
        )
    }
    t0_ms, end_ms = int(t0.timestamp() * 1000), int(t_end.timestamp() * 1000)
    for ex in ds.executions:
        if not t0_ms < ex.start_ms <= end_ms:
            continue
        kind = "active" if ex.workflow_id in active_ids else "rare"
        seen = mirrored.get(ex.id)
        if seen is None:
            missing[kind] += 1
            fresh[kind].append((end_ms - ex.start_ms) / 1000)  # at least this stale
        else:
            fresh[kind].append(max(0.0, seen.timestamp() - ex.start_ms / 1000))

    # Calls against the budget: the busiest rolling window of QFlow's rate window.
    calls = sorted((p.started_at, p.api_calls) for p in passes)
    busiest, lo, in_window = 0, 0, 0
    for at, n in calls:
        in_window += n
        while calls[lo][0] <= at - timedelta(seconds=OPTS.window):
            in_window -= calls[lo][1]
            lo += 1
        busiest = max(busiest, in_window)
    total_calls = sum(n for _, n in calls)
    limited = sum(1 for p in passes if p.rate_limited_until)
    hours = OPTS.hours
    gaps_active = [max_gap[k] for k in active_ids]
    gaps_rare = [v for k, v in max_gap.items() if k not in active_ids]

    print()
    print(f"Machine: {machine_description()}")
    print(
        f"Scenario: {OPTS.workflows} workflows ({OPTS.active} active: a run every "
        f"{OPTS.active_minutes:g} min on average; the rest {OPTS.rare_per_month:g} runs per "
        f"30 days), QFlow's limit {OPTS.rate_limit} calls per {OPTS.window} s, a pass every "
        f"{OPTS.interval} s ({OPTS.workers} per beat), {hours:g} simulated hours in "
        f"{time.monotonic() - real_start:.0f} s real; passes: "
        + ", ".join(f"{n} {s}" for s, n in sorted(status.items()))
    )
    print()
    print("| workflows | executions | p50 freshness | p95 | max | not mirrored at the end |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in ("active", "rare"):
        values = fresh[kind]
        print(
            f"| {kind} | {len(values)} | {minutes(pct(values, 0.5))} | "
            f"{minutes(pct(values, 0.95))} | {minutes(max(values, default=float('nan')))} | "
            f"{missing[kind]} |"
        )
    print()
    share = busiest / OPTS.rate_limit
    print("| budget | figure |")
    print("|---|---:|")
    print(f"| calls in {hours:g} h (all passes) | {total_calls} ({total_calls / hours:.0f}/h) |")
    print(
        f"| busiest {OPTS.window} s window | {busiest} of {OPTS.rate_limit} ({share:.0%}; "
        f"goal ≤ 80%) |"
    )
    print(f"| passes QFlow answered 409/429 | {limited} |")
    print(f"| longest wait between two visits, active | {minutes(max(gaps_active, default=0))} |")
    print(f"| longest wait between two visits, rare | {minutes(max(gaps_rare, default=0))} |")
    print(f"| workflows never visited in {hours:g} h | "
          f"{sum(1 for k in last_visit if last_visit[k] <= t0)} |")  # fmt: skip


def main() -> None:
    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    if connection.vendor != "sqlite":
        connection.settings_dict["TEST"]["NAME"] = f"test_{old_name}_fresh_bench_{os.getpid()}"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        run()
    finally:
        timezone.now = _real_now
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


_real_now = timezone.now

if __name__ == "__main__":
    main()
