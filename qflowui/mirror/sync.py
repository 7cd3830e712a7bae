"""Fill the mirror from QFlow: complete, fair under the rate limit, and honest about it.

A pass lists the workflows (or, when the budget is small, checks the list's first page and
its ``total`` every 10 minutes and reads the whole list hourly), then visits them, **most
overdue first**. A workflow is *hot* while one of its executions is unfinished or when it
started at least two within QFLOW_SYNC_HOT_SECONDS; a hot workflow is due
QFLOW_SYNC_ACTIVE_SECONDS after its last visit, any other QFLOW_SYNC_RARE_SECONDS after it.
Overdue = time since the last visit / that due time; never visited, and workflows a run
started from qflowui marked (``visit_soon``), come first. So:

1. a **hot** visit reads up to HOT_PAGES pages and revisits the workflow's unfinished
   executions; hot visits may use at most half of what is left of the pass's budget after
   the workflow list;
2. any other visit reads one page (with nothing new, one call: QFlow's ``total`` matches
   the mirror's count). Workflows with the same due time go least recently visited first:
   a round robin;
3. **leftovers**, with what budget remains: unfinished walks to their end, revisits, and
   definitions the workflow list did not carry.

When the rate budget cannot pay for both due times, every workflow misses its own by the
same factor (no class is given up for the other), and both are met as soon as it can.

**No gaps.** A workflow's executions are read in a *walk*: newest first over [QFlow's
30-day window start, ``walk_to``], ``walk_to`` fixed when the walk starts so that new
executions do not shift the pages. The cursor (``walk_page``) is stored after every page,
so a walk cut short (budget, error, killed worker) resumes there in a later pass. A walk
is complete when every page was read, or earlier when the mirror's count for the window
plus the records it could not read reaches QFlow's ``total``: with nothing new, one call.
Only then does ``synced_through`` (the watermark) advance. A gap anywhere in the window, a
lost page or rows that moved while we paged, shows as a count below ``total`` and the walk
goes on, down the pages, until it is filled; when every page was read and the count still
falls short the window is listed once more (MAX_RELISTS) before the shortfall is accepted
and logged. Rows are upserted on the execution id, never duplicated, never deleted.

**Fairness bound.** Let N be the workflows, B the calls a pass may make (``Budget``), L the
workflow-list calls (ceil(N / 100), or one page's check, or none), R the visits of
workflows a qflowui run marked, and H the calls hot visits used, at most floor((B - L) / 2).
A visit that is not hot costs one call, and those workflows share one due time, so a pass
visits at least B - L - R - H of them, least recently visited first: every workflow is
visited at least once every ceil(N / (B - L - R - H)) passes, ceil(N / ceil((B - L - R) / 2))
at worst. A workflow's first visit reads its newest executions.

**One budget for every worker.** ``Budget`` counts the calls of every pass in QFlow's rate
window in the cache (``SharedCalls``; Redis, atomic) and takes each call there before
making it, so passes running at once in several Celery workers together stay under
BUDGET_SHARE of the advertised limit.

**Honest status.** The pass's SyncRun is ``ok`` only when every workflow in scope was
brought up to date; else ``partial`` (some were) or ``failed`` (none, because of an error),
with a summary in words ("partial: 11 of 16 workflows, QFlow asked us to wait 600 s, 2
records skipped"). A 409/429 asking to wait is stored (``rate_limited_until``): no pass and
no "Sync now" calls QFlow before it ends.

**Crash safety.** A pass claims a workflow with a lease of QFLOW_SYNC_LEASE_SECONDS,
renewed before every page: a killed worker's claim ends within one lease.

**Hostile data.** A malformed record in a list is skipped with a warning and counted; the
pass goes on. An unfinished execution QFlow answers 404 for is marked ``gone_at`` and never
asked about again (until QFlow lists it again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db.models import Count, DateTimeField, F, Max, Q, Sum, Value
from django.db.models.functions import Least
from django.utils import timezone

from qflowui.core.masking import mask_text
from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, SyncRun, Workflow
from qflowui.mirror.records import (  # noqa: F401 - re-exported: pages and runs import them here
    UPDATABLE_FIELDS,
    clip_to_model,
    execution_fields,
    execution_problem,
    step_fields,
    upsert_listed,
    upsert_steps,
    workflow_apply,
    workflow_problem,
)
from qflowui.qflow import QflowClient, client_from_settings
from qflowui.qflow import types as qt
from qflowui.qflow.errors import (
    QflowAuthError,
    QflowBadResponse,
    QflowConfigError,
    QflowError,
    QflowForbidden,
    QflowNotFound,
    QflowRateLimited,
    QflowUnavailable,
)
from qflowui.qflow.parse import skipping_bad_items
from qflowui.qflow.query import window_start

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
BUDGET_SHARE = 0.8  # never use more than this share of the advertised rate limit
HOT_SHARE = 0.5  # the hot phase's share of what a pass may spend after the workflow list
HOT_PAGES = 3  # pages a hot visit may read; a round-robin visit reads one
# Pages one leftover visit may read: bounds a pass even when QFlow advertises no rate limit
# (or sends a `total` that never ends); the walk goes on in the next pass.
LEFTOVER_PAGES = 100
MAX_RELISTS = 1  # a walk that read every page yet counts short is started over this often
MAX_FAILED_IN_A_ROW = 3  # workflows failing with 5xx one after the other: QFlow is down
# The sync waits this long at most for a 409/429 inside one call; longer waits end the pass
# and are remembered, so a worker never sleeps through its own claims' leases.
MAX_INLINE_RATE_WAIT = 30.0
UNKNOWN_WAIT = timedelta(seconds=60)  # a 409/429 without X-RateLimit-ToWait-Sec
# With a budget too small to visit every workflow in a pass, the workflow list is checked
# this often rather than every pass: one page, and only when its `total` differs from what
# the last full list counted (or it shows a workflow the mirror does not know) is the whole
# list read; in any case the whole list at least every WORKFLOW_LIST_FULL_EVERY.
WORKFLOW_LIST_EVERY = timedelta(minutes=10)
WORKFLOW_LIST_FULL_EVERY = timedelta(hours=1)
MIN_PASS = 2  # calls any pass may make, whatever the pace (plus the list when it reads it)
# Start this far inside QFlow's window, so the client never has to move our startAt (the
# mirror counts exactly the window QFlow was asked about).
WINDOW_MARGIN = timedelta(seconds=5)


def lease() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "QFLOW_SYNC_LEASE_SECONDS", 60)))


def hot_for() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "QFLOW_SYNC_HOT_SECONDS", 3600)))


def active_every() -> float:
    """Seconds between two visits of a hot workflow, when the budget allows."""
    return float(getattr(settings, "QFLOW_SYNC_ACTIVE_SECONDS", 300))


def rare_every() -> float:
    """Seconds between two visits of any other workflow, when the budget allows."""
    return float(getattr(settings, "QFLOW_SYNC_RARE_SECONDS", 3600))


class BudgetExhausted(Exception):
    """The pass has used the share of the rate limit it may use; it resumes next time."""


class PhaseDone(Exception):
    """The hot phase has used its share of the pass's budget."""


