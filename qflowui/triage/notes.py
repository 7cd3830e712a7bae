"""Reading an execution's triage (state, ticket, notes) for pages and exports."""

from __future__ import annotations

import uuid
from typing import Any

from qflowui.triage.models import Triage, TriageNote


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
