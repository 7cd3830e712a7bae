"""Server time of the executions list over a mirror of 1,000, 10,000 and 100,000 executions.

Budget (DESIGN §6): p95 <= 50 ms and <= 10 SQL queries at every size, flat from 1,000 to
100,000 rows. Runs against a throwaway test database: with DATABASE_URL set (PostgreSQL
in CI) a fresh `test_...` database on that server, else an in-memory SQLite one.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/qflowui .venv/bin/python bench/list_page.py
    ... bench/list_page.py --covering   # with the covering indexes proposed for the mirror

Prints one markdown table (recorded in docs/benchmarks.md, "## List page").
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qflowui.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import (  # noqa: E402
    CaptureQueriesContext,
    setup_test_environment,
    teardown_test_environment,
)
from django.utils import timezone  # noqa: E402
from machine import machine_description  # noqa: E402

from qflowui.mirror import status as st  # noqa: E402
from qflowui.mirror.models import Execution, SyncRun, Workflow  # noqa: E402

SIZES = tuple(int(n) for n in os.environ.get("BENCH_SIZES", "1000,10000,100000").split(","))
WARMUP = 5
SAMPLES = 60
SPREAD = timedelta(days=60)  # like the API's history the mirror keeps
STATUS_MIX = [
    ("Success", 82.5),
    ("Failed", 11),
    ("Cancelled", 3),
    ("TIMED_OUT", 2),
    ("Error", 1),
    ("Running", 0.3),  # all started in the last 2 h: a few hundred "live" rows at 100k
    ("Queued", 0.2),
]
SOURCES = ("PUBLIC_API", "WORKFLOW_TRIGGER", "SCHEDULED")
REGIONS = {
    "AWS": "us-east-1",
    "Azure": "westeurope",
    "GCP": "europe-west1",
    "OCI": "eu-frankfurt-1",
}
COVERING = "--covering" in sys.argv


def main() -> None:
    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    if connection.vendor != "sqlite":
        # A name of our own: never clobber the test database of a pytest run next door.
        connection.settings_dict["TEST"]["NAME"] = f"test_{old_name}_list_bench_{os.getpid()}"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        with override_settings(
            STORAGES={
                **settings.STORAGES,
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            },
            DEBUG=False,
        ):
            results = run()
            described = machine()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0, keepdb=False)
        teardown_test_environment()
    print(render(results, described))


def run() -> list[tuple[int, str, float, float, int]]:
    rnd = random.Random(20251123)
    now = timezone.now()
    if COVERING:
        add_covering_indexes()
    clouds = ["AWS"] * 6 + ["Azure"] * 3 + ["GCP"] * 2 + ["OCI"]
    workflows = Workflow.objects.bulk_create(
        Workflow(id=uuid.uuid4(), name=f"Remediation workflow {i:02d}", cloud=clouds[i])
        for i in range(12)
    )
    SyncRun.objects.create(
        started_at=now - timedelta(seconds=50), finished_at=now - timedelta(seconds=40), ok=True
    )
    user = get_user_model().objects.create_user(username="bench")
    # Data pages need the Viewers group (or Runners, or staff): the analyst this bench measures.
    user.groups.add(Group.objects.get_or_create(name="Viewers")[0])
    client = Client()
    client.force_login(user)
    results = []
    have = 0
    for size in SIZES:
        fill(rnd, workflows, have, size, now)
        have = size
        analyze()
        sample = Execution.objects.order_by("started_at")[size // 2]
        combos = {
            "no filter": "/executions/",
            "status=failed": "/executions/?status=failed",
            "range=24h": "/executions/?range=24h",
            "workflow + status": f"/executions/?workflow={workflows[3].id}&status=failed",
            "q = id prefix": f"/executions/?q={str(sample.id)[:6]}",
            # Beyond the five: the widest ranges, which aggregate the most rows.
            "range=30d": "/executions/?range=30d",
            "range=all": "/executions/?range=all",
        }
        for name, url in combos.items():
            figures = measure(client, url)
            results.append((size, name, *figures))
            c50, c95, w50, w95, queries = figures
            line = (
                f"{size:>7,} {name:<18} cold p50 {c50:6.1f} p95 {c95:6.1f} ms  "
                f"warm p50 {w50:6.1f} p95 {w95:6.1f} ms  {queries} q"
            )
            print(line, file=sys.stderr)
    return results


def fill(rnd: random.Random, workflows: list, start: int, end: int, now) -> None:
    statuses, weights = zip(*STATUS_MIX, strict=True)
    batch: list[Execution] = []
    for i in range(start, end):
        status = rnd.choices(statuses, weights)[0]
        cls = st.status_class(status)
        wf = workflows[i % len(workflows)]
        if cls == st.RUNNING:
            started = now - timedelta(seconds=rnd.randint(10, 2 * 3600))
        else:
            started = now - timedelta(seconds=rnd.randint(0, int(SPREAD.total_seconds())))
        duration = None if cls == st.RUNNING else rnd.randint(2_000, 1_800_000)
        batch.append(
            Execution(
                id=uuid.uuid4(),
                workflow=wf,
                status=status,
                status_class=cls,
                is_terminal=cls in st.TERMINAL_CLASSES,
                source=rnd.choice(SOURCES),
                started_at=started,
                ended_at=None if duration is None else started + timedelta(milliseconds=duration),
                duration_ms=duration,
                cloud=wf.cloud,
                region=REGIONS[wf.cloud],
                triggered_by=rnd.choice(("ana.lyst@corp.example", "auto-remediation", "")),
                categories={"cloud_providers": [wf.cloud], "regions": [REGIONS[wf.cloud]]},
                last_synced_at=now,
            )
        )
        if len(batch) == 5000:
            Execution.objects.bulk_create(batch)
            batch = []
    Execution.objects.bulk_create(batch)


def add_covering_indexes() -> None:
    # The mirror's migration 0002 has made them part of the schema: nothing to add.
    print("--covering: the covering indexes are in the mirror's schema now", file=sys.stderr)


def analyze() -> None:
    """Fresh planner statistics, as autovacuum would leave them on a live server."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE mirror_execution")
            cursor.execute("VACUUM ANALYZE mirror_workflow")
        elif connection.vendor == "sqlite":
            cursor.execute("ANALYZE")


