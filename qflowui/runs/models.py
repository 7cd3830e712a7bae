"""The run outbox: one `Run` row per "run this workflow" request, its history, and the audit log.

A run moves queued -> submitting -> submitted | failed | unknown. A submit that certainly
never reached QFlow goes back to queued. An unknown run (QFlow's answer was lost) is matched
by its correlation variable (submitted), or after the bound becomes not_started (QFlow has
no execution for it) or needs_review (a person decides among plausible executions).
Each state's latest time is a column; every change is also a `RunEvent`.
"""

from __future__ import annotations

import uuid

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
    NEEDS_REVIEW = "needs_review", "Needs review"
    NOT_STARTED = "not_started", "Not started"


# States a run can still leave on its own: pages keep polling while a run is in one.
# needs_review is not among them: it waits for a person, not for a worker.
PENDING_STATES = frozenset({RunState.QUEUED, RunState.SUBMITTING, RunState.UNKNOWN})
# QFlow's answer was lost and no execution is tied to the run yet: it may still be running.
DOUBTFUL_STATES = frozenset({RunState.UNKNOWN, RunState.NEEDS_REVIEW})


class Run(models.Model):
    idempotency_key = models.UUIDField(unique=True)
    # The run's id outside this database: posted to QFlow as the correlation variable, so the
    # execution it started can be found by it alone. Not guessable, never reused.
    public_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    # The correlation variable's name as set when the run was made ("" : none is posted).
    correlation_key = models.CharField(max_length=64, blank=True)
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
    needs_review_at = models.DateTimeField(null=True, blank=True)
    not_started_at = models.DateTimeField(null=True, blank=True)
    # Not to be posted before this (QFlow asked us to wait); None: at once.
    not_before = models.DateTimeField(null=True, blank=True)
    # Times this run was claimed for a POST. More than one only after a POST that
    # certainly never reached QFlow (connection refused, rate limited).
    attempts = models.PositiveSmallIntegerField(default=0)
    execution_id = models.UUIDField(null=True, blank=True, unique=True)
    # True when the execution id was found in QFlow's execution list, not in its answer.
    reconciled = models.BooleanField(default=False)
    # Who decided, for a needs_review run ("this is it" or "it did not start").
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # needs_review: the executions that may be this run, as listed then (variables masked):
    # [{"id", "created_at" (ISO), "status", "variables"}].
    candidates = models.JSONField(default=list, blank=True)
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
    def is_doubtful(self) -> bool:
        return self.state in DOUBTFUL_STATES

    @property
    def correlation(self) -> str:
        """The correlation variable as posted, "qflowuiRunId=<public id>" ("" when none)."""
        return f"{self.correlation_key}={self.public_id}" if self.correlation_key else ""

    @property
    def finished_at(self):
        return {
            RunState.SUBMITTED: self.submitted_at,
            RunState.FAILED: self.failed_at,
            RunState.UNKNOWN: self.unknown_at,
            RunState.NEEDS_REVIEW: self.needs_review_at,
            RunState.NOT_STARTED: self.not_started_at,
        }.get(self.state)

    def body(self) -> dict:
        """The body as the user gave it (the correlation variable is added when posting)."""
        body: dict = {"input": self.input}
        if self.variables:
            body["variables"] = self.variables
        return body

    def posted_variables(self) -> dict:
        """The variables POSTed to QFlow: the user's, plus the correlation variable."""
        variables = dict(self.variables or {})
        if self.correlation_key:
            variables[self.correlation_key] = str(self.public_id)
        return variables


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


class Heartbeat(models.Model):
    """The last time a process proved it was alive, e.g. "beat": Celery beat sent a task."""

    name = models.CharField(max_length=32, primary_key=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"


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
