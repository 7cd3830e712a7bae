"""The audit log: one call records who did what, masked, and never fails the caller's action."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest

from qflowui.core.masking import mask
from qflowui.runs.models import AuditEvent

logger = logging.getLogger(__name__)

RUN_REQUESTED = "run.requested"
RUN_DUPLICATE = "run.duplicate"  # the same form posted again: no new run
RUN_DENIED = "run.denied"  # no permission
RUN_KEY_CONFLICT = "run.key_conflict"  # idempotency key reused by another user or body
AUDIT_DENIED = "audit.denied"


def audit_record(
    *,
    action: str,
    request: HttpRequest | None = None,
    user: Any = None,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    user = user if user is not None else getattr(request, "user", None)
    actor = user if user is not None and user.is_authenticated else None
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else "(anonymous)",
        action=action,
        target=target[:200],
        detail=mask(detail or {}),
        remote_addr=_remote_addr(request),
    )


def _remote_addr(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    # REMOTE_ADDR only: a forwarded header is the client's word, not a fact.
    return request.META.get("REMOTE_ADDR") or None
