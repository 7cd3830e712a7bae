"""Changing an execution's triage: its state, its ticket, its notes. Every change is audited.

Who may: Runners (permission `triage.change_triage`, granted by the data migration) and
staff. Viewers read. A note may be edited by its author for NOTE_EDIT_WINDOW after it was
written, checked here at save time; after that notes are append-only. Nothing is deleted.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from qflowui.accounts.audit import audit_record
from qflowui.triage.models import Triage, TriageNote
from qflowui.triage.versions import triage_changed

PERMISSION = "triage.change_triage"
NOTE_EDIT_WINDOW = timedelta(minutes=15)
NOTE_MAX_CHARS = 10_000
TICKET_MAX_CHARS = 500
# The same text from the same author on the same execution this soon again: a double click.
DUPLICATE_NOTE_SECONDS = 10

# Audit actions (shown as they are at /audit/).
STATE_CHANGED = "triage.state_changed"
TICKET_CHANGED = "triage.ticket_changed"
NOTE_ADDED = "triage.note_added"
NOTE_EDITED = "triage.note_edited"
DENIED = "triage.denied"  # no permission: ends in ".denied" like every refusal


class TriageRefused(Exception):
    """The change is not allowed (not the author, too late to edit). Its text is for the user."""


def can_triage(user: Any) -> bool:
    """Runners and staff set states and tickets and write notes; Viewers only read."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return bool(user.is_staff or user.has_perm(PERMISSION))


def audit_target(execution_id: uuid.UUID | str) -> str:
    return f"execution {execution_id}"


@dataclass(frozen=True)
class StateChange:
    state: bool  # the state changed
    ticket: bool  # the ticket changed

    @property
    def any(self) -> bool:
        return self.state or self.ticket


def triage_set(
    *,
    execution_id: uuid.UUID,
    state: str,
    ticket: str,
    request: HttpRequest,
) -> StateChange:
    """Set the state and the ticket. Saving what is already there changes and audits nothing
    (a double click is one change)."""
    user = request.user
    with transaction.atomic():
        triage = Triage.objects.select_for_update().filter(pk=execution_id).first()
        if triage is None:
            try:
                with transaction.atomic():  # another request may create it at this moment
                    Triage.objects.create(
                        execution_id=execution_id, state=state, ticket=ticket, updated_by=user
                    )
                before_state, before_ticket = None, ""
            except IntegrityError:
                triage = Triage.objects.select_for_update().get(pk=execution_id)
        if triage is not None:
            before_state, before_ticket = triage.state, triage.ticket
            if (before_state, before_ticket) == (state, ticket):
                return StateChange(state=False, ticket=False)
            triage.state, triage.ticket, triage.updated_by = state, ticket, user
            triage.save(update_fields=["state", "ticket", "updated_by", "updated_at"])
        change = StateChange(state=before_state != state, ticket=before_ticket != ticket)
        target = audit_target(execution_id)
        if change.state:
            audit_record(
                action=STATE_CHANGED,
                request=request,
                target=target,
                detail={"execution": str(execution_id), "before": before_state, "after": state},
            )
            triage_changed()
        if change.ticket:
            audit_record(
                action=TICKET_CHANGED,
                request=request,
                target=target,
                detail={"execution": str(execution_id), "before": before_ticket, "after": ticket},
            )
        return change


def note_add(
    *, execution_id: uuid.UUID, text: str, request: HttpRequest
) -> tuple[TriageNote | None, bool]:
    """Add a note. The same text from the same author within DUPLICATE_NOTE_SECONDS is stored
    once: (the note, False), the note None while the first request is still saving it."""
    user = request.user
    digest = hashlib.sha256(f"{user.pk}\n{execution_id}\n{text}".encode()).hexdigest()
    since = timezone.now() - timedelta(seconds=DUPLICATE_NOTE_SECONDS)
    recent = TriageNote.objects.filter(
        execution_id=execution_id, author=user, text=text, created_at__gte=since
    )
    # The cache key closes the race of two requests at once; the query, a cleared cache.
    guard = f"triage:note:{digest}"
    if not cache.add(guard, 1, DUPLICATE_NOTE_SECONDS):
        return recent.order_by("-created_at").first(), False
    existing = recent.order_by("-created_at").first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            note = TriageNote.objects.create(
                execution_id=execution_id, author=user, author_name=user.get_username(), text=text
            )
            audit_record(
                action=NOTE_ADDED,
                request=request,
                target=audit_target(execution_id),
                detail={"execution": str(execution_id), "note": note.pk, "text": text},
            )
    except Exception:
        cache.delete(guard)  # not stored: trying again at once must store it
        raise
    return note, True


def note_editable(note: TriageNote, user: Any, now: datetime) -> bool:
    """Its author, within NOTE_EDIT_WINDOW of writing it (and still allowed to triage)."""
    return (
        note.author_id is not None
        and note.author_id == getattr(user, "pk", None)
        and now - note.created_at <= NOTE_EDIT_WINDOW
    )


def edit_deadline(note: TriageNote) -> datetime:
    return note.created_at + NOTE_EDIT_WINDOW


def note_edit(
    *, execution_id: uuid.UUID, note_id: int, text: str, request: HttpRequest
) -> tuple[TriageNote, bool]:
    """Change a note's text: only its author, only within NOTE_EDIT_WINDOW of writing it
    (checked now, at save time). Returns the note and whether it changed."""
    user = request.user
    with transaction.atomic():
        note = (
            TriageNote.objects.select_for_update()
            .filter(pk=note_id, execution_id=execution_id)
            .first()
        )
        if note is None:
            raise TriageNote.DoesNotExist
        now = timezone.now()
        if note.author_id is None or note.author_id != user.pk:
            raise TriageRefused("Only the author of a note can edit it.")
        if now - note.created_at > NOTE_EDIT_WINDOW:
            minutes = int(NOTE_EDIT_WINDOW.total_seconds() // 60)
            raise TriageRefused(
                f"This note can no longer be edited: notes are append-only {minutes} minutes "
                "after they are written. Add a new note instead."
            )
        if note.text == text:
            return note, False
        before = note.text
        note.text, note.edited_at = text, now
        note.save(update_fields=["text", "edited_at"])
        audit_record(
            action=NOTE_EDITED,
            request=request,
            target=audit_target(execution_id),
            detail={
                "execution": str(execution_id),
                "note": note.pk,
                "before": before,
                "after": text,
            },
        )
    return note, True


def audit_denied(request: HttpRequest, execution_id: uuid.UUID, what: str) -> None:
    audit_record(
        action=DENIED,
        request=request,
        target=audit_target(execution_id),
        detail={"execution": str(execution_id), "attempt": what},
    )
