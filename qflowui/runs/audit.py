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

__all__ = [
    "AUDIT_DENIED",
    "RUN_DENIED",
    "RUN_DUPLICATE",
    "RUN_KEY_CONFLICT",
    "RUN_REQUESTED",
    "audit_record",
]
