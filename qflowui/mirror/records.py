"""From QFlow's records to the mirror's rows: checks, masking, clipping, upserts.

Everything stored is masked here (``execution_fields``, ``step_fields``, ``workflow_apply``).
A record QFlow lists that the mirror cannot hold faithfully (an id that is not a UUID, a
status that is not a string, markup where an execution id belongs) is refused by
``execution_problem`` so that the sync can skip it, count it and go on.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction

from qflowui.core.masking import mask, mask_free_text, mask_variable_strings
from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, Step, Workflow
from qflowui.qflow import types as qt

_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_LINK_KEYS = ("id", "execution", "executionId")

UPDATABLE_FIELDS = (
    "status",
    "status_class",
    "is_terminal",
    "source",
    "execution_type",
    "created_at",
    "started_at",
    "ended_at",
    "updated_at",
    "duration_ms",
    "cloud",
    "region",
    "categories",
    "variables",
    "tags",
    "triggered_by",
    "parent_execution_id",
    "linked_execution_ids",
    "raw",
    "last_synced_at",
    "gone_at",
)


def is_uuid(value: object) -> bool:
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


# --- checks -------------------------------------------------------------------------


def workflow_problem(item: qt.Workflow) -> str | None:
    """Why a listed workflow cannot be stored, or None."""
    if not is_uuid(item.id):
        return "its id is not a UUID"
    return None


def execution_problem(item: qt.Execution) -> str | None:
    """Why a listed execution cannot be stored faithfully, or None when it can."""
    raw = item.raw
    if not is_uuid(item.id):
        return "its id is not a UUID"
    status = raw.get("status")
    if status is not None and not isinstance(status, str):
        return f"its status is a {type(status).__name__}, not a string"
    if item.parent_execution_id is not None and not is_uuid(item.parent_execution_id):
        return "its parentExecutionId is not a UUID"
    linked = raw.get("linkedExecutionIds", raw.get("linkedExecutions"))
    for entry in linked if isinstance(linked, list) else [linked]:
        if entry is None:
            continue
        if isinstance(entry, dict):
            entry = next((entry[k] for k in _LINK_KEYS if entry.get(k)), None)
        if not is_uuid(entry):
            return "a linkedExecutionIds entry is not an execution id"
    return None


# --- fields -------------------------------------------------------------------------


@functools.cache
def _char_limits(model: type) -> dict[str, int]:
    return {
        f.name: f.max_length
        for f in model._meta.get_fields()
        if getattr(f, "max_length", None) and f.get_internal_type() == "CharField"
    }


def clip_to_model(model: type, values: dict) -> dict:
    """Cut QFlow's strings to the columns' sizes: PostgreSQL refuses longer ones."""
    limits = _char_limits(model)
    out = {}
    for name, value in values.items():
        limit = limits.get(name)
        if limit and isinstance(value, str) and len(value) > limit:
            value = value[: limit - 1] + "…"
        out[name] = value
    return out


def _uuid_or_none(value: object) -> str | None:
    return value if is_uuid(value) else None


def execution_fields(item: qt.Execution, workflow: Workflow, now: datetime) -> dict:
    """The mirror's columns for an execution QFlow returned (masked).

    An id field that is not a UUID is left out rather than stored (the sync refuses such a
    record before it gets here; a page refreshing one execution still stores the rest).
    """
    cls = st.status_class(item.status)
    started = item.start_date or item.created_at or now
    ended = item.end_date if cls != st.RUNNING else None
    duration = int((ended - started).total_seconds() * 1000) if ended else None
    categories = mask(item.categories or {})
    raw = dict(item.raw)
    raw.pop("steps", None)
    return clip_to_model(
        Execution,
        {
            "status": item.status or "",
            "status_class": cls,
            "is_terminal": cls in st.TERMINAL_CLASSES or (cls == st.OTHER and ended is not None),
            "source": item.source or "",
            "execution_type": item.execution_type or "",
            "created_at": item.created_at,
            "started_at": started,
            "ended_at": ended,
            "updated_at": item.updated_at,
            "duration_ms": duration if duration is None or duration >= 0 else None,
            "cloud": _first_str(categories.get("cloud_providers")) or workflow.cloud,
            "region": _first_str(categories.get("regions")),
            "categories": categories,
            "variables": mask_variable_strings(list(item.variables or [])),
            "tags": mask(list(item.tags or [])),
            "triggered_by": item.created_by or "",
            "parent_execution_id": _uuid_or_none(item.parent_execution_id),
            "linked_execution_ids": [i for i in item.linked_execution_ids or [] if is_uuid(i)],
            "raw": mask(raw),
            "last_synced_at": now,
            # QFlow returned it: it is not gone (any more).
            "gone_at": None,
        },
    )


def _first_str(values: object) -> str:
    if isinstance(values, list):
        for value in values:
            if isinstance(value, str) and value:
                return value[:64]
    return ""


def step_fields(item: qt.Step, now: datetime) -> dict:
    raw = dict(item.raw)
    raw.pop("input", None)
    raw.pop("output", None)
    return clip_to_model(
        Step,
        {
            "step_id": item.id or "",
            "node_type": item.node_type or "",
            "status": item.status or "",
            "status_class": st.status_class(item.status),
            "event_order": item.event_order,
            "started_at": item.start_date,
            "ended_at": item.end_date,
            "error": mask_free_text(item.error or ""),
            "raw": mask(raw),
            "last_synced_at": now,
        },
    )


def upsert_steps(execution: Execution, items: list[qt.Step], now: datetime) -> None:
    """Store an execution's steps, and why it failed (the failing step and its error)."""
    from qflowui.mirror.failures import failure_apply

    with transaction.atomic():
        for item in items:
            Step.objects.update_or_create(
                execution=execution, node_id=item.node_id[:200], defaults=step_fields(item, now)
            )
        failure_apply(execution)


