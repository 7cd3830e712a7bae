"""Executions counted per hour and per day, by workflow, status, source, cloud and region.

The list's counts, chart and filter choices read these instead of every execution in the
range (docs/benchmarks.md, "List page"). They are kept by statement-level triggers on
`mirror_execution` (PostgreSQL transition tables): every INSERT, UPDATE and DELETE, by any
code path (the sync's bulk upserts, a detail refresh, a run's own row, a `COPY`), moves
its counts in the same transaction, so a rollup always equals a `COUNT(*)` of the rows.
A status change moves one count from one bucket to another; a row whose counted columns
did not change nets to nothing and writes nothing.

PostgreSQL only. On SQLite (development, small mirrors) the list counts rows directly.
`manage.py rebuild_rollups` rebuilds both tables from the executions (e.g. after a bulk
load with the triggers disabled).
"""

# ruff: noqa: S608 -- only this module's own table and column names are formatted into SQL
from __future__ import annotations

from django.db import connection, transaction

EXECUTIONS = "mirror_execution"
HOURS = "mirror_executionhourrollup"
DAYS = "mirror_executiondayrollup"
KEY = "bucket, workflow_id, status, status_class, source, cloud, region"
DIMS = "workflow_id, status, status_class, source, cloud, region"


def _upsert(table: str, unit: str, delta: str) -> str:
    # Grouped and sorted: one row per key per statement (ON CONFLICT needs it), taken in
    # key order so two concurrent writers cannot deadlock on the same rollup rows.
    return f"""
    INSERT INTO {table} AS r ({KEY}, n)
    SELECT date_trunc('{unit}', started_at, 'UTC'), {DIMS}, SUM(d)
      FROM ({delta}) AS delta
     GROUP BY 1, 2, 3, 4, 5, 6, 7
    HAVING SUM(d) <> 0
     ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT ({KEY}) DO UPDATE SET n = r.n + EXCLUDED.n;"""


def _function(name: str, delta: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_upsert(HOURS, "hour", delta)}
{_upsert(DAYS, "day", delta)}
    RETURN NULL;
END $$;"""


_NEW = f"SELECT started_at, {DIMS}, 1 AS d FROM new_rows"
_OLD = f"SELECT started_at, {DIMS}, -1 AS d FROM old_rows"

INSTALL_SQL = [
    _function("qf_rollup_insert", _NEW),
    _function("qf_rollup_delete", _OLD),
    _function("qf_rollup_update", f"{_NEW} UNION ALL {_OLD}"),
    f"DROP TRIGGER IF EXISTS qf_rollup_insert ON {EXECUTIONS}",
    f"DROP TRIGGER IF EXISTS qf_rollup_delete ON {EXECUTIONS}",
    f"DROP TRIGGER IF EXISTS qf_rollup_update ON {EXECUTIONS}",
    f"""CREATE TRIGGER qf_rollup_insert AFTER INSERT ON {EXECUTIONS}
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION qf_rollup_insert()""",
    f"""CREATE TRIGGER qf_rollup_delete AFTER DELETE ON {EXECUTIONS}
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION qf_rollup_delete()""",
    f"""CREATE TRIGGER qf_rollup_update AFTER UPDATE ON {EXECUTIONS}
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION qf_rollup_update()""",
]

UNINSTALL_SQL = [
    f"DROP TRIGGER IF EXISTS qf_rollup_insert ON {EXECUTIONS}",
    f"DROP TRIGGER IF EXISTS qf_rollup_delete ON {EXECUTIONS}",
    f"DROP TRIGGER IF EXISTS qf_rollup_update ON {EXECUTIONS}",
    "DROP FUNCTION IF EXISTS qf_rollup_insert()",
    "DROP FUNCTION IF EXISTS qf_rollup_delete()",
    "DROP FUNCTION IF EXISTS qf_rollup_update()",
]

REBUILD_SQL = [
    # In bucket order, so a window's rollup rows sit on few pages.
    # Writers wait (readers do not) while the rollups are rebuilt: no count is lost between
    # the snapshot read here and the triggers' next write.
    f"LOCK TABLE {EXECUTIONS} IN SHARE ROW EXCLUSIVE MODE",
    f"TRUNCATE {HOURS}, {DAYS}",
    f"""INSERT INTO {HOURS} ({KEY}, n)
        SELECT date_trunc('hour', started_at, 'UTC'), {DIMS}, COUNT(*)
          FROM {EXECUTIONS} GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1""",
    f"""INSERT INTO {DAYS} ({KEY}, n)
        SELECT date_trunc('day', bucket, 'UTC'), {DIMS}, SUM(n)
          FROM {HOURS} GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1""",
    f"ANALYZE {HOURS}",
    f"ANALYZE {DAYS}",
]


def supported(conn=connection) -> bool:
    return conn.vendor == "postgresql"


def install(conn=connection) -> None:
    if supported(conn):
        with conn.cursor() as cursor:
            for sql in INSTALL_SQL:
                cursor.execute(sql)


def rebuild(conn=connection) -> None:
    """Both rollups from scratch, in one transaction (writers to executions wait)."""
    if not supported(conn):
        return
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        for sql in REBUILD_SQL:
            cursor.execute(sql)


def set_triggers(enabled: bool, conn=connection) -> None:
    """For bulk loads (bench/list_page.py): load with the triggers off, then rebuild()."""
    if supported(conn):
        verb = "ENABLE" if enabled else "DISABLE"
        with conn.cursor() as cursor:
            for name in ("insert", "delete", "update"):
                cursor.execute(f"ALTER TABLE {EXECUTIONS} {verb} TRIGGER qf_rollup_{name}")
