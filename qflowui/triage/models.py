"""Triage of one execution: a state, a ticket reference and notes, kept by qflowui (QFlow has
no such thing). Keyed by the execution's id, not a foreign key: an execution read from QFlow
once and never mirrored can be triaged too, and a purged mirror row keeps its triage."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TriageState(models.TextChoices):
    OPEN = "open", "Open"
    INVESTIGATING = "investigating", "Investigating"
    FALSE_POSITIVE = "false_positive", "False positive"
    RESOLVED = "resolved", "Resolved"
    ESCALATED = "escalated", "Escalated"


class Triage(models.Model):
    """The current state and ticket of one execution (no row: never triaged)."""

    execution_id = models.UUIDField(primary_key=True)
    state = models.CharField(max_length=16, choices=TriageState.choices, default=TriageState.OPEN)
    ticket = models.CharField(max_length=500, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["state"], name="triage_state_idx")]

    def __str__(self) -> str:
        return f"{self.execution_id} {self.state}"


class TriageNote(models.Model):
    """A plain-text note on an execution. Its author may edit it for 15 minutes after writing
    it (qflowui.triage.services.NOTE_EDIT_WINDOW); then it is append-only (never edited,
    never deleted)."""

    execution_id = models.UUIDField(db_index=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150)  # kept if the account goes
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"note {self.pk} on {self.execution_id}"
