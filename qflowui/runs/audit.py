"""The audit log API the run code calls; it lives in qflowui/accounts/audit.py."""

from __future__ import annotations

from qflowui.accounts.audit import (
    AUDIT_DENIED,
    RUN_DENIED,
    RUN_DUPLICATE,
    RUN_KEY_CONFLICT,
    RUN_REQUESTED,
    audit_record,
)

# A Runner decided a needs_review run: detail {"decision": "started" (with "execution") or
# "not_started"}. Under "run." so the audit log's run filter shows it.
RUN_REVIEWED = "run.reviewed"

__all__ = [
    "AUDIT_DENIED",
    "RUN_DENIED",
    "RUN_DUPLICATE",
    "RUN_KEY_CONFLICT",
    "RUN_REQUESTED",
    "RUN_REVIEWED",
    "audit_record",
]
