"""Alerts on saved views: after each sync pass, executions that newly entered a view are
sent to its subscriptions' destinations, each at most once per subscription.

For each active subscription that is not backing off:
1. Candidates: executions matching the view (the list's own filter code) synced after the
   subscription's watermark, without a Delivery row yet. Each gets one, `pending`
   (INSERT … ON CONFLICT DO NOTHING on the unique pair: a second task adds nothing).
2. Claim: pending rows become `sending` with this pass's claim id in one conditional
   UPDATE, so two tasks never claim the same row.
3. Send (one message each, or one digest); sent rows become `sent`. A destination that
   fails puts its rows back to `pending` and backs the subscription off (1, 2, 4 … minutes,
   capped); the next pass after that retries. A claim left `sending` by a killed worker
   becomes `unknown` and is never sent again: at most once, not at least once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from qflowui.core.masking import mask_text
from qflowui.mirror.failures import FAILURE_CLASSES, first_line
from qflowui.mirror.models import Execution
from qflowui.teamviews import destinations
from qflowui.teamviews.matching import matching, parse_query
from qflowui.teamviews.models import Delivery, SavedView, Subscription, new_claim

logger = logging.getLogger(__name__)

# A pass never moves a watermark closer to now than this: a row a slow transaction commits
# with an older last_synced_at is still seen (the Delivery row stops a second message).
WATERMARK_LAG = timedelta(minutes=2)
CANDIDATES_PER_PASS = 500
MESSAGES_PER_PASS = 20  # "each" mode: the rest waits for the next pass
DIGEST_CLAIM = 1000  # executions one digest covers
DIGEST_LINES = 20  # listed in a digest; "and N more" after
BASELINE_LIMIT = 5000  # executions in the view when subscribing, recorded as not news
STALE_SENDING = timedelta(minutes=15)  # longer than a pass's sends can take


@dataclass
class PassResult:
    subscriptions: int = 0
    sent: int = 0  # executions delivered
    messages: int = 0
    failed: list[int] = field(default_factory=list)  # subscriptions whose destination failed


def subscription_baseline(subscription: Subscription, *, now: datetime | None = None) -> int:
    """What is in the view now is not news: the watermark is now, and the executions in the
    view (up to BASELINE_LIMIT, most recently synced) get a `baseline` row, so a later sync
    that touches them again sends nothing."""
    now = now or timezone.now()
    ids = list(
        matching(parse_query(subscription.view.query).filters, now=now)
        .order_by("-last_synced_at")
        .values_list("pk", flat=True)[:BASELINE_LIMIT]
    )
    Delivery.objects.bulk_create(
        [
            Delivery(subscription=subscription, execution_id=pk, state=Delivery.BASELINE)
            for pk in ids
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    Subscription.objects.filter(pk=subscription.pk).update(watermark=now)
    subscription.watermark = now
    return len(ids)


def alerts_pass(*, now: datetime | None = None) -> PassResult:
    now = now or timezone.now()
    Delivery.objects.filter(state=Delivery.SENDING, claimed_at__lt=now - STALE_SENDING).update(
        state=Delivery.UNKNOWN, claim=None
    )
    result = PassResult()
    due = (
        Subscription.objects.filter(active=True)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .select_related("view")
        .order_by("pk")
    )
    for subscription in due:
        result.subscriptions += 1
        try:
            subscription_pass(subscription, now=now, result=result)
        except Exception:  # one broken subscription must not stop the others
            logger.exception("alert pass failed for subscription %s", subscription.pk)
    return result


def subscription_pass(
    subscription: Subscription, *, now: datetime, result: PassResult | None = None
) -> None:
    result = result or PassResult()
    _collect(subscription, now)
    claim = new_claim()
    limit = DIGEST_CLAIM if subscription.mode == Subscription.DIGEST else MESSAGES_PER_PASS
    pending = list(
        Delivery.objects.filter(subscription=subscription, state=Delivery.PENDING)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if not pending:
        return
    Delivery.objects.filter(pk__in=pending, state=Delivery.PENDING).update(
        state=Delivery.SENDING, claim=claim, claimed_at=now, attempts=F("attempts") + 1
    )
    claimed = list(
        Delivery.objects.filter(claim=claim, state=Delivery.SENDING)
        .select_related("execution__workflow")
        .order_by("execution__started_at", "pk")
    )
    if not claimed:
        return  # another task claimed them first
    try:
        url = destinations.decrypt(subscription.destination_encrypted)
    except destinations.DestinationError as exc:
        _release(claim)
        _failed(subscription, str(exc), now)
        result.failed.append(subscription.pk)
        return
    view = subscription.view
    batches = [claimed] if subscription.mode == Subscription.DIGEST else [[d] for d in claimed]
    for batch in batches:
        title, body = (
            digest_message(view, [d.execution for d in batch])
            if subscription.mode == Subscription.DIGEST
            else execution_message(view, batch[0].execution)
        )
        answer = destinations.send(url, title=title, body=body)
        if not answer.ok:
            _release(claim)
            _failed(subscription, destinations.summary(answer), now)
            result.failed.append(subscription.pk)
            return
        Delivery.objects.filter(pk__in=[d.pk for d in batch], claim=claim).update(
            state=Delivery.SENT, sent_at=timezone.now(), claim=None
        )
        result.messages += 1
        result.sent += len(batch)
    Subscription.objects.filter(pk=subscription.pk).update(
        consecutive_failures=0, next_attempt_at=None, last_error="", last_sent_at=timezone.now()
    )
    logger.info(
        "alerts sent for view %s to %s: %d execution(s)",
        view.pk,
        subscription.destination_shown,
        len(claimed),
    )


def _collect(subscription: Subscription, now: datetime) -> None:
    """Give each execution that newly entered the view a pending Delivery row."""
    delivered = Delivery.objects.filter(subscription=subscription).values("execution_id")
    rows = list(
        matching(parse_query(subscription.view.query).filters, now=now)
        .filter(last_synced_at__gt=subscription.watermark)
        .exclude(pk__in=delivered)
        .order_by("last_synced_at", "pk")
        .values_list("pk", "last_synced_at")[:CANDIDATES_PER_PASS]
    )
    Delivery.objects.bulk_create(
        [Delivery(subscription=subscription, execution_id=pk) for pk, _ in rows],
        ignore_conflicts=True,
    )
    ceiling = now - WATERMARK_LAG
    if len(rows) == CANDIDATES_PER_PASS:  # more to come: stop just before the last one seen
        ceiling = min(ceiling, rows[-1][1] - timedelta(microseconds=1))
    if ceiling > subscription.watermark:
        Subscription.objects.filter(pk=subscription.pk, watermark__lt=ceiling).update(
            watermark=ceiling
        )


def _release(claim: object) -> None:
    Delivery.objects.filter(claim=claim, state=Delivery.SENDING).update(
        state=Delivery.PENDING, claim=None
    )


def retry_delay(failures: int) -> timedelta:
    base = settings.QFLOWUI_ALERT_RETRY_SECONDS
    cap = settings.QFLOWUI_ALERT_RETRY_MAX_SECONDS
    return timedelta(seconds=min(cap, base * 2 ** max(0, failures - 1)))


def _failed(subscription: Subscription, error: str, now: datetime) -> None:
    failures = subscription.consecutive_failures + 1
    Subscription.objects.filter(pk=subscription.pk).update(
        consecutive_failures=F("consecutive_failures") + 1,
        last_error=mask_text(error)[:1000],
        last_error_at=now,
        next_attempt_at=now + retry_delay(failures),
    )
    logger.warning(
        "alert destination %s of view %s failed (%d in a row): %s",
        subscription.destination_shown,
        subscription.view_id,
        failures,
        mask_text(error)[:300],
    )


# --- the messages -------------------------------------------------------------------------


def absolute(path: str) -> str:
    return settings.QFLOWUI_BASE_URL.rstrip("/") + path


def execution_link(execution: Execution) -> str:
    query = None
    if execution.status_class in FAILURE_CLASSES and execution.failure_node_id:
        query = {"step": execution.failure_node_id}
    return absolute(reverse("executions:detail", args=[str(execution.pk)], query=query))


def _facts(execution: Execution) -> dict[str, str]:
    return {
        "workflow": execution.workflow.name or str(execution.workflow_id),
        "status": execution.status or execution.status_class,
        "step": execution.failure_step or execution.failure_node_id,
        "error": mask_text(first_line(execution.failure_message))[:300],
    }


def execution_message(view: SavedView, execution: Execution) -> tuple[str, str]:
    facts = _facts(execution)
    title = f"{view.name}: {facts['workflow']} {facts['status']}"
    lines = [
        f"Workflow: {facts['workflow']}",
        f"Status: {facts['status']}",
    ]
    if facts["step"]:
        lines.append(f"Failing step: {facts['step']}")
    if facts["error"]:
        lines.append(f"Error: {facts['error']}")
    started = execution.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    lines += [
        f"Started: {started}",
        f"Execution: {execution_link(execution)}",
        f"Saved view: {view.name} — {absolute(reverse('teamviews:detail', args=[view.pk]))}",
    ]
    return title[:250], "\n".join(lines)


def digest_message(view: SavedView, executions: list[Execution]) -> tuple[str, str]:
    n = len(executions)
    title = f"{view.name}: {n} new execution{'s' if n != 1 else ''}"
    lines = []
    for execution in executions[:DIGEST_LINES]:
        facts = _facts(execution)
        parts = [facts["workflow"], facts["status"]]
        if facts["step"]:
            parts.append(f"step {facts['step']}")
        if facts["error"]:
            parts.append(facts["error"])
        lines.append("- " + " · ".join(parts) + f" — {execution_link(execution)}")
    if n > DIGEST_LINES:
        lines.append(f"… and {n - DIGEST_LINES} more")
    lines.append(
        f"Saved view: {view.name} — {absolute(reverse('teamviews:detail', args=[view.pk]))}"
    )
    return title[:250], "\n".join(lines)


def sample_message(view: SavedView) -> tuple[str, str]:
    link = absolute(reverse("teamviews:detail", args=[view.pk]))
    return (
        f"{view.name}: test message from qflowui",
        "This is a test of this destination. Alerts for this saved view will look like this:\n"
        "Workflow: <workflow>\nStatus: Failed\nFailing step: <step>\nError: <first line>\n"
        f"Saved view: {view.name} — {link}",
    )
