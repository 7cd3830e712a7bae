"""Which workflows a pass visits when the budget cannot cover them all, and how passes share
the budget: due times from activity (hot every QFLOW_SYNC_ACTIVE_SECONDS, the others every
QFLOW_SYNC_RARE_SECONDS, the most overdue first), a workflow a qflowui run started on visited
first, and one call budget for every pass of every worker (Redis).

Against the simulator over real HTTP. Assertions are about which rows and calls exist, never
about how long something took.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from qflowui.mirror import sync as mirror
from qflowui.mirror.models import SyncRun, Workflow
from qflowui.mirror.sync import BUDGET_SHARE, _hot_ids, mirror_sync, visit_soon
from qflowui.runs import services
from qflowui.runs.models import RunState
from tests.test_runs_submit import _new_run
from tests.test_runs_support import *  # noqa: F403 - runner, sent
from tests.test_runs_support import mirror_workflows, simulator_workflow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_failure_steps(settings):
    settings.QFLOW_SYNC_FAILURE_STEPS_PER_PASS = 0


def _api_calls(simulator) -> list:
    return [c for c in simulator.calls if c.path.startswith("/qflowapi/")]


def _budget_of(simulator, visits: int) -> None:
    """A rate limit whose 80% lets one pass make exactly `visits` calls (no list: it was read
    less than a minute ago), in a window of its own."""
    rate = next(r for r in range(visits, 4 * visits + 8) if int(r * BUDGET_SHARE) == visits)
    simulator.configure(rate_limit=rate, rate_window_seconds=3600)
    simulator.forget_rate()
    mirror.forget_shared_budget()
    # As if the last pass had already seen this limit (a gateway's limit does not change).
    SyncRun.objects.update(api_calls=0, rate_limit=rate, rate_window_sec=3600)


def _visited(run: SyncRun) -> set:
    return set(
        Workflow.objects.filter(last_visited_at__gte=run.started_at).values_list("pk", flat=True)
    )


def _age(pks, seconds: float) -> None:
    Workflow.objects.filter(pk__in=list(pks)).update(
        last_visited_at=timezone.now() - timedelta(seconds=seconds)
    )


def _cold_after_aging(candidates, seconds: float, taken=()) -> object:
    """A workflow that is still cold when its last visit is `seconds` ago (activity counts
    from the last visit), aged so."""
    for pk in sorted(candidates):
        if pk in taken:
            continue
        _age([pk], seconds)
        if pk not in _hot_ids([pk], timezone.now()):
            return pk
        _age([pk], 0)
    raise AssertionError("no workflow stays cold")


def test_two_passes_at_once_share_one_budget_of_80_percent(simulator, settings):
    """Two workers' passes at the same moment, against a gateway that sends no Remaining
    header: together they stay within 80% of the limit, because the count is shared."""
    settings.QFLOW_SYNC_INTERVAL_SECONDS = 3600  # the pace allows a pass the whole share
    simulator.configure(rate_limit=15, rate_window_seconds=3600, rate_headers="limit")
    share = int(15 * BUDGET_SHARE)
    start = threading.Barrier(2)
    runs: list[SyncRun] = []

    def one_pass() -> None:
        try:
            start.wait()
            runs.append(mirror_sync())
        finally:
            connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(runs) == 2
    # A first pass over 16 workflows alone would need more than the share.
    assert all(run.partial for run in runs), [run.summary for run in runs]
    assert sum(run.api_calls for run in runs) <= share
    assert len(_api_calls(simulator)) <= share
    # A third pass in the same window makes no call.
    third = mirror_sync()
    assert third.api_calls == 0 and not third.ok
    assert len(_api_calls(simulator)) <= share


def test_an_overdue_workflow_goes_before_one_visited_recently_hot_or_not(simulator):
    assert mirror_sync().ok
    ids = set(Workflow.objects.values_list("pk", flat=True))
    _age(ids, 0)
    hot = _hot_ids(list(ids), timezone.now())
    assert hot and len(ids - hot) >= 2
    a_hot = sorted(hot)[0]

    # Two visits a pass (one may go to a hot workflow). The hot one was visited 60 s ago (a
    # fifth of its 300 s), two cold ones 2 h and 1 h ago (twice and once their hour): the
    # cold ones are more overdue and go first. Every other one: just visited.
    _age([a_hot], 60)
    a_cold = _cold_after_aging(ids - hot, 7200)
    b_cold = _cold_after_aging(ids - hot, 3600, taken={a_cold})
    _budget_of(simulator, 2)
    run = mirror_sync()
    assert _visited(run) == {a_cold, b_cold}

    # The hot one visited 10 min ago (twice its 300 s), the cold ones 30 and 28 min ago
    # (about half their hour): the hot one first, then the more overdue cold one.
    _age(ids, 0)
    _age([a_hot], 600)
    _age([a_cold], 1800)
    _age([b_cold], 1680)
    assert a_hot in _hot_ids(list(ids), timezone.now())
    assert not {a_cold, b_cold} & _hot_ids(list(ids), timezone.now())
    _budget_of(simulator, 2)
    run = mirror_sync()
    assert _visited(run) == {a_hot, a_cold}


def test_no_workflow_waits_for_ever_behind_hot_ones(simulator):
    """Hot workflows always overdue: a cold workflow's wait grows until it is more overdue
    than any of them, and then it is visited first."""
    assert mirror_sync().ok
    ids = set(Workflow.objects.values_list("pk", flat=True))
    _age(ids, 0)
    hot = _hot_ids(list(ids), timezone.now())
    _age(hot, 900)  # three times their 300 s
    waiting = _cold_after_aging(ids - hot, 3600 * 3 + 60)  # just over three times its hour
    assert _hot_ids(list(ids), timezone.now()) == hot
    _budget_of(simulator, 2)
    run = mirror_sync()
    visited = _visited(run)
    assert waiting in visited and len(visited) == 2 and len(visited & hot) == 1


def test_a_run_started_from_qflowui_has_its_workflow_visited_first(simulator, runner, sent):
    mirror_workflows(simulator)
    aws = uuid.UUID(simulator_workflow(simulator, "AWS").id)
    assert mirror_sync().ok
    run = _new_run(runner, aws)
    assert services.run_submit(run.pk) == RunState.SUBMITTED
    assert set(mirror._marked_due([aws])) == {aws}

    # The workflow was just visited and is the least due of all; one visit a pass.
    ids = set(Workflow.objects.values_list("pk", flat=True))
    _age(ids, 3000)
    _age([aws], 0)
    _budget_of(simulator, 1)
    first = mirror_sync()
    assert _visited(first) == {aws}
    # Visited: the mark is gone, the next pass goes back to the most overdue.
    assert mirror._marked_due(list(ids)) == {}
    _budget_of(simulator, 1)
    second = mirror_sync()
    assert aws not in _visited(second)


def test_visit_soon_of_an_unknown_workflow_changes_nothing(simulator):
    assert mirror_sync().ok
    visit_soon("00000000-0000-4000-8000-000000000000")
    _budget_of(simulator, 1)
    run = mirror_sync()
    assert len(_visited(run)) == 1
