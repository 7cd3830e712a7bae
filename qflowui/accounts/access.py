"""Who may see data: one answer, used by the middleware, the nav and the no-access page.

Signing in is not enough. Executions, payloads and runs are for members of the Viewers or
Runners group (created by the runs migrations) and for staff. A signed-in user in neither
group sees one page saying whom to ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Subquery

from qflowui.accounts.models import Preference

VIEWERS = "Viewers"
RUNNERS = "Runners"
VIEW_GROUPS = (VIEWERS, RUNNERS)

# The URL prefixes and URL namespaces that show data: every view under them is guarded.
GUARDED_PREFIXES = ("/executions/", "/failures/", "/workflows/", "/views/", "/runs/", "/audit/")
GUARDED_NAMESPACES = frozenset(
    {"executions", "triage", "workflows", "teamviews", "execution_triage", "runs"}
)

_FACTS = "_qflowui_user_facts"  # cached on the user object: one query per request


@dataclass(frozen=True)
class UserFacts:
    timezone: str | None  # the user's saved zone, None when they never picked one
    in_view_group: bool  # member of Viewers or Runners


def user_facts(user: Any) -> UserFacts:
    """The user's zone and group membership, in one query, once per request."""
    cached = getattr(user, _FACTS, None)
    if cached is not None:
        return cached
    in_group = Group.objects.filter(user=OuterRef("pk"), name__in=VIEW_GROUPS)
    zone = Preference.objects.filter(user=OuterRef("pk")).values("timezone")[:1]
    row = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values_list(Subquery(zone), Exists(in_group))
        .first()
    )
    facts = UserFacts(timezone=row[0] or None, in_view_group=bool(row[1])) if row else None
    facts = facts or UserFacts(timezone=None, in_view_group=False)
    setattr(user, _FACTS, facts)
    return facts


def can_view(user: Any) -> bool:
    """May this user see executions, payloads and runs?"""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or user.is_superuser:
        return True
    return user_facts(user).in_view_group


def staff_contacts(limit: int = 10) -> list[str]:
    """Whom a user without access can ask: the active staff, by name."""
    users = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .order_by("username")
        .only("username", "first_name", "last_name")[:limit]
    )
    return [user.get_full_name() or user.get_username() for user in users]
