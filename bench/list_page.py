"""Server time of the executions list over a mirror of 1,000 to 10,000,000 executions.

Budget (DESIGN §6): p95 <= 50 ms at 1,000,000 executions, p95(10,000,000) / p95(1,000)
<= 1.5, <= 10 SQL queries, for every filter, cold (right after a write to the mirror) and
warm. Runs against a throwaway test database: with DATABASE_URL set (PostgreSQL) a fresh
`test_...` database on that server, else an in-memory SQLite one (no rollups there).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/qflowui .venv/bin/python bench/list_page.py
    BENCH_SIZES=1000,1000000,10000000 ...   # the default is 1,000 and 1,000,000

On PostgreSQL the executions are written by `INSERT ... SELECT FROM generate_series` (a
million rows a statement) with the rollup triggers off, then the rollups are rebuilt by
`manage.py rebuild_rollups`, the command the app uses. Prints one markdown table and the
p95 ratio of the largest size to the smallest per filter (docs/benchmarks.md, "List page").
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
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import (  # noqa: E402
    CaptureQueriesContext,
    setup_test_environment,
    teardown_test_environment,
)
from django.utils import timezone  # noqa: E402
from machine import machine_description  # noqa: E402

from qflowui.mirror import rollups  # noqa: E402
from qflowui.mirror import status as st  # noqa: E402
from qflowui.mirror.models import Execution, SyncRun, Workflow  # noqa: E402

SIZES = tuple(int(n) for n in os.environ.get("BENCH_SIZES", "1000,1000000").split(","))
WARMUP = 5
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "40"))
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


def run() -> list[tuple]:
    rnd = random.Random(20251123)
    now = timezone.now()
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
        began = time.perf_counter()
        if connection.vendor == "postgresql":
            fill_sql(workflows, have, size, now)
        else:
            fill(rnd, workflows, have, size, now)
        have = size
        analyze()
        print(f"{size:>10,} filled in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        for name, url in urls(workflows, size).items():
            figures = measure(client, url)
            results.append((size, name, *figures))
            c50, c95, w50, w95, queries = figures
            line = (
                f"{size:>10,} {name:<22} cold p50 {c50:6.1f} p95 {c95:6.1f} ms  "
                f"warm p50 {w50:6.1f} p95 {w95:6.1f} ms  {queries} q"
            )
            print(line, file=sys.stderr)
    return results


def urls(workflows: list, size: int) -> dict[str, str]:
    sample = Execution.objects.filter(started_at__lt=timezone.now() - timedelta(days=3)).first()
    failed = (
        Execution.objects.filter(status_class=st.FAILED)
        .exclude(failure_key="")
        .values_list("failure_key", flat=True)
        .first()
    )
    older = Execution.objects.order_by("-started_at", "-id")[49]
    from qflowui.executions.listing import encode_cursor

    return {
        # The five combinations of the issue.
        "no filter": "/executions/",
        "status=failed": "/executions/?status=failed",
        "range=24h": "/executions/?range=24h",
        "workflow + status": f"/executions/?workflow={workflows[3].id}&status=failed",
        "q = id prefix": f"/executions/?q={str(sample.id)[:6]}",
        # Every other filter alone.
        "range=1h": "/executions/?range=1h",
        "range=30d": "/executions/?range=30d",
        "range=all": "/executions/?range=all",
        "workflow": f"/executions/?workflow={workflows[5].id}",
        "status=queued (rare)": "/executions/?status=queued",
        "source": "/executions/?source=SCHEDULED",
        "cloud": "/executions/?cloud=OCI",
        "region": "/executions/?region=westeurope",
        "q = workflow name": "/executions/?q=workflow%2007",
        "from/to (custom)": "/executions/?start=2020-01-01T10:17&end=2100-01-01T08:43",
        "error contains": "/executions/?error=AccessDenied&range=all",
        "failure group": f"/executions/?failure={failed}&range=all",
        "triage=open": "/executions/?triage=open&range=all",
        "triage=none": "/executions/?triage=none",
        "page 2 (keyset)": f"/executions/?page=2&after={encode_cursor(older, '-started')}",
        "sort=-duration": "/executions/?sort=-duration",
    }


STATUS_SQL = None


def fill_sql(workflows: list, start: int, end: int, now) -> None:
    """Rows start..end by generate_series, a million per statement, triggers off, then the
    rollups rebuilt by the app's own command. The same mix as fill()."""
    bounds, acc = [], 0.0
    total = sum(w for _, w in STATUS_MIX)
    for status, weight in STATUS_MIX:
        acc += weight / total
        bounds.append((acc, status, st.status_class(status)))
    status_case = "CASE " + " ".join(f"WHEN r < {b:.6f} THEN '{s}'" for b, s, _ in bounds[:-1])
    status_case += f" ELSE '{bounds[-1][1]}' END"
    class_case = "CASE " + " ".join(f"WHEN r < {b:.6f} THEN '{c}'" for b, _, c in bounds[:-1])
    class_case += f" ELSE '{bounds[-1][2]}' END"
    running = " OR ".join(
        f"r >= {bounds[i - 1][0]:.6f} AND r < {b:.6f}"
        for i, (b, _, c) in enumerate(bounds)
        if c == st.RUNNING and i > 0
    )
    ids = "ARRAY[" + ",".join(f"'{w.id}'::uuid" for w in workflows) + "]"
    clouds = "ARRAY[" + ",".join(f"'{w.cloud}'" for w in workflows) + "]"
    regions = "ARRAY[" + ",".join(f"'{REGIONS[w.cloud]}'" for w in workflows) + "]"
    sources = "ARRAY[" + ",".join(f"'{s}'" for s in SOURCES) + "]"
    errors = (
        "ARRAY['AccessDenied for role remediation','timeout waiting for connector',"
        "'bucket policy rejected','quota exceeded in region','invalid credentials']"
    )
    spread = int(SPREAD.total_seconds())
    rollups.set_triggers(False)
    chunk = 1_000_000
    with connection.cursor() as cursor:
        for low in range(start, end, chunk):
            high = min(end, low + chunk)
            cursor.execute(
                f"""
                INSERT INTO mirror_execution (id, workflow_id, status, status_class, is_terminal,
                  source, execution_type, started_at, ended_at, duration_ms, cloud, region,
                  categories, variables, tags, triggered_by, linked_execution_ids, raw,
                  first_seen_at, last_synced_at, failure_node_id, failure_step,
                  failure_message, failure_pattern, failure_key)
                SELECT gen_random_uuid(), ({ids})[1 + g %% 12], {status_case}, cls,
                  cls IN ('success','failed','cancelled','timed_out'),
                  ({sources})[1 + (g / 12) %% 3], '', started,
                  CASE WHEN running THEN NULL ELSE started + dur * interval '1 ms' END,
                  CASE WHEN running THEN NULL ELSE dur END,
                  ({clouds})[1 + g %% 12], ({regions})[1 + g %% 12],
                  '{{}}', '[]', '[]',
                  (ARRAY['ana.lyst@corp.example', 'auto-remediation', ''])[1 + g %% 3],
                  '[]', '{{}}', %s, %s,
                  CASE WHEN failing THEN 'step-' || (g %% 7) ELSE '' END,
                  CASE WHEN failing THEN 'Step ' || (g %% 7) ELSE '' END,
                  CASE WHEN failing THEN ({errors})[1 + (g / 7) %% 5] ELSE '' END,
                  CASE WHEN failing THEN ({errors})[1 + (g / 7) %% 5] ELSE '' END,
                  CASE WHEN failing THEN substr(md5((g %% 12)::text || (g %% 7) || ((g / 7) %% 5)),
                    1, 16) ELSE '' END
                FROM (
                  SELECT g, r, cls, running, cls IN ('failed', 'timed_out') AS failing,
                    CASE WHEN running
                      THEN %s - (10 + (hashint %% 7190)) * interval '1 s'
                      ELSE %s - (hashint %% {spread}) * interval '1 s' END AS started,
                    2000 + (hashdur %% 1798000) AS dur
                  FROM (
                    SELECT g, r, {class_case} AS cls, ({running}) AS running,
                      (hashtext(g::text || 'x')::bigint & 2147483647) AS hashint,
                      (hashtext(g::text || 'd')::bigint & 2147483647) AS hashdur
                    FROM (SELECT g, random() AS r FROM generate_series(%s, %s - 1) g) s
                  ) s2
                ) s3
                """,  # noqa: S608 (our own constants; values are parameters)
                [now, now, now, now, low, high],
            )
    rollups.set_triggers(True)
    call_command("rebuild_rollups", stdout=open(os.devnull, "w"))  # noqa: SIM115
    if start == 0:  # a few triaged executions, as a team would have
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO triage_triage (execution_id, state, ticket, updated_at)"
                " SELECT id, 'open', '', now() FROM mirror_execution"
                " WHERE status_class = 'failed' ORDER BY id LIMIT 200"
            )


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
    lines = [
        f"Machine: {described}. Samples per filter: {SAMPLES} cold + {SAMPLES} warm.",
        "",
        "| executions | filter | cold p50 ms | cold p95 ms | warm p50 ms | warm p95 ms "
        "| SQL queries (cold) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for size, name, c50, c95, w50, w95, queries in results:
        lines.append(
            f"| {size:,} | {name} | {c50:.1f} | {c95:.1f} | {w50:.1f} | {w95:.1f} | {queries} |"
        )
    small, large = min(SIZES), max(SIZES)
    if small != large:
        by = {(size, name): (c95, w95) for size, name, _, c95, _, w95, _ in results}
        lines += [
            "",
            f"p95 ratio {large:,} / {small:,} (budget <= 1.5):",
            "",
            "| filter | cold | warm |",
            "|---|---:|---:|",
        ]
        for size, name, *_ in results:
            if size == small and (large, name) in by:
                (c1, w1), (c2, w2) = by[(small, name)], by[(large, name)]
                lines.append(f"| {name} | {c2 / c1:.2f} | {w2 / w1:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
