"""Saved views of the executions list, alerts on them, and what each alert delivered."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

NAME_LENGTH = 80


class SavedView(models.Model):
    """An executions-list query saved under a name: private to its owner, or shared."""

    name = models.CharField(max_length=NAME_LENGTH)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    shared = models.BooleanField(default=False)
    # The list's canonical query string (Filters.params(): no page, no asof).
    query = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        constraints = [
            models.UniqueConstraint(Lower("name"), "owner", name="savedview_owner_name"),
        ]
        indexes = [models.Index(fields=["shared", "name"], name="savedview_shared_name")]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    """A view's alerts to one Apprise destination (its URL encrypted: it holds secrets)."""

    EACH = "each"
    DIGEST = "digest"
    MODES = [(EACH, "One message per execution"), (DIGEST, "One digest per pass")]

    view = models.ForeignKey(SavedView, on_delete=models.CASCADE, related_name="subscriptions")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="view_subscriptions"
    )
    destination_encrypted = models.TextField()
    destination_shown = models.CharField(max_length=300)  # masked: safe for any page or log
    service = models.CharField(max_length=100, blank=True)  # "Slack", "JSON", … (apprise's)
    mode = models.CharField(max_length=8, choices=MODES, default=EACH)
    active = models.BooleanField(default=True)
    # Executions synced at or before this are not news: those already in the view when the
    # subscription was made, and those a pass has looked at.
    watermark = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)  # masked
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.view} → {self.destination_shown}"

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0


class Delivery(models.Model):
    """One execution for one subscription: the unique pair is the "at most once" record.

    pending → sending (claimed by one task) → sent; a send that failed goes back to
    pending for the retry. A claim never finished (the worker died mid-send) becomes
    `unknown` and is never sent again: at most once, not at least once. `baseline`: in the
    view when the subscription was made, never sent.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    UNKNOWN = "unknown"
    BASELINE = "baseline"
    STATES = [(s, s) for s in (PENDING, SENDING, SENT, UNKNOWN, BASELINE)]

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    execution = models.ForeignKey(
        "mirror.Execution", on_delete=models.CASCADE, related_name="+", db_constraint=True
    )
    state = models.CharField(max_length=8, choices=STATES, default=PENDING)
    claim = models.UUIDField(null=True, blank=True, default=None)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "execution"], name="delivery_once_per_execution"
            ),
        ]
        indexes = [models.Index(fields=["subscription", "state"], name="delivery_sub_state")]

    def __str__(self) -> str:
        return f"{self.subscription_id}/{self.execution_id}: {self.state}"


def new_claim() -> uuid.UUID:
    return uuid.uuid4()
