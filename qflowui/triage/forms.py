"""The /failures/ and /workflows/ query strings, and the triage forms of an execution."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django import forms

from qflowui.executions.forms import RANGES, WorkflowIdField
from qflowui.triage.models import TriageState
from qflowui.triage.services import NOTE_MAX_CHARS, TICKET_MAX_CHARS

DEFAULT_RANGE = "24h"
SORTS = {"count": "Most failures first", "last": "Most recent first"}
DEFAULT_SORT = "count"


class FailureFilterForm(forms.Form):
    range = forms.ChoiceField(
        required=False,
        choices=[(key, long) for key, (_, long, _) in RANGES.items()],
        error_messages={
            "invalid_choice": "Unknown range “%(value)s”: use 1h, 24h, 7d, 30d or all."
        },
    )
    workflow = WorkflowIdField(required=False)
    cloud = forms.CharField(required=False, max_length=32)
    region = forms.CharField(required=False, max_length=64)
    source = forms.CharField(required=False, max_length=64)
    sort = forms.ChoiceField(
        required=False,
        choices=list(SORTS.items()),
        error_messages={"invalid_choice": "Unknown order “%(value)s”: use count or last."},
    )

    def filters(self) -> FailureFilters:
        """The valid values, defaults for the rest (a bad one is left out). After is_valid()."""
        data = self.cleaned_data
        return FailureFilters(
            range=data.get("range") or DEFAULT_RANGE,
            workflow=data.get("workflow"),
            cloud=data.get("cloud") or "",
            region=data.get("region") or "",
            source=data.get("source") or "",
            sort=data.get("sort") or DEFAULT_SORT,
        )


@dataclass(frozen=True)
class FailureFilters:
    range: str = DEFAULT_RANGE
    workflow: uuid.UUID | None = None
    cloud: str = ""
    region: str = ""
    source: str = ""
    sort: str = DEFAULT_SORT

    def start(self, now: datetime) -> datetime | None:
        delta = RANGES[self.range][2]
        return now - delta if delta else None

    def list_params(self) -> dict[str, str]:
        """The same filters as the executions list's query string."""
        out = {"range": self.range}
        if self.workflow:
            out["workflow"] = str(self.workflow)
        for name in ("cloud", "region", "source"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


# --- /workflows/ ---------------------------------------------------------------------------

WORKFLOW_SORTS = {
    "failures": "Failure rate",  # highest failure rate over 7 days first: what needs a look
    "last": "Last run",  # most recently run first
    "name": "Name",
}
DEFAULT_WORKFLOW_SORT = "failures"


class WorkflowFilterForm(forms.Form):
    cloud = forms.CharField(required=False, max_length=32)
    q = forms.CharField(required=False, max_length=200, strip=True)
    sort = forms.ChoiceField(
        required=False,
        choices=list(WORKFLOW_SORTS.items()),
        error_messages={"invalid_choice": "Unknown order “%(value)s”: use failures, last or name."},
    )

    def filters(self) -> WorkflowFilters:
        """The valid values, defaults for the rest (a bad one is left out). After is_valid()."""
        data = getattr(self, "cleaned_data", {})
        return WorkflowFilters(
            cloud=data.get("cloud") or "",
            q=data.get("q") or "",
            sort=data.get("sort") or DEFAULT_WORKFLOW_SORT,
        )


@dataclass(frozen=True)
class WorkflowFilters:
    cloud: str = ""
    q: str = ""
    sort: str = DEFAULT_WORKFLOW_SORT

    def params(self, **changes: str) -> dict[str, str]:
        """The query string of this page, with `changes`; empty values and defaults left out."""
        params = {"cloud": self.cloud, "q": self.q, "sort": self.sort, **changes}
        if params["sort"] == DEFAULT_WORKFLOW_SORT:
            params["sort"] = ""
        return {key: value for key, value in params.items() if value}


# --- an execution's triage (qflowui/triage/services.py) -------------------------------------


class NoteTextField(forms.CharField):
    """Plain text as typed, line breaks as "\\n" (a browser sends "\\r\\n": a 10,000-character
    note must not count as more because of its line breaks)."""

    def to_python(self, value: object) -> str:
        text = super().to_python(value)
        return text.replace("\r\n", "\n").replace("\r", "\n")


_STATE_HELP = ", ".join(value for value, _ in TriageState.choices)


class TriageStateForm(forms.Form):
    state = forms.ChoiceField(
        choices=TriageState.choices,
        error_messages={
            "required": "Choose a triage state.",
            "invalid_choice": f"Unknown triage state “%(value)s”: use {_STATE_HELP}.",
        },
    )
    ticket = forms.CharField(
        required=False,
        max_length=TICKET_MAX_CHARS,
        strip=True,
        error_messages={
            "max_length": "A ticket reference holds at most %(limit_value)d characters "
            "(this one has %(show_value)d)."
        },
    )

    def clean_ticket(self) -> str:
        ticket = self.cleaned_data["ticket"]
        if any(ch in ticket for ch in "\r\n\t") or not ticket.isprintable():
            raise forms.ValidationError("A ticket reference is one line of text or a link.")
        return ticket


class NoteForm(forms.Form):
    text = NoteTextField(
        max_length=NOTE_MAX_CHARS,
        strip=True,
        error_messages={
            "required": "The note is empty: write something first.",
            "max_length": f"A note holds at most {NOTE_MAX_CHARS:,} characters (this one has "
            "%(show_value)d): shorten it, or split it into two notes.",
        },
    )
