"""QFlow's status strings are open: each maps to one of a few classes we filter and color by.

The wire spelling stays as QFlow sent it (shown verbatim); the class is ours.
"""

from __future__ import annotations

SUCCESS = "success"
FAILED = "failed"
RUNNING = "running"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
OTHER = "other"

CLASSES = (SUCCESS, FAILED, RUNNING, CANCELLED, TIMED_OUT, OTHER)
TERMINAL_CLASSES = frozenset({SUCCESS, FAILED, CANCELLED, TIMED_OUT})
LABELS = {
    SUCCESS: "Success",
    FAILED: "Failed",
    RUNNING: "Running",
    CANCELLED: "Cancelled",
    TIMED_OUT: "Timed out",
    OTHER: "Other",
}

_SYNONYMS = {
    SUCCESS: {"success", "succeeded", "successful", "completed", "complete", "done", "ok"},
    FAILED: {"failed", "failure", "error", "errored", "faulted"},
    RUNNING: {
        "running",
        "in_progress",
        "inprogress",
        "started",
        "pending",
        "queued",
        "scheduled",
        "waiting",
        "paused",
    },
    CANCELLED: {"cancelled", "canceled", "terminated", "aborted", "stopped"},
    TIMED_OUT: {"timed_out", "timedout", "timeout"},
}
_LOOKUP = {word: cls for cls, words in _SYNONYMS.items() for word in words}


def _key(status: str) -> str:
    return "_".join(status.strip().lower().replace("-", " ").split())


def status_class(status: str | None) -> str:
    """The class of a QFlow status string; OTHER when it is not one we know."""
    if not status:
        return OTHER
    return _LOOKUP.get(_key(status), OTHER)


def parse_status_class(value: str) -> str | None:
    """A class named by a user (`failed`, `Failed`, `timed out`...), or None if unknown."""
    key = _key(value)
    if key in CLASSES:
        return key
    return _LOOKUP.get(key)


def is_terminal(status: str | None) -> bool:
    return status_class(status) in TERMINAL_CLASSES
