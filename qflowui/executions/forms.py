"""The executions list's query string, parsed and validated.

Every filter lives in the URL. A bad value never fails the page: it gets a message beside
its filter and is left out, and the rest of the filters still apply.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from qflowui.mirror import status as st
from qflowui.triage.models import TriageState

DEFAULT_RANGE = "7d"
RANGES = {
    "1h": ("1 h", "Last hour", timedelta(hours=1)),
    "24h": ("24 h", "Last 24 hours", timedelta(hours=24)),
    "7d": ("7 d", "Last 7 days", timedelta(days=7)),
    "30d": ("30 d", "Last 30 days", timedelta(days=30)),
    "all": ("All", "All time", None),
}
DEFAULT_SORT = "-started"
SORTS = {
    "-started": "Newest first",
    "started": "Oldest first",
    "-duration": "Longest first",
    "duration": "Shortest first",
}
STATUS_HELP = ", ".join(c.replace("_", " ") for c in st.CLASSES)
_LOST_PLUS = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
_ID_PREFIX = re.compile(r"[0-9a-f]{6,31}")
_HEXISH = re.compile(r"[0-9a-fA-F-]+")
# The triage filter: a state, or never triaged.
TRIAGE_NONE = "none"
TRIAGE_CHOICES = [*TriageState.choices, (TRIAGE_NONE, "Not triaged")]
TRIAGE_HELP = ", ".join(value for value, _ in TRIAGE_CHOICES[:-1]) + f" or {TRIAGE_NONE}"
DATE_HELP = "use 2025-11-23, 2025-11-23T10:42 (in your time zone) or 2025-11-23T10:42+01:00"


class MultiValueField(forms.Field):
    """Every value of a repeatable query parameter (`status=a&status=b`, or `status=a,b`)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: object) -> list[str]:
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        out: list[str] = []
        for item in values:
            out.extend(part.strip() for part in str(item).split(",") if part.strip())
        return out


class InstantField(forms.Field):
    """An ISO date or date-time; in the user's time zone unless it carries an offset.

    A date-only value means the start of that day, or with `end_of_day` its end.
    """

    def __init__(self, *, end_of_day: bool = False, **kwargs: object) -> None:
        self.end_of_day = end_of_day
        super().__init__(required=False, **kwargs)

    def to_python(self, value: object) -> datetime | None:
        text = str(value or "").strip()[:60]
        if not text:
            return None
        try:
            moment = _parse_instant(text, self.end_of_day)
        except (ValueError, OverflowError):
            moment = None
        if moment is None:
            raise forms.ValidationError(f"“{text}” is not a date: {DATE_HELP}.")
        return moment


def _parse_instant(text: str, end_of_day: bool) -> datetime | None:
    """A date or date-time without an offset is read in the user's zone (the one every time
    on screen is shown in; UTC unless they chose another)."""
    zone = timezone.get_current_timezone()
    # A "+01:00" typed into a URL by hand arrives as " 01:00": put the plus back.
    text = _LOST_PLUS.sub(r"\1+\2", text)
    if is_date_only(text):
        day = parse_date(text)
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    moment = parse_datetime(text.replace(" ", "T", 1))
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


class WorkflowIdField(forms.UUIDField):
    def to_python(self, value: object) -> uuid.UUID | None:
        try:
            return super().to_python(value)
        except forms.ValidationError:
            raise forms.ValidationError(
                f"“{value}” is not a workflow id (a UUID like 3f2a9c1e-…).", code="invalid"
            ) from None


class CaseInsensitiveChoiceField(forms.ChoiceField):
    """`Open` and `OPEN` are `open`: a value typed into a URL by hand."""

    def to_python(self, value: object) -> str:
        return super().to_python(value).strip().lower()


