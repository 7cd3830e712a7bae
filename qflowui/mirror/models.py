"""The local copy of QFlow: workflows, executions, steps, step payloads, sync passes.

Rows are upserted by `qflowui.mirror.sync` and never deleted: history outlives the API's
30-day window, so permalinks keep working. Times are stored in UTC.
"""

from __future__ import annotations

from django.db import models

from qflowui.mirror import status as st
from qflowui.mirror.fields import JsonTextField

STATUS_CLASS_CHOICES = [(cls, st.LABELS[cls]) for cls in st.CLASSES]


class Workflow(models.Model):
    id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=200, blank=True)
    # The workflow's main cloud (AWS, Azure, GCP, OCI) and all it touches.
    cloud = models.CharField(max_length=32, blank=True, db_index=True)
    cloud_providers = models.JSONField(default=list, blank=True)
    deployed = models.BooleanField(null=True)
    revision = models.CharField(max_length=128, blank=True)
    # The decoded definition ({"variables": [...], "components": [...]}) of `revision`.
    definition = models.JSONField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_synced_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # A walk over the API window has completed once.
    backfilled = models.BooleanField(default=False)
    # Single flight: a pass claims the workflow with a short lease (QFLOW_SYNC_LEASE_SECONDS)
    # that it renews before every page, so a killed worker's claim ends within a lease.
    sync_claimed_until = models.DateTimeField(null=True, blank=True)
    sync_claimed_by = models.CharField(max_length=40, blank=True)
    # Round robin: passes visit the workflows least recently visited first.
    last_visited_at = models.DateTimeField(null=True, blank=True)
    # The mirror holds every execution QFlow lists for this workflow created up to here (in
    # QFlow's 30-day window): the last walk that read all its pages, or whose count matched
    # QFlow's `total`, ended at this time. None: never complete yet.
    synced_through = models.DateTimeField(null=True, blank=True)
    # The walk in progress, newest first over [window start, walk_to]: the next page to read
    # (0: no walk in progress), records skipped so far, and how often it was started over.
    walk_to = models.DateTimeField(null=True, blank=True)
    walk_page = models.PositiveIntegerField(default=0)
    walk_skipped = models.PositiveIntegerField(default=0)
    walk_relists = models.PositiveSmallIntegerField(default=0)
    # Records QFlow lists (and counts in `total`) that the mirror cannot hold (malformed):
    # a walk is complete when the mirror's count plus these reaches QFlow's total.
    unreadable = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name or str(self.id)


class Execution(models.Model):
    id = models.UUIDField(primary_key=True)
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="executions")
    status = models.CharField(max_length=64)  # as QFlow spells it
    status_class = models.CharField(max_length=16, choices=STATUS_CLASS_CHOICES)
    is_terminal = models.BooleanField(default=False)
    source = models.CharField(max_length=64, blank=True)
    execution_type = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    # start_date, or created_at when QFlow gave no start: what lists filter and sort on.
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    cloud = models.CharField(max_length=32, blank=True)
    region = models.CharField(max_length=64, blank=True)
    categories = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    triggered_by = models.CharField(max_length=200, blank=True)
    parent_execution_id = models.UUIDField(null=True, blank=True, db_index=True)
    linked_execution_ids = models.JSONField(default=list, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_synced_at = models.DateTimeField()
    # Set once the steps of a terminal execution are cached (they never change again).
    steps_synced_at = models.DateTimeField(null=True, blank=True)
    # QFlow answered 404 for it (past its 30 days): the sync no longer asks. Cleared when
    # QFlow returns it again.
    gone_at = models.DateTimeField(null=True, blank=True)
    # Why it failed, copied from its steps whenever they are stored (mirror/failures.py):
    # the failing step, its error (masked), the error with its ids normalised away, and the
    # group key (workflow + step + pattern) that /failures/ and the list's filter use.
    failure_node_id = models.CharField(max_length=200, blank=True)
    failure_step = models.CharField(max_length=300, blank=True)
    failure_message = models.TextField(blank=True)
    failure_pattern = models.CharField(max_length=300, blank=True)
    failure_key = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            # `include`: the list reads the minutes of its range outside whole hours (the rest
            # comes from the rollups) from this index alone, with every rollup dimension
            # (PostgreSQL; other databases build the plain index).
            models.Index(
                fields=["-started_at", "-id"],
                include=["status_class", "status", "workflow", "source", "cloud", "region"],
                name="exec_started",
            ),
            models.Index(fields=["status_class", "-started_at"], name="exec_status_started"),
            models.Index(
                fields=["workflow", "-started_at"], include=["status_class"], name="exec_wf_started"
            ),
            models.Index(fields=["source", "-started_at"], name="exec_source_started"),
            models.Index(fields=["cloud", "-started_at"], name="exec_cloud_started"),
            models.Index(fields=["region", "-started_at"], name="exec_region_started"),
            models.Index(fields=["-duration_ms"], name="exec_duration"),
            models.Index(fields=["is_terminal"], name="exec_terminal"),
            # The list's cache asks for the mirror's latest write.
            models.Index(fields=["-last_synced_at"], name="exec_synced"),
            # The sync counts a workflow's executions in QFlow's window (by createdAt, as
            # QFlow filters) to compare with QFlow's `total`.
            models.Index(fields=["workflow", "created_at"], name="exec_wf_created"),
            # One failure group, newest first: /failures/ links and the list's filter.
            models.Index(fields=["failure_key", "-started_at"], name="exec_failure_key"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"


class QflowUser(models.Model):
    """A QFlow user id (as executions carry it in `triggeredBy`) and the name people know.

    Staff edit these in the admin; the API user qflowui runs as is added by itself the first
    time one of its runs' executions is stored. Unknown ids stay shown as short ids.
    """

    STAFF = "staff"
    API_USER = "api_user"
    SOURCE_CHOICES = [(STAFF, "Entered by staff"), (API_USER, "qflowui's API user (automatic)")]

    user_id = models.CharField("QFlow user id", max_length=200, primary_key=True)
    display_name = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=SOURCE_CHOICES, default=STAFF)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name"]
        verbose_name = "QFlow user"

    def __str__(self) -> str:
        return f"{self.display_name} ({self.user_id})"


class Step(models.Model):
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="steps")
    node_id = models.CharField(max_length=200)
    step_id = models.CharField(max_length=64, blank=True)
    node_type = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=64, blank=True)
    status_class = models.CharField(max_length=16, choices=STATUS_CLASS_CHOICES)
    event_order = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)  # masked
    raw = models.JSONField(default=dict, blank=True)  # masked
    last_synced_at = models.DateTimeField()

    class Meta:
        ordering = ["execution", "event_order", "started_at", "node_id"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "node_id"], name="step_unique_node"),
        ]

    def __str__(self) -> str:
        return f"{self.execution_id}/{self.node_id}"


