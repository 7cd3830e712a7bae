"""The run outbox: one `Run` row per "run this workflow" request, its history, and the audit log.

A run moves queued -> submitting -> submitted | failed | unknown; unknown ends submitted or
failed through reconciliation, and a submit that never reached QFlow goes back to queued.
Each state's latest time is a column; every change is also a `RunEvent`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTING = "submitting", "Submitting"
    SUBMITTED = "submitted", "Submitted"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown"


# States a run can still leave on its own: pages keep polling while a run is in one.
PENDING_STATES = frozenset({RunState.QUEUED, RunState.SUBMITTING, RunState.UNKNOWN})


class Run(models.Model):
    idempotency_key = models.UUIDField(unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs"
    )
    workflow = models.ForeignKey("mirror.Workflow", on_delete=models.PROTECT, related_name="runs")
    workflow_name = models.CharField(max_length=500, blank=True)  # as it was when run
    cloud = models.CharField(max_length=32, blank=True)
    # The body posted to QFlow is {"input": input, "variables": variables} (variables only
    # when not empty). Stored as the user wrote it; shown masked.
    input = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=dict, blank=True)
    body_sha256 = models.CharField(max_length=64)
    state = models.CharField(
        max_length=16, choices=RunState.choices, default=RunState.QUEUED, db_index=True
    )
    queued_at = models.DateTimeField(default=timezone.now)
    # Last time the submit task was handed to the broker (None: never, e.g. broker down).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    enqueue_attempts = models.PositiveIntegerField(default=0)
    submitting_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    unknown_at = models.DateTimeField(null=True, blank=True)
    # Times this run was claimed for a POST. More than one only after a POST that
    # certainly never reached QFlow (connection refused, rate limited).
    attempts = models.PositiveSmallIntegerField(default=0)
    execution_id = models.UUIDField(null=True, blank=True, unique=True)
    # True when the execution id was found in QFlow's execution list, not in its answer.
    reconciled = models.BooleanField(default=False)
    response = models.JSONField(null=True, blank=True)  # QFlow's answer, masked
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        permissions = [("run_workflow", "Can run a workflow")]
        indexes = [
            models.Index(fields=["state", "queued_at"], name="run_state_queued"),
            models.Index(fields=["created_by", "-queued_at"], name="run_user_queued"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("runs:detail", args=[self.pk])

    @property
    def is_pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def finished_at(self):
        return {
            RunState.SUBMITTED: self.submitted_at,
            RunState.FAILED: self.failed_at,
            RunState.UNKNOWN: self.unknown_at,
        }.get(self.state)

    def body(self) -> dict:
        """The exact JSON body POSTed to /workflows/{id}/run."""
        body: dict = {"input": self.input}
        if self.variables:
            body["variables"] = self.variables
        return body


class RunEvent(models.Model):
    """One state change of a run, with why."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    state = models.CharField(max_length=16, choices=RunState.choices)
    at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"run {self.run_id} -> {self.state} at {self.at:%H:%M:%S}"


class AuditEvent(models.Model):
    """Who did what to what: every run request and every refused attempt."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True)  # kept if the user is deleted
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=200, blank=True)  # e.g. "run 12", "workflow <uuid>"
    detail = models.JSONField(default=dict, blank=True)  # masked
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target}"
