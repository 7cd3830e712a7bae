"""Fill the mirror from QFlow: workflows, then each workflow's executions, newest first.

Incremental: once a workflow has been backfilled over the API's 30-day window, a pass stops
paging at the first page that holds a known, unchanged, terminal execution, and revisits the
executions it still holds as not terminal. Rows are upserted, never deleted. A pass stays
under 80% of the rate-limit budget QFlow advertises and records what it did in `SyncRun`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from qflowui.core.masking import mask, mask_free_text, mask_text, mask_variable_strings
from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, Step, SyncRun, Workflow
from qflowui.qflow import QflowClient, client_from_settings
from qflowui.qflow import types as qt
from qflowui.qflow.errors import QflowError, QflowNotFound, QflowRateLimited, QflowUnavailable

logger = logging.getLogger(__name__)

API_WINDOW = timedelta(days=30)
PAGE_SIZE = 100
BUDGET_SHARE = 0.8  # never use more than this share of the advertised rate limit
CLAIM_FOR = timedelta(minutes=10)


class BudgetExhausted(Exception):
    """The pass has used the share of the rate limit it may use; it resumes next time."""


@dataclass
class Budget:
    """How many more upstream calls this pass may make."""

    client: QflowClient
    allowed: int | None  # None: no limit advertised yet
    start_calls: int = 0

    def used(self) -> int:
        return self.client.calls - self.start_calls

    def check(self, need: int = 1) -> None:
        if self.allowed is not None and self.used() + need > self.allowed:
            raise BudgetExhausted(f"rate-limit budget reached after {self.used()} calls")
        info = self.client.rate_limit
        if (
            info
            and info.limit
            and info.remaining is not None
            and info.remaining - need < info.limit * (1 - BUDGET_SHARE)
        ):
            raise BudgetExhausted(
                f"QFlow reports {info.remaining} of {info.limit} calls left in its window"
            )


@dataclass
class PassCounts:
    workflows: int = 0
    new: int = 0
    updated: int = 0
    notes: list[str] = field(default_factory=list)


def mirror_sync(
    *, client: QflowClient | None = None, workflow_ids: list[str] | None = None
) -> SyncRun:
    """Run one sync pass and return its record."""
    now = timezone.now()
    run = SyncRun.objects.create(started_at=now)
    client = client or client_from_settings()
    budget = Budget(client=client, allowed=_allowed_calls(now), start_calls=client.calls)
    counts = PassCounts()
    try:
        if budget.allowed is not None and budget.allowed <= 0:
            raise BudgetExhausted("rate-limit budget used up for this window; waiting")
        workflows = _sync_workflows(client, budget, counts, now)
        for workflow in workflows:
            if workflow_ids and str(workflow.id) not in workflow_ids:
                continue
            if not _claim(workflow, now):
                counts.notes.append(f"{workflow.name or workflow.id}: another sync holds it")
                continue
            try:
                _sync_executions(client, budget, counts, workflow, now)
            finally:
                Workflow.objects.filter(pk=workflow.pk).update(sync_claimed_until=None)
        run.ok = True
    except BudgetExhausted as exc:
        run.ok = True
        counts.notes.append(str(exc))
    except QflowRateLimited as exc:
        run.error = f"QFlow asked us to wait {exc.wait_seconds or '?'} s: {exc}"
    except QflowUnavailable as exc:
        run.upstream_down = True
        run.error = f"QFlow unreachable: {exc}"
    except QflowError as exc:
        run.error = f"QFlow error: {exc}"
    finally:
        run.finished_at = timezone.now()
        run.api_calls = client.calls - budget.start_calls
        run.workflows_seen = counts.workflows
        run.executions_new = counts.new
        run.executions_updated = counts.updated
        run.note = "; ".join(counts.notes)[:300]
        info = client.rate_limit
        if info is not None:
            run.rate_limit = info.limit
            run.rate_window_sec = info.window_sec
        run.save()
    if run.error:
        logger.warning("sync pass failed: %s", mask_text(run.error))
    return run


def _allowed_calls(now: datetime) -> int | None:
    """Calls this pass may make: 80% of the advertised limit minus what recent passes used."""
    last = SyncRun.objects.exclude(rate_limit=None).order_by("-started_at").first()
    if last is None or not last.rate_limit or not last.rate_window_sec:
        return None
    since = now - timedelta(seconds=last.rate_window_sec)
    used = SyncRun.objects.filter(started_at__gte=since).aggregate(n=Sum("api_calls"))["n"] or 0
    return int(last.rate_limit * BUDGET_SHARE) - used


def _claim(workflow: Workflow, now: datetime) -> bool:
    """Single flight: only one pass syncs a workflow at a time (works across processes)."""
    free = Q(sync_claimed_until__isnull=True) | Q(sync_claimed_until__lt=now)
    claimed = Workflow.objects.filter(free, pk=workflow.pk).update(
        sync_claimed_until=now + CLAIM_FOR
    )
    return claimed == 1


def _sync_workflows(
    client: QflowClient, budget: Budget, counts: PassCounts, now: datetime
) -> list[Workflow]:
    budget.check()
    seen: list[Workflow] = []
    for item in client.iter_workflows(page_size=PAGE_SIZE):
        workflow, _ = Workflow.objects.get_or_create(pk=item.id)
        workflow_apply(workflow, item)
        if item.definition is None and (
            not workflow.definition or workflow.revision != item.revision
        ):
            budget.check()
            try:
                workflow_apply(workflow, client.get_workflow(item.id))
            except QflowNotFound:
                counts.notes.append(f"workflow {item.id} vanished while syncing")
        workflow.last_synced_at = now
        workflow.save()
        seen.append(workflow)
    counts.workflows = len(seen)
    return seen


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


def _sync_executions(
    client: QflowClient,
    budget: Budget,
    counts: PassCounts,
    workflow: Workflow,
    now: datetime,
) -> None:
    seen: set[str] = set()
    page_number = 1
    complete = False
    while True:
        budget.check()
        page = client.list_executions(
            str(workflow.id),
            page_number=page_number,
            page_size=PAGE_SIZE,
            start_at=now - API_WINDOW,
            order="-createdAt",
        )
        unchanged_terminal = _upsert_executions(page.items, workflow, counts, now)
        seen.update(item.id for item in page.items)
        if not page.items or page_number * PAGE_SIZE >= page.total:
            complete = True
            break
        if workflow.backfilled and unchanged_terminal:
            break
        page_number += 1
    if complete and not workflow.backfilled:
        workflow.backfilled = True
        Workflow.objects.filter(pk=workflow.pk).update(backfilled=True)
    _revisit_unfinished(client, budget, counts, workflow, seen, now)


def _revisit_unfinished(
    client: QflowClient,
    budget: Budget,
    counts: PassCounts,
    workflow: Workflow,
    seen: set[str],
    now: datetime,
) -> None:
    pending = Execution.objects.filter(workflow=workflow, is_terminal=False).values_list(
        "id", flat=True
    )
    for execution_id in pending:
        if str(execution_id) in seen:
            continue
        budget.check()
        try:
            item = client.get_execution(str(execution_id))
        except QflowNotFound:
            continue  # past the API window: the mirror keeps what it last saw
        _upsert_executions([item], workflow, counts, now)


def _upsert_executions(
    items: list[qt.Execution], workflow: Workflow, counts: PassCounts, now: datetime
) -> bool:
    """Insert new executions, update changed ones. True if any was known, unchanged, terminal."""
    if not items:
        return False
    existing = {str(e.id): e for e in Execution.objects.filter(id__in=[i.id for i in items])}
    to_create: list[Execution] = []
    to_update: list[Execution] = []
    unchanged_terminal = False
    for item in items:
        fields = execution_fields(item, workflow, now)
        current = existing.get(str(item.id))
        if current is None:
            to_create.append(Execution(id=item.id, workflow=workflow, **fields))
            continue
        if (
            current.is_terminal
            and current.updated_at == fields["updated_at"]
            and (current.status == fields["status"])
        ):
            unchanged_terminal = True
            continue
        for name, value in fields.items():
            setattr(current, name, value)
        to_update.append(current)
    with transaction.atomic():
        Execution.objects.bulk_create(to_create, ignore_conflicts=True)
        if to_update:
            Execution.objects.bulk_update(to_update, fields=list(UPDATABLE_FIELDS))
    counts.new += len(to_create)
    counts.updated += len(to_update)
    return unchanged_terminal


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
)


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


def execution_fields(item: qt.Execution, workflow: Workflow, now: datetime) -> dict:
    """The mirror's columns for an execution QFlow returned (masked)."""
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
            "parent_execution_id": item.parent_execution_id or None,
            "linked_execution_ids": list(item.linked_execution_ids or []),
            "raw": mask(raw),
            "last_synced_at": now,
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
    """Store an execution's steps (used by the detail page's refresh)."""
    with transaction.atomic():
        for item in items:
            Step.objects.update_or_create(
                execution=execution, node_id=item.node_id[:200], defaults=step_fields(item, now)
            )