def measure(client: Client, url: str) -> tuple[float, float, float, float, int]:
    """(cold p50, cold p95, warm p50, warm p95, queries of a cold view).

    Cold: the counts cache is emptied before each view (the first view after the mirror
    changed). Warm: the same view again while the mirror has not changed.
    """
    for _ in range(WARMUP):
        assert client.get(url).status_code == 200
    cold, warm = [], []
    for _ in range(SAMPLES):
        cache.clear()
        for times in (cold, warm):
            began = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200
    cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    if os.environ.get("BENCH_SQL"):
        for query in ctx.captured_queries:
            took = float(query["time"]) * 1000
            print(f"      {took:6.1f} ms  {query['sql'][:100]}", file=sys.stderr)

    def p50_p95(times: list[float]) -> tuple[float, float]:
        return statistics.median(times), statistics.quantiles(times, n=20, method="inclusive")[18]

    return (*p50_p95(cold), *p50_p95(warm), len(ctx.captured_queries))


def machine() -> str:
    load = ", ".join(f"{n:.2f}" for n in os.getloadavg())
    return f"{machine_description()}; load average at the end {load}"


def render(results: list[tuple], described: str) -> str:
    indexes = (
        "mirror indexes + the proposed covering indexes (--covering)"
        if COVERING
        else "mirror indexes as in qflowui/mirror/models.py"
    )
    lines = [
        f"Machine: {described}. Indexes: {indexes}.",
        "",
        "| executions | filter | cold p50 ms | cold p95 ms | warm p50 ms | warm p95 ms "
        "| SQL queries (cold) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for size, name, c50, c95, w50, w95, queries in results:
        lines.append(
            f"| {size:,} | {name} | {c50:.1f} | {c95:.1f} | {w50:.1f} | {w95:.1f} | {queries} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
