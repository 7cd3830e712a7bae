"""Who started an execution from qflowui: the `Run` that submitted it, when there is one.

QFlow only knows its API user (`created_by=<uuid>`); the dashboard knows the person. The runs
app is looked up through the app registry so browsing does not import the run machinery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.apps import apps
from django.urls import reverse


@dataclass(frozen=True)
class StartedBy:
    username: str
    run_id: int
    run_url: str
    at: datetime


def started_by(execution_ids: Iterable[object]) -> dict[str, StartedBy]:
    """The qflowui user behind each of these executions (one query), by execution id."""
    ids = [str(i) for i in execution_ids]
    if not ids:
        return {}
    run_model = apps.get_model("runs", "Run")
    rows = run_model.objects.filter(execution_id__in=ids).values_list(
        "execution_id", "pk", "created_by__username", "queued_at"
    )
    return {
        str(execution_id): StartedBy(username, pk, reverse("runs:detail", args=[pk]), queued_at)
        for execution_id, pk, username, queued_at in rows
    }
