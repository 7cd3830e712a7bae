"""The team's audit log: one call records who did what, from where, masked.

Sign-ins, failed sign-ins, lockouts, sign-outs (qflowui/accounts/signals.py), run requests
(qflowui/runs) and every refused attempt land in `AuditEvent` (qflowui/runs/models.py) and
are read by staff at /audit/.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.http import HttpRequest

from qflowui.core.masking import mask
from qflowui.runs.models import AuditEvent

# Sign-in and access events.
LOGIN = "auth.login"
LOGIN_FAILED = "auth.login_failed"
LOCKED_OUT = "auth.locked_out"
UNLOCKED = "auth.unlocked"  # staff cleared a lockout
LOGOUT = "auth.logout"
ACCESS_DENIED = "access.denied"  # signed in, but in neither Viewers nor Runners
AUDIT_DENIED = "audit.denied"

# Exports (recorded by qflowui/executions/evidence_bundle.py).
EVIDENCE_EXPORTED = "evidence.exported"  # who downloaded which execution's evidence bundle

# Run events (recorded by qflowui/runs).
RUN_REQUESTED = "run.requested"
RUN_DUPLICATE = "run.duplicate"  # the same form posted again: no new run
RUN_DENIED = "run.denied"  # no permission
RUN_KEY_CONFLICT = "run.key_conflict"  # idempotency key reused by another user or body

ANONYMOUS = "(anonymous)"
NAME_LENGTH = 150  # AuditEvent.actor_name
TARGET_LENGTH = 200  # AuditEvent.target


def audit_record(
    *,
    action: str,
    request: HttpRequest | None = None,
    user: Any = None,
    actor_name: str | None = None,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record one event. `actor_name` names the actor when there is no user (a name as typed)."""
    user = user if user is not None else getattr(request, "user", None)
    actor = user if user is not None and user.is_authenticated else None
    if actor_name is None:
        actor_name = actor.get_username() if actor else ANONYMOUS
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=actor_name[:NAME_LENGTH],
        action=action,
        target=target[:TARGET_LENGTH],
        detail=mask(detail or {}),
        remote_addr=remote_addr(request),
    )


def remote_addr(request: HttpRequest | None) -> str | None:
    """REMOTE_ADDR only: a forwarded header is the client's word, not a fact."""
    if request is None:
        return None
    value = request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None  # a unix socket, or nothing: no address rather than a broken insert