class ExecutionFilterForm(forms.Form):
    status = MultiValueField(required=False)
    range = forms.ChoiceField(
        required=False,
        choices=[(key, long) for key, (_, long, _) in RANGES.items()],
        error_messages={
            "invalid_choice": "Unknown range “%(value)s”: use 1h, 24h, 7d, 30d or all."
        },
    )
    start = InstantField()
    end = InstantField(end_of_day=True)
    workflow = WorkflowIdField(required=False)
    source = forms.CharField(required=False, max_length=64)
    cloud = forms.CharField(required=False, max_length=32)
    region = forms.CharField(required=False, max_length=64)
    q = forms.CharField(required=False, max_length=200)
    # A phrase of the failing step's error (case-insensitive).
    error = forms.CharField(required=False, max_length=200)
    # One group of /failures/: same workflow, failing step and error pattern.
    failure = forms.RegexField(
        required=False,
        regex=r"^[0-9a-f]{16}$",
        error_messages={"invalid": "“%(value)s” is not a failure group (16 hex digits)."},
    )
    # Executions in one triage state (qflowui/triage), or never triaged (`none`).
    triage = CaseInsensitiveChoiceField(
        required=False,
        choices=TRIAGE_CHOICES,
        error_messages={"invalid_choice": f"Unknown triage state “%(value)s”: use {TRIAGE_HELP}."},
    )
    sort = forms.ChoiceField(
        required=False,
        choices=list(SORTS.items()),
        error_messages={
            "invalid_choice": "Unknown sort “%(value)s”: use -started, started, -duration "
            "or duration."
        },
    )
    # The moment page 1 was shown: later pages keep to the rows known then, so executions a
    # sync adds meanwhile cannot shift rows from one page to the next (no repeats, no gaps).
    asof = InstantField()
    # Keyset paging: the page after (Older) or before (Newer) this row's sort key.
    after = forms.RegexField(required=False, regex=r"^[0-9~.a-f-]{1,80}$")
    before = forms.RegexField(required=False, regex=r"^[0-9~.a-f-]{1,80}$")
    page = forms.IntegerField(
        required=False,
        min_value=1,
        error_messages={
            "invalid": "The page must be a whole number.",
            "min_value": "The page must be 1 or more.",
        },
    )

    def clean(self) -> dict:
        data = super().clean()
        raw = data.get("status") or []
        known: list[str] = []
        unknown: list[str] = []
        for value in raw:
            cls = st.parse_status_class(value)
            if cls is None:
                unknown.append(value)
            elif cls not in known:
                known.append(cls)
        # Others may be statuses as QFlow spells them (`Partial`): filters() checks them
        # against the mirror's.
        self.unknown_statuses = unknown
        data["status"] = known  # the known ones still apply
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None and end <= start:
            self.add_error("end", "The end is before the start: the dates are not applied.")
            data.pop("start", None)
        return data

    unknown_statuses: list[str] = []

    def filters(self, known_statuses: list[str] | tuple[str, ...] = ()) -> Filters:
        """What to show: the valid values, defaults for the rest. Call after is_valid().

        A status that is no class name is kept when QFlow has sent it (`known_statuses`, in
        QFlow's spelling; matched in any case); any other gets a message and is left out.
        """
        data = self.cleaned_data
        classes = tuple(data.get("status") or ())  # add_error below drops the field's data
        spelled = {s.lower(): s for s in known_statuses}
        raw: list[str] = []
        refused: list[str] = []
        for value in self.unknown_statuses:
            match = spelled.get(value.lower())
            if match is None:
                refused.append(value)
            elif match not in raw:
                raw.append(match)
        if refused:
            names = ", ".join(f"“{v}”" for v in refused)
            self.add_error(
                "status", f"Unknown status {names}: use {STATUS_HELP}, or a status QFlow sends."
            )
        start, end = data.get("start"), data.get("end")
        return Filters(
            statuses=classes,
            raw_statuses=tuple(raw),
            range=data.get("range") or DEFAULT_RANGE,
            start=start,
            end=end,
            # A date-only end has become the next midnight: exclusive. A date-time: inclusive.
            end_inclusive=end is not None and not is_date_only(self.data.get("end", "").strip()),
            start_text=self.data.get("start", "").strip() if start else "",
            end_text=self.data.get("end", "").strip() if end else "",
            workflow=data.get("workflow"),
            source=data.get("source") or "",
            cloud=data.get("cloud") or "",
            region=data.get("region") or "",
            q=data.get("q") or "",
            error=(data.get("error") or "").strip(),
            failure=data.get("failure") or "",
            triage=data.get("triage") or "",
            sort=data.get("sort") or DEFAULT_SORT,
            page=data.get("page") or 1,
            asof=data.get("asof"),
            after=data.get("after") or "",
            before=data.get("before") or "",
        )


