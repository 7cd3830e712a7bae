"""The triage section of an execution page, with its data (the page's view knows nothing of
triage: `{% triage_section execution.id %}` in templates/triage/_execution_triage.html)."""

from __future__ import annotations

import uuid
from typing import Any

from django import template
from django.utils import timezone

from qflowui.triage.notes import triage_panel

register = template.Library()


@register.inclusion_tag("triage/_panel.html", takes_context=True)
def triage_section(context: template.Context, execution_id: uuid.UUID | str) -> dict[str, Any]:
    """The section's body for the signed-in user (two queries). The CSRF token follows."""
    user = context.get("user")
    return {"panel": triage_panel(execution_id, user, now=timezone.now()), "edit": {}}
