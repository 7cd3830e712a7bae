"""Fair under the rate limit, and honest about it: round robin with hot workflows first, a
stated bound on how long any workflow waits, partial passes that say so, and QFlow's 409/429
waits remembered across passes and "Sync now".

Against the simulator over real HTTP, with its rate limit and fault injection.
"""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from qflowui.executions.templatetags.qflow_format import clock
from qflowui.mirror import tasks as mirror_tasks
from qflowui.mirror.models import Execution, SyncRun, Workflow
from qflowui.mirror.sync import BUDGET_SHARE, HOT_SHARE, _hot_ids, mirror_sync

pytestmark = pytest.mark.django_db(transaction=True)


def _newest_per_workflow(simulator) -> dict[str, str]:
    """Each workflow's newest execution, as QFlow lists it now."""
    return {wf.id: simulator.executions(wf.id)[0]["id"] for wf in simulator.dataset().workflows}


def _mirrored(ids) -> set[str]:
    found = Execution.objects.filter(pk__in=list(ids)).values_list("id", flat=True)
    return {str(pk) for pk in found}


def test_with_a_rate_limit_too_small_for_one_pass_every_workflow_is_reached_within_the_bound(
    simulator, viewer_client
):
    rate, window = 10, 2  # 10 calls per 2 s: a pass may make 8
    simulator.configure(rate_limit=rate, rate_window_seconds=window)
    newest = _newest_per_workflow(simulator)
    n = len(newest)
    budget = int(rate * BUDGET_SHARE)
    listing, token = 1, 1  # one workflow-list call; at most one token fetch a pass
    # The bound the sync states (qflowui/mirror/sync.py): the hot phase takes at most half of
    # what is left after the workflow list, a round-robin visit costs one call.
    bound = math.ceil(n / math.ceil((budget - listing - token) * (1 - HOT_SHARE)))
    assert budget - listing < n  # one pass cannot visit every workflow

    passes: list[SyncRun] = []
    while len(_mirrored(newest.values())) < n and len(passes) < bound + 3:
        if passes:
            time.sleep(window + 0.5)  # the next pass gets a fresh rate window
        passes.append(mirror_sync())

    missing = [wf for wf, ex in newest.items() if ex not in _mirrored([ex])]
    assert not missing, f"not reached after {len(passes)} passes"
    assert len(passes) <= bound, f"{len(passes)} passes, bound {bound}"
    for run in passes:
        assert run.api_calls <= budget
        assert run.partial and not run.ok
        assert re.fullmatch(r"partial: \d+ of 16 workflows, rate budget used: .*", run.summary)
    # The list header says the last pass was partial.
    html = viewer_client.get("/executions/").content.decode()
    assert "· last pass partial: " in html
    assert "of 16 workflows, rate budget used" in html
    assert "no complete sync yet" in html


def test_hot_workflows_are_visited_every_pass_and_the_others_take_turns(simulator):
    assert mirror_sync().ok  # everything known once, with the default (large) limit
    hot = _hot_ids(list(Workflow.objects.values_list("pk", flat=True)), timezone.now())
    assert 0 < len(hot) < 8
    # A budget whose hot share (half of what is left after the workflow list) fits every
    # hot workflow, and whose rest fits only some of the others.
    budget = 2 * len(hot) + 1
    rate = next(r for r in range(budget, 4 * budget) if int(r * BUDGET_SHARE) == budget)
    simulator.configure(rate_limit=rate, rate_window_seconds=2)
    cold = set(Workflow.objects.values_list("pk", flat=True)) - hot
    cold_visits = dict.fromkeys(cold, 0)
    for turn in range(3):
        time.sleep(2.5)  # a fresh rate window for each pass
        run = mirror_sync()
        since = Workflow.objects.filter(last_visited_at__gte=run.started_at)
        visited = set(since.values_list("pk", flat=True))
        assert hot <= visited, f"pass {turn + 1}: a hot workflow was left out"
        listing = 1 if run.workflows_seen else 0
        assert len(visited - hot) == budget - listing - len(hot) < len(cold)
        for pk in visited - hot:
            cold_visits[pk] += 1
    # Every hot workflow three times; the others in turn, none more than once ahead.
    assert max(cold_visits.values()) - min(cold_visits.values()) <= 1


@pytest.mark.parametrize("status", [429, 409])
def test_a_wait_of_600_s_is_remembered_no_pass_or_sync_now_calls_qflow_until_then(
    simulator, viewer_client, monkeypatch, capsys, status
):
    fourth = sorted(simulator.dataset().workflows, key=lambda wf: wf.name)[3]
    simulator.inject(
        "status",
        path=rf"/workflows/{fourth.id}/executions$",
        status=status,
        headers={"X-RateLimit-ToWait-Sec": "600"},
    )

    run = mirror_sync()

    # The first pass visits in name order (none visited yet): three done, then the wait.
    assert run.partial and not run.ok
    assert run.summary == "partial: 3 of 16 workflows, QFlow asked us to wait 600 s"
    until = run.rate_limited_until
    assert timedelta(seconds=590) < until - timezone.now() <= timedelta(seconds=600)

    mark = len(simulator.calls)
    skipped = mirror_sync()
    assert skipped.pk is None and skipped.skipped
    assert skipped.summary.startswith("skipped: QFlow asked us to wait until ")
    assert mirror_tasks.sync() is None  # the beat task: skipped too
    call_command("qflow_sync")
    assert "skipped: QFlow asked us to wait until" in capsys.readouterr().out
    queued: list = []
    monkeypatch.setattr(mirror_tasks.sync, "delay", lambda *a, **k: queued.append(a))
    page = viewer_client.post("/executions/sync/", {"next": "/executions/"}, follow=True)
    assert queued == []  # Sync now did not even queue a pass
    html = page.content.decode()
    assert f"Not queued: QFlow asked us to wait until {clock(until)}" in html
    assert len(simulator.calls) == mark  # no upstream call at all, token included
    assert SyncRun.objects.count() == 1  # skipped passes leave no record

    # The list page: the button is disabled and says until when; the header, why.
    html = viewer_client.get("/executions/").content.decode()
    assert '<button type="submit" disabled aria-describedby="sync-wait">Sync now</button>' in html
    assert re.search(
        r'id="sync-wait"[^>]*>QFlow asked us to wait until <time [^>]*>'
        + re.escape(clock(until))
        + "</time>",
        html,
    )
    assert "· last pass partial: 3 of 16 workflows, QFlow asked us to wait 600 s" in html
    htmx = viewer_client.post("/executions/sync/", HTTP_HX_REQUEST="true").content.decode()
    assert "disabled" in htmx and clock(until) in htmx and queued == []

    # Once the wait is over (moved into the past here), passes call QFlow again.
    SyncRun.objects.update(rate_limited_until=timezone.now() - timedelta(seconds=1))
    after = mirror_sync()
    assert after.pk is not None and after.ok, after.summary
    assert len(simulator.calls) > mark
    assert (
        "disabled"
        not in viewer_client.get("/executions/")
        .content.decode()
        .split('id="sync"')[1]
        .split("</form>")[0]
    )


def test_a_pass_started_while_another_learnt_of_a_wait_stops_before_its_next_call(simulator):
    """Two passes at once: the one that did not get the 429 stops at its next workflow."""
    SyncRun.objects.create(
        started_at=timezone.now(),
        finished_at=timezone.now(),
        rate_limited_until=timezone.now() + timedelta(seconds=300),
    )

    run = mirror_sync()

    assert run.pk is None  # it never started: no call
    assert simulator.calls == []