@dataclass(frozen=True)
class Filters:
    statuses: tuple[str, ...] = ()
    raw_statuses: tuple[str, ...] = ()  # statuses as QFlow spells them (`Partial`)
    range: str = DEFAULT_RANGE
    start: datetime | None = None
    end: datetime | None = None
    end_inclusive: bool = False
    start_text: str = ""
    end_text: str = ""
    workflow: uuid.UUID | None = None
    source: str = ""
    cloud: str = ""
    region: str = ""
    q: str = ""
    error: str = ""
    failure: str = ""
    triage: str = ""  # a TriageState value, or TRIAGE_NONE
    sort: str = DEFAULT_SORT
    page: int = 1
    asof: datetime | None = None
    after: str = ""  # a row's sort key (listing.encode_cursor): the rows after it
    before: str = ""  # ... the rows before it

    @property
    def id_prefix(self) -> str:
        """The search, when it is the start of an execution id (6 to 31 hex digits, dashes
        allowed): such a search covers every date, not only the range."""
        digits = self.q.strip().lower().replace("-", "")
        return digits if _ID_PREFIX.fullmatch(digits) and _HEXISH.fullmatch(self.q.strip()) else ""

    @property
    def full_id(self) -> uuid.UUID | None:
        """The search, when it is a whole execution id: the list opens that execution."""
        text = self.q.strip()
        if len(text.replace("-", "")) != 32 or not _HEXISH.fullmatch(text):
            return None
        try:
            return uuid.UUID(text)
        except ValueError:
            return None

    @property
    def custom_dates(self) -> bool:
        """Absolute start/end given: they win over the preset range."""
        return self.start is not None or self.end is not None

    def window(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """The time range as (start, end); None is open. An id search covers every date."""
        if self.id_prefix:
            return None, None
        if self.custom_dates:
            return self.start, self.end
        delta = RANGES[self.range][2]
        return (now - delta if delta else None), None

    def includes_now(self, now: datetime) -> bool:
        return self.end is None or self.end >= now

    def params(self) -> dict[str, list[str]]:
        """The canonical query string of these filters (bad values left out)."""
        out: dict[str, list[str]] = {}
        if self.statuses or self.raw_statuses:
            out["status"] = [*self.statuses, *self.raw_statuses]
        if self.start_text:
            out["start"] = [self.start_text]
        if self.end_text:
            out["end"] = [self.end_text]
        if not self.custom_dates:
            out["range"] = [self.range]
        for name in ("source", "cloud", "region", "q", "error", "failure", "triage"):
            if getattr(self, name):
                out[name] = [getattr(self, name)]
        if self.workflow:
            out["workflow"] = [str(self.workflow)]
        if self.sort != DEFAULT_SORT:
            out["sort"] = [self.sort]
        return out


def is_date_only(text: str) -> bool:
    """`2025-11-23`, not `2025-11-23T10:00`. Raises ValueError for an impossible date."""
    return len(text) <= 10 and parse_date(text) is not None


# --- the execution page's and the step views' query strings ----------------------------------


class QueryText(forms.Field):
    """A query parameter's text as given (not stripped; "" when absent). What it means, and
    which values are ignored, is its form's `clean_<name>`."""

    def to_python(self, value: object) -> str:
        return "" if value is None else str(value)


class ExecutionPageForm(forms.Form):
    """The execution page: `?step=<node id>` opens that step's panel under the page, and
    `?graph=force` draws the graph however big it is. A bad `graph` is ignored."""

    step = QueryText(required=False)
    graph = forms.ChoiceField(required=False, choices=[("", ""), ("force", "force")])

    def clean_step(self) -> str:
        return self.cleaned_data["step"][:300]

    @property
    def selected_step(self) -> str:
        """The step whose panel to open ("": none). After is_valid(), like the others."""
        return self.cleaned_data.get("step", "")

    @property
    def force_graph(self) -> bool:
        return self.cleaned_data.get("graph") == "force"


# Parameters that ask a payload's tree view for more than its first view.
TREE_VIEW_PARAMS = ("path", "q", "view", "offset", "full")


class PayloadTreeForm(forms.Form):
    """A payload's tree view. Without any of TREE_VIEW_PARAMS: the first view, or with
    `poll=<when the fetch was asked for>` its poll. Else a subtree at `path` (a JSON
    pointer), its children from `offset`, a table (`view=table`) or a row (`view=row`), the
    whole of a long string (`full=1`) or a search (`q`, at most 200 characters).
    A bad `offset` (not a whole number, or negative) answers "No value at this path."; a
    bad `poll` is a first view."""

    path = QueryText(required=False)
    q = QueryText(required=False)
    view = QueryText(required=False)
    offset = QueryText(required=False)
    full = QueryText(required=False)
    poll = QueryText(required=False)

    def clean_offset(self) -> int:
        try:
            value = int(self.cleaned_data["offset"] or 0)
        except ValueError:
            raise forms.ValidationError("Use a whole number.") from None
        if value < 0:
            raise forms.ValidationError("Use a number from 0.")
        return value

    def clean_full(self) -> bool:
        return self.cleaned_data["full"] == "1"

    def clean_poll(self) -> float | None:
        try:
            value = float(self.cleaned_data["poll"])
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    @property
    def asks_for_view(self) -> bool:
        return any(name in self.data for name in TREE_VIEW_PARAMS)


class PayloadDownloadForm(forms.Form):
    """A payload's download: the whole of it, or the value at `path` (a JSON pointer)."""

    path = QueryText(required=False)