class StepPayload(models.Model):
    INPUT = "input"
    OUTPUT = "output"
    KIND_CHOICES = [(INPUT, "Input"), (OUTPUT, "Output")]

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="payloads")
    node_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=KIND_CHOICES)
    # Masked before it is stored; kept as the JSON text orjson wrote (a text column: see
    # fields.JsonTextField), decoded only when a view needs more than the head.
    body = JsonTextField(null=True)
    size = models.BigIntegerField(default=0)  # bytes of the masked JSON text
    fetched_at = models.DateTimeField()
    # Above jsontree.LARGE_LIMIT: what the first view shows (jsontree.head_dumps), so it is
    # drawn without decoding the body. Null for smaller payloads, or until the first view.
    head = JsonTextField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "node_id", "kind"], name="payload_unique_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.execution_id}/{self.node_id}/{self.kind}"


class SyncRun(models.Model):
    """One sync pass: what it did, how many calls it cost, and how it ended.

    Its status is one of three: ``ok`` (every workflow in scope was brought up to date),
    ``partial`` (some were, the budget, a rate limit or errors stopped the rest) and
    ``failed`` (none was). ``summary`` says it in words, e.g. "partial: 11 of 16 workflows,
    QFlow asked us to wait 600 s".
    """

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    api_calls = models.IntegerField(default=0)
    workflows_seen = models.IntegerField(default=0)
    executions_new = models.IntegerField(default=0)
    executions_updated = models.IntegerField(default=0)
    # True only for a complete pass: never for a partial one.
    ok = models.BooleanField(default=False)
    partial = models.BooleanField(default=False)
    upstream_down = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    note = models.CharField(max_length=300, blank=True)
    summary = models.CharField(max_length=300, blank=True)
    workflows_total = models.IntegerField(default=0)  # in the pass's scope
    workflows_synced = models.IntegerField(default=0)  # brought up to date by the pass
    records_skipped = models.IntegerField(default=0)  # malformed records left out
    executions_gone = models.IntegerField(default=0)  # found purged from QFlow (404)
    # QFlow answered 409/429 asking to wait: no pass and no "Sync now" calls it before this.
    rate_limited_until = models.DateTimeField(null=True, blank=True, db_index=True)
    # The rate limit QFlow advertised during the pass (X-RateLimit-Limit / -Window-Sec).
    rate_limit = models.IntegerField(null=True, blank=True)
    rate_window_sec = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"sync {self.started_at:%Y-%m-%d %H:%M:%S} {self.status}"

    @property
    def status(self) -> str:
        if self.ok:
            return self.OK
        return self.PARTIAL if self.partial else self.FAILED


ROLLUP_KEY = ["bucket", "workflow_id", "status", "status_class", "source", "cloud", "region"]


class RollupBase(models.Model):
    """Executions counted per time bucket and per every dimension the list filters on.

    Kept by database triggers on `mirror_execution` (qflowui/mirror/rollups.py), in the
    same transaction as every insert, update and delete of an execution, whichever code
    path writes it (the sync's bulk upserts, a detail refresh, a run's mirror row, a
    test's `create`, a `COPY`). PostgreSQL only: on SQLite (small, development) the list
    counts the rows themselves. `manage.py rebuild_rollups` rebuilds them from scratch.
    """

    bucket = models.DateTimeField()  # UTC start of the hour (or day)
    workflow_id = models.UUIDField()
    status = models.CharField(max_length=64)
    status_class = models.CharField(max_length=16)
    source = models.CharField(max_length=64)
    cloud = models.CharField(max_length=32)
    region = models.CharField(max_length=64)
    n = models.BigIntegerField(default=0)  # 0 once every execution counted here moved

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:%M} {self.status} {self.n}"


class ExecutionHourRollup(RollupBase):
    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=ROLLUP_KEY,
                name="rollup_hour_key",
            )
        ]
        indexes = [models.Index(fields=["workflow_id", "bucket"], name="rollup_hour_wf")]


class ExecutionDayRollup(RollupBase):
    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=ROLLUP_KEY,
                name="rollup_day_key",
            )
        ]
        indexes = [models.Index(fields=["workflow_id", "bucket"], name="rollup_day_wf")]