def workflow_apply(workflow: Workflow, item: qt.Workflow) -> None:
    workflow.name = mask_free_text(item.name or "") or workflow.name
    workflow.description = mask_free_text(item.description or "") or workflow.description
    workflow.category = mask_free_text(item.category or "") or workflow.category
    if item.cloud_providers:
        workflow.cloud_providers = item.cloud_providers
        workflow.cloud = item.cloud_providers[0] if len(item.cloud_providers) == 1 else "Multi"
    if item.deployed is not None:
        workflow.deployed = item.deployed
    workflow.tags = mask(list(item.tags)) if item.tags else workflow.tags
    workflow.created_at = item.created_at or workflow.created_at
    workflow.updated_at = item.updated_at or workflow.updated_at
    if item.definition is not None:
        workflow.definition = mask(item.definition.raw)
        workflow.revision = item.revision or ""
        if not workflow.cloud_providers:
            workflow.cloud = _cloud_from_definition(item.definition.raw)
    elif item.revision and not workflow.revision:
        workflow.revision = ""  # details not fetched yet: force a fetch next time
    raw = dict(item.raw)
    raw.pop("definition", None)
    workflow.raw = mask(raw)
    for name in _char_limits(Workflow):
        setattr(workflow, name, clip_to_model(Workflow, {name: getattr(workflow, name)})[name])


def _cloud_from_definition(definition: dict) -> str:
    keys = {v.get("key") for v in definition.get("variables", []) if isinstance(v, dict)}
    for key, cloud in (
        ("credentials_azure", "Azure"),
        ("credentials_gcp", "GCP"),
        ("oci_region", "OCI"),
    ):
        if key in keys:
            return cloud
    return "AWS" if "region" in keys else ""


# --- upserts ------------------------------------------------------------------------


def upsert_listed(
    items: Iterable[qt.Execution], workflow: Workflow, now: datetime
) -> tuple[int, int]:
    """Insert new executions and update changed ones; returns (new, updated).

    Keyed on the execution id: never a duplicate, never a delete. An answer never replaces a
    newer one already stored (``updatedAt``), and a finished execution never turns back into
    a running one, whoever stored it (a page, a run task, another pass).
    """
    by_id: dict[str, qt.Execution] = {}
    for item in items:
        by_id[str(uuid.UUID(item.id))] = item  # a page may repeat a row: the last one wins
    if not by_id:
        return 0, 0
    existing = {str(e.id): e for e in Execution.objects.filter(id__in=list(by_id))}
    to_create: list[Execution] = []
    to_update: list[Execution] = []
    for execution_id, item in by_id.items():
        fields = execution_fields(item, workflow, now)
        current = existing.get(execution_id)
        if current is None:
            to_create.append(Execution(id=execution_id, workflow=workflow, **fields))
            continue
        if _keep_stored(current, fields):
            continue
        for name, value in fields.items():
            setattr(current, name, value)
        to_update.append(current)
    with transaction.atomic():
        Execution.objects.bulk_create(to_create, ignore_conflicts=True)
        if to_update:
            Execution.objects.bulk_update(to_update, fields=list(UPDATABLE_FIELDS))
    return len(to_create), len(to_update)


def _keep_stored(current: Execution, fields: dict) -> bool:
    """True when the stored row is as new as QFlow's answer, or newer."""
    updated_at = fields["updated_at"]
    if current.is_terminal and not fields["is_terminal"]:
        return True
    if current.updated_at and updated_at and current.updated_at > updated_at:
        return True
    if current.gone_at is not None:
        return False  # listed again: no longer gone
    return (
        current.is_terminal
        and current.updated_at == updated_at
        and current.status == fields["status"]
    )