class ClaimLost(Exception):
    """Our lease on a workflow ran out and another pass took it over."""


class PassStopped(Exception):
    """Something that ends the whole pass (QFlow down, a rate limit, refused credentials)."""

    def __init__(
        self,
        reason: str,
        error: str,
        *,
        upstream_down: bool = False,
        wait_until: datetime | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason  # short, for the summary
        self.error = error  # longer, for SyncRun.error
        self.upstream_down = upstream_down
        self.wait_until = wait_until


def _ms(moment: datetime) -> datetime:
    """Cut to whole milliseconds: what QFlow's dates carry and what the client sends."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def window_floor(now: datetime) -> datetime:
    """The startAt the sync sends: just inside QFlow's 30-day window."""
    return _ms(window_start(now) + WINDOW_MARGIN)


# --- the budget -----------------------------------------------------------------------


class SharedCalls:
    """The calls every sync pass made within QFlow's rate window, all processes together.

    Counted in Django's cache (Redis in production: INCR is atomic, so several Celery
    workers share one count) in buckets of 1/60 of the window, keyed by time. A pass takes
    calls before it makes them (``take``): it adds them, reads the window's sum, and gives
    them back if the sum went over the share. Whatever the interleaving, the passes whose
    take succeeded never add up to more than the share: the last of them to add read a sum
    holding all of them.
    """

    PREFIX = "mirror:sync-calls"

    def __init__(self, window: int) -> None:
        self.window = max(1, int(window))
        self.bucket = max(1, self.window // 60)

    def _keys(self, now: datetime) -> list[str]:
        last = int(now.timestamp()) // self.bucket
        first = last - math.ceil(self.window / self.bucket) + 1
        return [f"{self.PREFIX}:{self.window}:{b}" for b in range(first, last + 1)]

    def used(self, now: datetime) -> int:
        return sum(int(v) for v in cache.get_many(self._keys(now)).values())

    def add(self, count: int, now: datetime) -> None:
        if not count:
            return
        key = self._keys(now)[-1]
        keep = self.window + 2 * self.bucket
        if not isinstance(caches["default"], RedisCache):
            # Files or memory (one host, tests): not atomic across processes, and Django's
            # incr() there would cut the key's lifetime to the default 300 s.
            cache.set(key, int(cache.get(key) or 0) + count, keep)
            return
        cache.add(key, 0, keep)
        try:
            cache.incr(key, count)
        except ValueError:  # expired between add and incr
            cache.add(key, max(0, count), keep)

    def take(self, count: int, share: int, now: datetime) -> bool:
        self.add(count, now)
        if self.used(now) > share:
            self.add(-count, now)
            return False
        return True


def forget_shared_budget() -> None:
    """Forget the shared call count (tests, benches): the cache keys expire by themselves."""
    cache.delete_many(
        [key for window in (3600,) for key in SharedCalls(window)._keys(timezone.now())]
    )


@dataclass
class Budget:
    """How many upstream calls this pass may make.

    At most BUDGET_SHARE of the advertised limit over its window, counting the calls of
    every pass in that window, those under way in other processes included (SharedCalls;
    the passes recorded in the database bound it too, should the cache be cleared), and
    paced: one pass may make no more than its share of the window spread over the sync
    interval (but never less than two visits, or the workflow list and two visits when it
    reads the list), so a first pass does not spend an hour's budget in one go.
    """

    client: QflowClient
    start_calls: int
    min_pass: int
    interval: float
    history: tuple[int, int] | None  # (limit, window seconds) the last passes recorded
    since: datetime
    phase_cap: int | None = None
    _used_before: dict[int, int] = field(default_factory=dict)
    taken: int = 0  # calls of this pass counted in the shared count
    _shared: SharedCalls | None = None

    def used(self) -> int:
        return self.client.calls - self.start_calls

    def limits(self) -> tuple[int, int] | None:
        info = self.client.rate_limit
        if info and info.limit and info.window_sec:
            return info.limit, info.window_sec
        return self.history

    def allowed(self) -> int | None:
        limits = self.limits()
        if limits is None:
            return None
        limit, window = limits
        share = int(limit * BUDGET_SHARE)
        if window not in self._used_before:
            since = self.since - timedelta(seconds=window)
            used = SyncRun.objects.filter(started_at__gte=since, started_at__lt=self.since)
            self._used_before[window] = used.aggregate(n=Sum("api_calls"))["n"] or 0
        others = self.shared(window).used(timezone.now()) - self.taken
        left = share - max(self._used_before[window], others)
        pace = max(math.ceil(share * self.interval / window), self.min_pass)
        return min(left, pace)

    def shared(self, window: int) -> SharedCalls:
        if self._shared is None or self._shared.window != window:
            self.settle()
            self._shared = SharedCalls(window)
        return self._shared

    def settle(self) -> None:
        """Make the shared count hold exactly the calls this pass made (retries and token
        fetches included; calls taken but not made given back)."""
        if self._shared is not None and self.taken != self.used():
            self._shared.add(self.used() - self.taken, timezone.now())
            self.taken = self.used()

    def check(self, need: int = 1) -> None:
        allowed = self.allowed()
        if allowed is not None and self.used() + need > allowed:
            limit, window = self.limits() or (0, 0)
            raise BudgetExhausted(
                f"rate budget used: {self.used()} calls this pass, "
                f"within {BUDGET_SHARE:.0%} of QFlow's {limit} per {window} s"
            )
        if self.phase_cap is not None and self.used() + need > self.phase_cap:
            raise PhaseDone
        info = self.client.rate_limit
        if (
            info
            and info.limit
            and info.remaining is not None
            and info.remaining - need < info.limit * (1 - BUDGET_SHARE)
        ):
            raise BudgetExhausted(
                f"rate budget used: QFlow reports {info.remaining} of {info.limit} calls left"
            )
        limits = self.limits()
        if limits is not None:
            self._take(need, *limits)

    def _take(self, need: int, limit: int, window: int) -> None:
        shared = self.shared(window)
        if self.taken < self.used():  # calls made beyond those taken: retries, a token
            shared.add(self.used() - self.taken, timezone.now())
            self.taken = self.used()
        want = self.used() + need - self.taken
        if want <= 0:
            return  # taken already by an earlier check that made no call
        share = int(limit * BUDGET_SHARE)
        if not shared.take(want, share, timezone.now()):
            raise BudgetExhausted(
                f"rate budget used: {shared.used(timezone.now())} calls of all sync passes "
                f"within {BUDGET_SHARE:.0%} of QFlow's {limit} per {window} s"
            )
        self.taken += want


# --- one pass -------------------------------------------------------------------------


@dataclass
class Pass:
    run: SyncRun
    client: QflowClient
    budget: Budget
    started: datetime
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    new: int = 0
    updated: int = 0
    gone: int = 0
    listed: int = 0
    scope: list[Workflow] = field(default_factory=list)
    scoped: bool = False  # the scope is known (the workflow list was read, or given up on)
    visited: set = field(default_factory=set)
    synced: set = field(default_factory=set)
    held: set = field(default_factory=set)
    failed: dict = field(default_factory=dict)  # workflow id -> short reason
    skipped: set = field(default_factory=set)  # fingerprints of records left out
    needs_definition: list[Workflow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed_in_a_row: int = 0

    def check_wait(self) -> None:
        """Stop when another pass has learnt that QFlow wants us to wait."""
        until = upstream_wait_until()
        if until is not None:
            raise PassStopped(
                f"QFlow asked us to wait until {until:%H:%M:%S} UTC",
                f"QFlow asked us to wait until {until:%Y-%m-%d %H:%M:%S} UTC",
                wait_until=until,
            )

    def fail(self, workflow: Workflow, exc: QflowError) -> None:
        self.failed[workflow.pk] = str(exc)
        self.notes.append(f"{workflow.name or workflow.pk}: {exc}")
        logger.warning("sync: workflow %s failed: %s", workflow.pk, mask_text(str(exc)))


class _Skips:
    """Collects the records of one list call that are left out, logging each once."""

    def __init__(self, sync: Pass, what: str) -> None:
        self.sync = sync
        self.what = what
        self.count = 0

    def __call__(self, index: int, raw: Any, error: QflowBadResponse) -> None:
        self.refuse(raw, str(error), index=index)

    def refuse(self, raw: Any, reason: str, *, index: int | None = None) -> None:
        self.count += 1
        self.sync.skipped.add(_fingerprint(raw))
        where = f" (item {index + 1})" if index is not None else ""
        logger.warning("sync: skipped a malformed record in %s%s: %s", self.what, where, reason)


def _fingerprint(raw: Any) -> str:
    text = json.dumps(raw, sort_keys=True, default=str) if not isinstance(raw, str) else raw
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def mirror_sync(
    *, client: QflowClient | None = None, workflow_ids: list[str] | None = None
) -> SyncRun:
    """Run one sync pass and return its record.

    While QFlow's last 409/429 wait lasts, no pass runs: the record returned is not saved
    (``skipped`` is True) and no call is made.
    """
    now = timezone.now()
    until = upstream_wait_until(now)
    if until is not None:
        run = SyncRun(
            started_at=now,
            finished_at=now,
            rate_limited_until=until,
            summary=f"skipped: QFlow asked us to wait until {until:%H:%M:%S} UTC; no call made",
        )
        run.skipped = True  # type: ignore[attr-defined]
        logger.info("sync: %s", run.summary)
        return run
    run = SyncRun.objects.create(started_at=now)
    run.skipped = False  # type: ignore[attr-defined]
    client = client or client_from_settings(max_rate_wait=MAX_INLINE_RATE_WAIT)
    budget = Budget(
        client=client,
        start_calls=client.calls,
        min_pass=MIN_PASS,
        interval=float(getattr(settings, "QFLOW_SYNC_INTERVAL_SECONDS", 60)),
        history=_recorded_limits(),
        since=now,
    )
    sync = Pass(run=run, client=client, budget=budget, started=now)
    stop: PassStopped | None = None
    exhausted: str | None = None
    try:
        _scope(sync, workflow_ids)
        _phases(sync)
    except BudgetExhausted as exc:
        exhausted = str(exc)
    except PassStopped as exc:
        stop = exc
    except Exception as exc:
        stop = PassStopped("internal error", f"sync error: {type(exc).__name__}")
        raise
    finally:
        _finish(sync, stop, exhausted)
    return run


def upstream_wait_until(now: datetime | None = None) -> datetime | None:
    """Until when QFlow asked us (409/429) to make no call, or None."""
    now = now or timezone.now()
    return SyncRun.objects.filter(rate_limited_until__gt=now).aggregate(
        until=Max("rate_limited_until")
    )["until"]


def _recorded_limits() -> tuple[int, int] | None:
    last = SyncRun.objects.exclude(rate_limit=None).order_by("-started_at").first()
    if last is None or not last.rate_limit or not last.rate_window_sec:
        return None
    return last.rate_limit, last.rate_window_sec


def _stop_for(exc: QflowError) -> PassStopped:
    if isinstance(exc, QflowRateLimited):
        wait = timedelta(seconds=exc.wait_seconds) if exc.wait_seconds else UNKNOWN_WAIT
        shown = f"{exc.wait_seconds:.0f}" if exc.wait_seconds else "?"
        return PassStopped(
            f"QFlow asked us to wait {shown} s",
            f"QFlow asked us to wait {shown} s: {exc}",
            wait_until=timezone.now() + wait,
        )
    if isinstance(exc, QflowUnavailable):
        return PassStopped("QFlow unreachable", f"QFlow unreachable: {exc}", upstream_down=True)
    return PassStopped(str(exc), f"QFlow error: {exc}")


# --- scope: the workflows -------------------------------------------------------------


def _scope(sync: Pass, workflow_ids: list[str] | None) -> None:
    """List the workflows (new ones appear, names change) and pick the scope.

    Every pass lists them, except when the budget is too small to visit every workflow in
    one pass and a list was read less than WORKFLOW_LIST_EVERY ago: then the calls go to
    visits (with 1,000 workflows the list is 10 calls).
    """
    wanted = {str(w).lower() for w in workflow_ids or ()}

    def pick(workflows: list[Workflow]) -> list[Workflow]:
        return [wf for wf in workflows if str(wf.pk) in wanted] if wanted else workflows

    known = list(Workflow.objects.all())
    # Until the list is read, the scope is what the mirror knows (for an honest count).
    sync.scope = pick(known)
    last_list = _last_list()
    if last_list is not None and _list_can_wait(sync, len(known), last_list):
        listed_then = [wf for wf in known if wf.last_synced_at and wf.last_synced_at >= last_list]
        if _list_unchanged(sync, listed_then, last_list):
            sync.scope = pick(listed_then)
            sync.scoped = True
            return
    sync.budget.min_pass = MIN_PASS + math.ceil(max(1, len(known)) / PAGE_SIZE)
    listed: list[Workflow] | None = None
    try:
        listed = _list_workflows(sync)
    except (QflowRateLimited, QflowUnavailable, QflowAuthError, QflowForbidden) as exc:
        raise _stop_for(exc) from None
    except QflowConfigError as exc:
        raise PassStopped(str(exc), f"QFlow error: {exc}") from None
    except QflowError as exc:
        # A workflow list we cannot read: go on with the workflows the mirror knows.
        sync.notes.append(f"workflow list: {exc}")
        logger.warning("sync: workflow list unreadable: %s", mask_text(str(exc)))
    if listed is not None:
        sync.scope = pick(listed)
    sync.scoped = True


def _last_list() -> datetime | None:
    """When the last pass that read the workflow list started."""
    done = SyncRun.objects.filter(workflows_seen__gt=0, finished_at__isnull=False)
    return done.order_by("-started_at").values_list("started_at", flat=True).first()


def _list_can_wait(sync: Pass, known: int, last_list: datetime) -> bool:
    if sync.started - last_list >= WORKFLOW_LIST_FULL_EVERY:
        return False
    allowed = sync.budget.allowed()
    return allowed is not None and allowed < math.ceil(max(1, known) / PAGE_SIZE) + known


_LIST_CHECKED = "mirror:workflow-list-checked"


def _normal_id(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value)


def _list_unchanged(sync: Pass, listed_then: list[Workflow], last_list: datetime) -> bool:
    """True when the full list can wait: read or checked less than WORKFLOW_LIST_EVERY ago,
    or its first page (one call, newest first) counts as many workflows as the last full
    list and shows none the mirror does not know or whose revision changed. The page's
    workflows are stored (names change)."""
    if sync.started - last_list < WORKFLOW_LIST_EVERY:
        return True
    checked = cache.get(_LIST_CHECKED)
    if checked is not None and sync.started - checked < WORKFLOW_LIST_EVERY:
        return True
    if len(listed_then) <= PAGE_SIZE:
        return False  # one page is the whole list: read it
    try:
        sync.budget.check()
        page = sync.client.list_workflows(page_number=1, page_size=PAGE_SIZE, order="-createdAt")
    except (QflowRateLimited, QflowUnavailable, QflowAuthError, QflowForbidden) as exc:
        raise _stop_for(exc) from None
    except QflowError:
        return False  # read the whole list, which says what went wrong
    known = {str(wf.pk): wf for wf in listed_then}
    if page.total != len(listed_then):
        return False
    for item in page.items:
        workflow = known.get(_normal_id(item.id))
        if workflow is None or workflow_problem(item) or item.revision != workflow.revision:
            return False  # new, unreadable or changed: the whole list says how
    for item in page.items:
        workflow = known[_normal_id(item.id)]
        workflow_apply(workflow, item)
        workflow.save(update_fields=[f for f in _LISTED_FIELDS if f != "last_synced_at"])
    cache.set(_LIST_CHECKED, sync.started, int(WORKFLOW_LIST_FULL_EVERY.total_seconds()))
    return True


_LISTED_FIELDS = [
    "name",
    "description",
    "category",
    "cloud",
    "cloud_providers",
    "deployed",
    "revision",
    "definition",
    "tags",
    "created_at",
    "updated_at",
    "raw",
    "last_synced_at",
]


def _list_workflows(sync: Pass) -> list[Workflow]:
    now = timezone.now()
    skips = _Skips(sync, "the workflow list")
    listed: dict[str, Workflow] = {}
    page_number = seen = 0
    while True:
        page_number += 1
        sync.budget.check()
        before = skips.count
        with skipping_bad_items(skips):
            page = sync.client.list_workflows(page_number=page_number, page_size=PAGE_SIZE)
        for item in page.items:
            problem = workflow_problem(item)
            if problem:
                skips.refuse(item.raw, problem)
                continue
            workflow, created = Workflow.objects.get_or_create(pk=item.id)
            workflow_apply(workflow, item)
            if item.definition is None and (
                not workflow.definition or workflow.revision != item.revision
            ):
                sync.needs_definition.append(workflow)
            workflow.last_synced_at = now
            # Only the listed fields: a concurrent pass may be moving this workflow's cursor.
            workflow.save(update_fields=None if created else _LISTED_FIELDS)
            listed[str(workflow.pk)] = workflow
        read = len(page.items) + skips.count - before
        seen += read
        if not read or seen >= page.total:
            break
    sync.listed = len(listed)
    return list(listed.values())


# --- the phases -----------------------------------------------------------------------


def _phases(sync: Pass) -> None:
    now = sync.started
    ids = [wf.pk for wf in sync.scope]
    hot_ids = _hot_ids(ids, now)
    due_now = _marked_due(ids)

    def urgency(wf: Workflow) -> tuple:
        # How overdue the workflow is against its goal (QFLOW_SYNC_ACTIVE_SECONDS when hot,
        # QFLOW_SYNC_RARE_SECONDS otherwise): with a budget too small for both goals, every
        # workflow misses its goal by the same factor, and none waits for ever.
        if wf.pk in due_now or wf.last_visited_at is None:
            ratio = math.inf
        else:
            every = active_every() if wf.pk in hot_ids else rare_every()
            ratio = (now - wf.last_visited_at).total_seconds() / max(1.0, every)
        never = wf.last_visited_at is None
        return (wf.pk not in due_now, -ratio, not never, wf.last_visited_at, wf.name, str(wf.pk))

    order = sorted(sync.scope, key=urgency)
    allowed = sync.budget.allowed()
    # Hot visits may spend at most this share of the pass (the others' fairness bound).
    hot_left = None if allowed is None else int((allowed - sync.budget.used()) * HOT_SHARE)
    for workflow in order:
        if workflow.pk in due_now:
            # A run was just started on it from qflowui: first, whatever the hot share.
            _visit_each(sync, [workflow], max_pages=HOT_PAGES, head_peek=True, revisit=True)
            if workflow.pk in sync.visited:
                _unmark_due(workflow, due_now)
        elif workflow.pk in hot_ids:
            # Hot: a few pages and its unfinished executions, within the hot share.
            if hot_left is not None and hot_left <= 0:
                continue
            before = sync.budget.used()
            if hot_left is not None:
                sync.budget.phase_cap = before + hot_left
            try:
                _visit_each(sync, [workflow], max_pages=HOT_PAGES, head_peek=True, revisit=True)
            except PhaseDone:
                hot_left = 0
            finally:
                sync.budget.phase_cap = None
            if hot_left:
                hot_left -= sync.budget.used() - before
        else:
            _visit_each(sync, [workflow], max_pages=1, head_peek=False, revisit=False)

    rest = [
        wf
        for wf in order
        if wf.pk not in sync.synced and wf.pk not in sync.held and wf.pk not in sync.failed
    ]
    rest.sort(key=lambda wf: wf.pk not in sync.visited)  # walks under way first
    _visit_each(sync, rest, max_pages=LEFTOVER_PAGES, head_peek=False, revisit=True)
    _fetch_definitions(sync)
    _fetch_failure_steps(sync)


def _hot_ids(workflow_ids: list, now: datetime) -> set:
    """Workflows with an execution still running, or that started at least two within
    QFLOW_SYNC_HOT_SECONDS before their last visit (or since): visited every
    QFLOW_SYNC_ACTIVE_SECONDS when the budget allows.

    Activity is measured from the last visit, when the mirror last knew the workflow's
    newest executions, not from now: a busy workflow the budget could not visit for an
    hour stays hot. One run is not activity: a workflow that runs a few times a month stays
    cold after it.
    """
    unfinished = set(
        Execution.objects.filter(
            is_terminal=False, gone_at__isnull=True, workflow_id__in=workflow_ids
        )
        .values_list("workflow_id", flat=True)
        .distinct()
    )
    recent = (
        Execution.objects.filter(
            workflow_id__in=workflow_ids,
            started_at__gte=Least(F("workflow__last_visited_at"), Value(now, DateTimeField()))
            - hot_for(),
        )
        .values("workflow_id")
        .annotate(n=Count("id"))
        .filter(n__gte=2)
        .values_list("workflow_id", flat=True)
    )
    return unfinished | set(recent)


# --- visit soon: a run started from qflowui --------------------------------------------

_DUE = "mirror:visit-soon:"


def visit_soon(workflow_id: Any) -> None:
    """Have the next pass visit this workflow first (a run was just started from qflowui):
    what the run set off shows at once, whatever the workflow's turn. Best effort."""
    try:
        cache.set(f"{_DUE}{_normal_id(str(workflow_id))}", timezone.now(), 24 * 3600)
    except Exception:  # noqa: BLE001 - the cache down must not fail a run
        logger.warning("could not mark workflow %s for the next sync", workflow_id)


def _marked_due(workflow_ids: list) -> dict:
    keys = {f"{_DUE}{pk}": pk for pk in workflow_ids}
    found = cache.get_many(list(keys))
    return {keys[key]: at for key, at in found.items()}


def _unmark_due(workflow: Workflow, due_now: dict) -> None:
    marked = due_now.get(workflow.pk)
    if marked is None:
        return
    key = f"{_DUE}{workflow.pk}"
    if cache.get(key) == marked:  # not marked again meanwhile
        cache.delete(key)


def _visit_each(sync: Pass, workflows: list[Workflow], **how: Any) -> None:
    for workflow in workflows:
        try:
            _visit(sync, workflow, **how)
            sync.failed_in_a_row = 0
        except ClaimLost:
            sync.held.add(workflow.pk)
            sync.notes.append(f"{workflow.name or workflow.pk}: taken over by another sync")
        except (QflowRateLimited, QflowAuthError, QflowForbidden, QflowConfigError) as exc:
            raise _stop_for(exc) from None
        except QflowUnavailable as exc:
            if exc.status_code is None:  # no answer at all: QFlow is down, not this workflow
                raise _stop_for(exc) from None
            sync.fail(workflow, exc)
            sync.failed_in_a_row += 1
            if sync.failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                raise _stop_for(exc) from None
        except QflowError as exc:  # this workflow only (404, 400, a page that is not JSON)
            sync.fail(workflow, exc)


def _visit(
    sync: Pass, workflow: Workflow, *, max_pages: int | None, head_peek: bool, revisit: bool
) -> None:
    sync.budget.check()
    sync.check_wait()
    if not _claim(workflow, sync.token):
        if workflow.pk not in sync.held:
            sync.held.add(workflow.pk)
            sync.notes.append(f"{workflow.name or workflow.pk}: another sync holds it")
        return
    sync.visited.add(workflow.pk)
    try:
        workflow.refresh_from_db(fields=_STATE_FIELDS)
        if not _walk(sync, workflow, max_pages=max_pages, head_peek=head_peek):
            return
        if revisit:
            _revisit(sync, workflow)
        if not _pending(sync, workflow).exists():
            sync.synced.add(workflow.pk)
            sync.failed.pop(workflow.pk, None)
    finally:
        _release(workflow, sync.token)


# --- claims ---------------------------------------------------------------------------

_STATE_FIELDS = [
    "synced_through",
    "walk_to",
    "walk_page",
    "walk_skipped",
    "walk_relists",
    "unreadable",
    "backfilled",
]


def _claim(workflow: Workflow, token: str) -> bool:
    """Single flight across processes: a short lease, renewed before every page."""
    now = timezone.now()
    free = Q(sync_claimed_until__isnull=True) | Q(sync_claimed_until__lt=now)
    claimed = Workflow.objects.filter(free, pk=workflow.pk).update(
        sync_claimed_until=now + lease(), sync_claimed_by=token, last_visited_at=now
    )
    return claimed == 1


def _save(workflow: Workflow, token: str, fields: list[str] | None = None) -> None:
    """Store the cursor (and renew the lease); ClaimLost if the claim is no longer ours."""
    values = {name: getattr(workflow, name) for name in fields or []}
    done = Workflow.objects.filter(pk=workflow.pk, sync_claimed_by=token).update(
        sync_claimed_until=timezone.now() + lease(), **values
    )
    if done != 1:
        raise ClaimLost(str(workflow.pk))


def _release(workflow: Workflow, token: str) -> None:
    Workflow.objects.filter(pk=workflow.pk, sync_claimed_by=token).update(
        sync_claimed_until=None, sync_claimed_by=""
    )


# --- the walk -------------------------------------------------------------------------


def _walk(sync: Pass, workflow: Workflow, *, max_pages: int | None, head_peek: bool) -> bool:
    """Read pages of the workflow's walk; True once the walk is complete."""
    if workflow.walk_page == 0:
        workflow.walk_to = _ms(timezone.now())
        workflow.walk_page, workflow.walk_skipped, workflow.walk_relists = 1, 0, 0
        _save(workflow, sync.token, _STATE_FIELDS)
    elif head_peek and workflow.walk_page > 1:
        # A long walk is under way: read the newest executions meanwhile (fresh, not counted).
        sync.budget.check()
        _save(workflow, sync.token)
        _list_page(sync, workflow, 1, window_floor(timezone.now()), None)
    pages = 0
    while max_pages is None or pages < max_pages:
        sync.budget.check()
        _save(workflow, sync.token)  # renew the lease before a call that may take a while
        floor = window_floor(timezone.now())
        page, skipped = _list_page(sync, workflow, workflow.walk_page, floor, workflow.walk_to)
        pages += 1
        workflow.walk_skipped += skipped
        if _walk_step(sync, workflow, page, floor):
            return True
    return False


def _walk_step(sync: Pass, workflow: Workflow, page: qt.Page, floor: datetime) -> bool:
    """Decide after a page: complete, start over, or next page. True when complete."""
    total = page.total
    # A page of exactly PAGE_SIZE whose `total` says no more: QFlow may have sent no total.
    trusted = not (len(page.items) >= PAGE_SIZE and total <= len(page.items))
    read_all = not page.items or (trusted and workflow.walk_page * PAGE_SIZE >= total)
    have = (
        Execution.objects.filter(
            workflow_id=workflow.pk,
            created_at__gte=floor,
            created_at__lte=workflow.walk_to,
            gone_at__isnull=True,
        ).count()
        if trusted
        else 0
    )
    unreadable = max(workflow.walk_skipped, workflow.unreadable)
    matched = trusted and have + unreadable >= total
    if not matched and read_all and trusted and workflow.walk_relists < MAX_RELISTS:
        # Every page read, yet fewer than QFlow counts: rows moved while we paged. Again.
        logger.info(
            "sync: workflow %s: %s of %s executions after a full walk; listing again",
            workflow.pk,
            have + workflow.walk_skipped,
            total,
        )
        workflow.walk_relists += 1
        workflow.walk_to = _ms(timezone.now())
        workflow.walk_page, workflow.walk_skipped = 1, 0
        _save(workflow, sync.token, _STATE_FIELDS)
        return False
    if matched or read_all:
        if read_all:
            workflow.unreadable = max(0, total - have) if trusted else workflow.walk_skipped
            missing = workflow.unreadable - workflow.walk_skipped
            if missing > 0:
                sync.notes.append(
                    f"{workflow.name or workflow.pk}: QFlow counts {missing} execution(s) "
                    "it does not list"
                )
                logger.warning(
                    "sync: workflow %s: QFlow's total is %s, it listed %s",
                    workflow.pk,
                    total,
                    have + workflow.walk_skipped,
                )
        workflow.synced_through = workflow.walk_to
        workflow.walk_page, workflow.walk_skipped, workflow.walk_relists = 0, 0, 0
        workflow.backfilled = True
        _save(workflow, sync.token, _STATE_FIELDS)
        return True
    workflow.walk_page += 1
    _save(workflow, sync.token, _STATE_FIELDS)
    return False


def _list_page(
    sync: Pass,
    workflow: Workflow,
    page_number: int,
    start: datetime,
    end: datetime | None,
) -> tuple[qt.Page, int]:
    """One page of the workflow's executions, stored; returns it and how many were skipped."""
    skips = _Skips(sync, f"the execution list of workflow {workflow.pk} (page {page_number})")
    with skipping_bad_items(skips):
        page = sync.client.list_executions(
            str(workflow.pk),
            page_number=page_number,
            page_size=PAGE_SIZE,
            start_at=start,
            end_at=end,
            order="-createdAt",
        )
    good = []
    for item in page.items:
        problem = execution_problem(item)
        if problem:
            skips.refuse(item.raw, problem)
        else:
            good.append(item)
    new, updated = upsert_listed(good, workflow, timezone.now())
    sync.new += new
    sync.updated += updated
    return page, skips.count


# --- revisits and definitions ---------------------------------------------------------


def _pending(sync: Pass, workflow: Workflow):
    """Unfinished executions of the workflow that this pass has not seen yet."""
    return Execution.objects.filter(
        workflow_id=workflow.pk,
        is_terminal=False,
        gone_at__isnull=True,
        last_synced_at__lt=sync.started,
    ).order_by("last_synced_at")


def _revisit(sync: Pass, workflow: Workflow) -> None:
    """Ask QFlow about each unfinished execution no list page showed (older ones)."""
    from qflowui.mirror.refresh import execution_refresh

    skips = _Skips(sync, f"an execution of workflow {workflow.pk}")
    for execution_id in list(_pending(sync, workflow).values_list("id", flat=True)):
        sync.budget.check()
        _save(workflow, sync.token)
        try:
            row = execution_refresh(sync.client, str(execution_id))
        except QflowNotFound:
            # Past QFlow's 30 days (or deleted): keep the last copy, stop asking.
            marked = Execution.objects.filter(pk=execution_id, gone_at__isnull=True).update(
                gone_at=timezone.now()
            )
            sync.gone += marked
            continue
        except QflowBadResponse as exc:
            skips.refuse(str(execution_id), str(exc))
            continue
        if row.last_synced_at and row.last_synced_at >= sync.started:
            sync.updated += 1


def _fetch_definitions(sync: Pass) -> None:
    for workflow in sync.needs_definition:
        if workflow not in sync.scope:
            continue
        sync.budget.check()
        try:
            item = sync.client.get_workflow(str(workflow.pk))
        except QflowNotFound:
            sync.notes.append(f"workflow {workflow.pk} vanished while syncing")
            continue
        except (QflowRateLimited, QflowUnavailable, QflowAuthError, QflowForbidden) as exc:
            raise _stop_for(exc) from None
        except QflowError as exc:
            sync.notes.append(f"{workflow.name or workflow.pk}: definition: {exc}")
            continue
        workflow_apply(workflow, item)
        workflow.save(update_fields=_LISTED_FIELDS)


def failure_steps_per_pass() -> int:
    return int(getattr(settings, "QFLOW_SYNC_FAILURE_STEPS_PER_PASS", 20))


def _fetch_failure_steps(sync: Pass) -> None:
    """Fetch the steps of failed executions, newest first, so the list can say why they
    failed. Only with what the pass's budget leaves: what it cannot fetch now, a later pass
    fetches (never at the cost of the executions themselves)."""
    from qflowui.mirror.refresh import execution_refresh

    cap = failure_steps_per_pass()
    if cap <= 0 or not sync.scope:
        return
    wanted = (
        Execution.objects.filter(
            workflow_id__in=[wf.pk for wf in sync.scope],
            status_class__in=[st.FAILED, st.TIMED_OUT],
            is_terminal=True,
            steps_synced_at__isnull=True,
            gone_at__isnull=True,
        )
        .order_by("-started_at")
        .values_list("id", flat=True)
    )
    refused = cache.get_many([_refused_key(pk) for pk in wanted[: cap * 2]])
    todo = [pk for pk in wanted[: cap * 2] if _refused_key(pk) not in refused][:cap]
    for execution_id in todo:
        try:
            sync.budget.check()
        except (BudgetExhausted, PhaseDone):
            return
        try:
            execution_refresh(sync.client, str(execution_id), steps=True)
        except QflowNotFound:
            sync.gone += Execution.objects.filter(pk=execution_id, gone_at__isnull=True).update(
                gone_at=timezone.now()
            )
        except (QflowRateLimited, QflowUnavailable, QflowAuthError, QflowForbidden) as exc:
            raise _stop_for(exc) from None
        except QflowError as exc:
            # An answer the mirror cannot read: not asked again for a day.
            cache.set(_refused_key(execution_id), str(exc)[:200], FAILURE_STEPS_RETRY_SECONDS)
            sync.notes.append(f"steps of {execution_id}: {exc}")


FAILURE_STEPS_RETRY_SECONDS = 24 * 3600


def _refused_key(execution_id: Any) -> str:
    return f"mirror:failure-steps-refused:{execution_id}"


# --- the record -----------------------------------------------------------------------


def _finish(sync: Pass, stop: PassStopped | None, exhausted: str | None) -> None:
    run, client = sync.run, sync.client
    try:
        sync.budget.settle()  # the shared count holds exactly the calls this pass made
    except Exception:  # the cache down: the database's record still bounds the next passes
        logger.warning("sync: could not update the shared call count", exc_info=True)
    scope, synced = len(sync.scope), len(sync.synced)
    held = len(sync.held - sync.synced)
    failed = {k: v for k, v in sync.failed.items() if k not in sync.synced}
    complete = sync.scoped and synced + held >= scope
    run.ok = complete and not failed
    run.partial = not run.ok and not (stop is not None and synced == 0)
    run.upstream_down = bool(stop and stop.upstream_down)
    run.error = mask_text(stop.error) if stop else ""
    if stop and stop.wait_until:
        run.rate_limited_until = stop.wait_until
    reasons = []
    if stop:
        reasons.append(stop.reason)
    if exhausted:
        reasons.append(exhausted)
        sync.notes.append(exhausted)
    if failed:
        first = next(iter(failed.values()))
        reasons.append(f"{len(failed)} failed ({first})")
    if held:
        reasons.append(f"{held} held by another sync")
    if sync.skipped:
        count = len(sync.skipped)
        reasons.append(f"{count} record{'s' if count != 1 else ''} skipped")
    if sync.gone:
        reasons.append(f"{sync.gone} gone from QFlow")
    # Upstream messages are part of the reasons: masked like everything from QFlow.
    if run.ok or run.partial:
        head = f"{run.status}: {synced} of {scope} workflows"
        run.summary = _clip(mask_text(", ".join([head, *reasons])), 300)
    else:
        run.summary = _clip(mask_text("failed: " + ", ".join(reasons or ["nothing synced"])), 300)
    run.finished_at = timezone.now()
    run.api_calls = client.calls - sync.budget.start_calls
    run.workflows_seen = sync.listed
    run.workflows_total = scope
    run.workflows_synced = synced
    run.records_skipped = len(sync.skipped)
    run.executions_gone = sync.gone
    run.executions_new = sync.new
    run.executions_updated = sync.updated
    run.note = _clip(mask_text("; ".join(sync.notes)), 300)
    info = client.rate_limit
    if info is not None:
        run.rate_limit = info.limit
        run.rate_window_sec = info.window_sec
    run.save()
    level = logging.INFO if run.ok else logging.WARNING
    logger.log(level, "sync pass %s: %s", run.pk, mask_text(run.summary))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
