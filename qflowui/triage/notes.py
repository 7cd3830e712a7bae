"""Reading an execution's triage (state, ticket, notes) for pages and exports."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.urls import reverse

from qflowui.triage.models import Triage, TriageNote, TriageState
from qflowui.triage.services import (
    NOTE_EDIT_WINDOW,
    NOTE_MAX_CHARS,
    TICKET_MAX_CHARS,
    can_triage,
    edit_deadline,
    note_editable,
)

_HTTP_URL = URLValidator(schemes=["http", "https"])
_NOT_IN_URLS = frozenset('"<>\\^`{|} ')  # RFC 3986 never has them unencoded


def triage_export(execution_id: uuid.UUID | str) -> dict[str, Any]:
    """The triage of one execution as plain JSON-able data (the evidence bundle's
    `triage.json`): state (None when never triaged), ticket, who set them and when, and every
    note with its author and times (ISO 8601, UTC)."""
    triage = Triage.objects.filter(execution_id=execution_id).select_related("updated_by").first()
    notes = TriageNote.objects.filter(execution_id=execution_id)
    return {
        "execution_id": str(execution_id),
        "state": triage.state if triage else None,
        "ticket": triage.ticket if triage else "",
        "updated_by": (triage.updated_by.get_username() if triage and triage.updated_by else None),
        "updated_at": triage.updated_at.isoformat() if triage else None,
        "notes": [
            {
                "author": note.author_name,
                "text": note.text,
                "created_at": note.created_at.isoformat(),
                "edited_at": note.edited_at.isoformat() if note.edited_at else None,
            }
            for note in notes
        ],
    }


def ticket_url(ticket: str) -> str:
    """The ticket itself when it is an http(s) URL (shown as a link), else "" (shown as text):
    never a `javascript:` or any other scheme."""
    if not ticket or _NOT_IN_URLS.intersection(ticket):
        return ""
    try:
        _HTTP_URL(ticket)
    except ValidationError:
        return ""
    return ticket


@dataclass
class NoteView:
    id: int
    author: str
    text: str
    created_at: datetime
    edited_at: datetime | None
    editable: bool  # by the user looking at it, now
    edit_until: datetime
    edit_url: str


@dataclass
class Panel:
    """What the triage section of an execution page shows to one user."""

    execution_id: str
    state: str | None  # None: never triaged
    state_label: str
    ticket: str
    ticket_url: str
    updated_by: str
    updated_at: datetime | None
    notes: list[NoteView]
    can_triage: bool
    state_url: str
    note_url: str
    state_options: list[dict[str, Any]] = field(default_factory=list)
    ticket_value: str = ""  # what the ticket field holds (as typed, after an error)
    note_max: str = f"{NOTE_MAX_CHARS:,}"
    ticket_max: int = TICKET_MAX_CHARS
    edit_minutes: int = int(NOTE_EDIT_WINDOW.total_seconds() // 60)


def triage_panel(
    execution_id: uuid.UUID | str,
    user: Any,
    *,
    now: datetime,
    state_value: str | None = None,
    ticket_value: str | None = None,
) -> Panel:
    """The triage of one execution for `user` (two queries). `state_value` and
    `ticket_value` refill the form with what was typed when it was refused."""
    ident = str(execution_id)
    triage = Triage.objects.filter(execution_id=ident).select_related("updated_by").first()
    notes = list(TriageNote.objects.filter(execution_id=ident))
    state = triage.state if triage else None
    ticket = triage.ticket if triage else ""
    selected = state_value or state or TriageState.OPEN
    return Panel(
        execution_id=ident,
        state=state,
        state_label=TriageState(state).label if state in TriageState.values else "Not triaged",
        ticket=ticket,
        ticket_url=ticket_url(ticket),
        updated_by=(triage.updated_by.get_username() if triage and triage.updated_by else ""),
        updated_at=triage.updated_at if triage else None,
        notes=[
            NoteView(
                id=note.pk,
                author=note.author_name,
                text=note.text,
                created_at=note.created_at,
                edited_at=note.edited_at,
                editable=can_triage(user) and note_editable(note, user, now),
                edit_until=edit_deadline(note),
                edit_url=reverse("execution_triage:note_edit", args=[ident, note.pk]),
            )
            for note in notes
        ],
        can_triage=can_triage(user),
        state_url=reverse("execution_triage:state", args=[ident]),
        note_url=reverse("execution_triage:note_add", args=[ident]),
        state_options=[
            {"value": value, "label": label, "selected": value == selected}
            for value, label in TriageState.choices
        ],
        ticket_value=ticket if ticket_value is None else ticket_value,
    )
