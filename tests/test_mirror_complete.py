"""The mirror never keeps a gap: interrupted walks resume, QFlow's `total` is checked, a dead
worker's claim ends within its lease, and purged executions are not asked about forever.

Against the simulator over real HTTP, with its fault injection.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, SyncRun, Workflow
from qflowui.mirror.sync import PAGE_SIZE, mirror_sync
from qflowui.qflow import client_from_settings
from qflowui.simulator.dataset import DAY_MS
from tests.conftest import database_url_for_other_processes

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent


def _fast_client():
    """The sync's client with quick retries: a 500 costs four attempts, not 3.5 s."""
    return client_from_settings(backoff=0.01, max_rate_wait=30.0)


def _inside_window_ms() -> int:
    """A little inside QFlow's 30 days, so the window's moving edge cannot make a difference."""
    return int((timezone.now() - timedelta(days=30) + timedelta(minutes=10)).timestamp() * 1000)


def _qflow_ids(simulator, workflow_id: str, since_ms: int) -> set[str]:
    return {r["id"] for r in simulator.executions(workflow_id) if r["createdAt"] >= since_ms}


def _mirror_ids(workflow_id: str, since_ms: int) -> set[str]:
    since = datetime.fromtimestamp(since_ms / 1000, tz=UTC)
    rows = Execution.objects.filter(workflow_id=workflow_id, created_at__gte=since)
    return {str(pk) for pk in rows.values_list("id", flat=True)}


def _multi_page_workflow(simulator) -> str:
    """The workflow with the most executions in the window: more than one page of them."""
    since = _inside_window_ms()
    counts = {
        wf.id: len(_qflow_ids(simulator, wf.id, since)) for wf in simulator.dataset().workflows
    }
    workflow_id = max(counts, key=counts.get)
    assert counts[workflow_id] > PAGE_SIZE
    return workflow_id


def _list_calls(simulator, workflow_id: str, since: int = 0) -> list[str]:
    """The pageNumber of each walk page read from the workflow's execution list, in order.

    A walk's pages carry its fixed `endAt`; a hot workflow's look at its newest executions
    while a walk is under way does not (it is not part of the walk).
    """
    path = f"/qflowapi/v1/workflows/{workflow_id}/executions"
    calls = simulator.calls[since:]
    return [c.query.get("pageNumber", "") for c in calls if c.path == path and c.query.get("endAt")]


def test_a_pass_cut_after_page_1_resumes_and_the_mirror_holds_exactly_qflows_window(simulator):
    wf = _multi_page_workflow(simulator)
    path = rf"/workflows/{wf}/executions$"
    # Page 2 of its list answers 500 to the first try and to the client's three retries.
    simulator.inject("status", path=path, query={"pageNumber": "2"}, status=500, times=4)

    first = mirror_sync(client=_fast_client())

    # Honest: the other workflows are done, this one is not, and the pass says so.
    assert first.partial and not first.ok
    assert first.summary.startswith("partial: 15 of 16 workflows, 1 failed")
    workflow = Workflow.objects.get(pk=wf)
    assert workflow.walk_page == 2  # where the next pass goes on
    assert workflow.synced_through is None  # the watermark did not advance
    assert Execution.objects.filter(workflow_id=wf).count() == PAGE_SIZE

    mark = len(simulator.calls)
    second = mirror_sync(client=_fast_client())

    assert second.ok, second.summary
    assert second.summary == "ok: 16 of 16 workflows"
    assert _list_calls(simulator, wf, mark) == ["2"]  # resumed at page 2, nothing re-read
    since = _inside_window_ms()
    assert _mirror_ids(wf, since) == _qflow_ids(simulator, wf, since)
    workflow.refresh_from_db()
    assert workflow.walk_page == 0
    assert workflow.synced_through >= first.started_at
    # Every other workflow too: exactly QFlow's executions for the window.
    for other in simulator.dataset().workflows:
        assert _mirror_ids(other.id, since) == _qflow_ids(simulator, other.id, since), other.name


def test_a_pass_cut_by_the_budget_mid_walk_resumes_where_it_stopped(simulator, settings):
    wf = _multi_page_workflow(simulator)
    # 80 calls an hour, paced over a 5 s interval: a pass may make 3 calls (token, workflow
    # list, one page), so the first pass stops after page 1 of the workflow.
    simulator.configure(rate_limit=100, rate_window_seconds=3600)
    settings.QFLOW_SYNC_INTERVAL_SECONDS = 5

    first = mirror_sync(workflow_ids=[wf])

    assert first.partial and not first.ok
    assert first.summary.startswith("partial: 0 of 1 workflows, rate budget used")
    assert Workflow.objects.get(pk=wf).walk_page == 2
    assert _list_calls(simulator, wf) == ["1"]

    mark = len(simulator.calls)
    second = mirror_sync(workflow_ids=[wf])

    assert second.ok, second.summary
    assert _list_calls(simulator, wf, mark) == ["2"]
    since = _inside_window_ms()
    assert _mirror_ids(wf, since) == _qflow_ids(simulator, wf, since)


def test_a_gap_anywhere_in_the_window_is_found_by_the_count_and_filled(simulator):
    """What older versions left behind: rows missing below the first page, for good."""
    wf = _multi_page_workflow(simulator)
    assert mirror_sync().ok
    since = _inside_window_ms()
    expected = _qflow_ids(simulator, wf, since)
    ordered = Execution.objects.filter(workflow_id=wf).order_by("-created_at")
    lost = [str(pk) for pk in ordered.values_list("id", flat=True)[PAGE_SIZE + 2 : PAGE_SIZE + 9]]
    Execution.objects.filter(pk__in=lost).delete()
    mark = len(simulator.calls)

    run = mirror_sync()

    assert run.ok, run.summary
    assert run.executions_new == len(lost) == 7
    assert _mirror_ids(wf, since) == expected
    # Page 1 showed the count short of QFlow's total, page 2 held the gap: two calls.
    assert _list_calls(simulator, wf, mark) == ["1", "2"]


def test_with_nothing_new_a_pass_costs_one_list_call_per_workflow(simulator):
    assert mirror_sync().ok
    mark = len(simulator.calls)

    run = mirror_sync()

    assert run.ok
    lists = [c for c in simulator.calls[mark:] if c.path.endswith("/executions")]
    assert len(lists) == Workflow.objects.count()
    assert {c.query["pageNumber"] for c in lists} == {"1"}


def test_a_pass_never_deletes_and_never_duplicates(simulator):
    assert mirror_sync().ok
    workflow = Workflow.objects.order_by("name").first()
    # A row from long ago that QFlow no longer lists stays in the mirror.
    old = Execution.objects.create(
        id="0f0f0f0f-0000-4000-8000-000000000001",
        workflow=workflow,
        status="Success",
        status_class=st.SUCCESS,
        is_terminal=True,
        created_at=timezone.now() - timedelta(days=50),
        started_at=timezone.now() - timedelta(days=50),
        last_synced_at=timezone.now() - timedelta(days=50),
    )
    count = Execution.objects.count()

    for _ in range(2):
        assert mirror_sync().ok

    assert Execution.objects.count() == count
    assert Execution.objects.filter(pk=old.pk).exists()


def test_a_purged_running_execution_is_marked_gone_and_not_asked_again(simulator):
    assert mirror_sync().ok
    # An execution the mirror last saw running, 45 days ago: QFlow answers 404 for it now.
    window_ms = simulator.window_start()
    purged = next(ex for ex in simulator.dataset().executions if ex.start_ms < window_ms - DAY_MS)
    started = datetime.fromtimestamp(purged.start_ms / 1000, tz=UTC)
    Execution.objects.create(
        id=purged.id,
        workflow_id=purged.workflow_id,
        status="Running",
        status_class=st.RUNNING,
        is_terminal=False,
        created_at=started,
        started_at=started,
        last_synced_at=started,
    )
    detail = f"/qflowapi/v1/executions/{purged.id}"
    mark = len(simulator.calls)

    first = mirror_sync()

    assert [c.path for c in simulator.calls[mark:]].count(detail) == 1
    assert first.ok, first.summary
    assert first.executions_gone == 1
    assert "1 gone from QFlow" in first.summary
    row = Execution.objects.get(pk=purged.id)
    assert row.gone_at is not None
    assert row.status == "Running"  # the last copy is kept as it was

    mark = len(simulator.calls)
    for _ in range(2):
        again = mirror_sync()
        assert again.ok and again.executions_gone == 0
    assert detail not in [c.path for c in simulator.calls[mark:]]


def test_a_claim_left_by_a_killed_worker_ends_within_its_lease(simulator, live_server, settings):
    """A worker killed mid-pass (SIGKILL, mid-request) blocks its workflow for one lease only."""
    assert settings.QFLOW_SYNC_LEASE_SECONDS == 60  # the default: within a minute
    wf = _multi_page_workflow(simulator)
    path = rf"/workflows/{wf}/executions$"
    simulator.inject("latency", path=path, query={"pageNumber": "2"}, seconds=20, times=1)
    lease = 10
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_other_processes(),
        "QFLOW_BASE_URL": live_server.url,
        "QFLOW_SIMULATOR": "false",
        "QFLOW_TOKEN": "",
        "QFLOW_CLIENT_ID": settings.QFLOW_DEMO_CLIENT_ID,
        "QFLOW_CLIENT_SECRET": settings.QFLOW_DEMO_CLIENT_SECRET,
        "QFLOW_SYNC_LEASE_SECONDS": str(lease),
    }
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "qflow_sync", "--workflow", wf],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            claimed = Workflow.objects.filter(pk=wf, walk_page=2).exclude(sync_claimed_by="")
            if claimed.exists() and "2" in _list_calls(simulator, wf):
                break  # page 1 stored, the request for page 2 under way
            assert worker.poll() is None, "the sync process ended before it could be killed"
            time.sleep(0.1)
        else:
            pytest.fail("the sync process never reached page 2")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed_at = timezone.now()
    dead = Workflow.objects.get(pk=wf)
    assert dead.sync_claimed_by
    assert dead.sync_claimed_until <= killed_at + timedelta(seconds=lease)

    held = mirror_sync(workflow_ids=[wf])
    assert "another sync holds it" in held.note
    while (picked := mirror_sync(workflow_ids=[wf])).workflows_synced == 0:
        assert timezone.now() < killed_at + timedelta(seconds=lease + 10), picked.summary
        time.sleep(0.5)

    assert picked.ok, picked.summary
    assert timezone.now() - killed_at < timedelta(seconds=lease + 5)
    since = _inside_window_ms()
    assert _mirror_ids(wf, since) == _qflow_ids(simulator, wf, since)
    assert SyncRun.objects.filter(finished_at__isnull=True).count() == 1  # the killed one


def test_a_pass_renews_its_lease_and_releases_its_claims(simulator, settings):
    settings.QFLOW_SYNC_LEASE_SECONDS = 30
    before = timezone.now()

    assert mirror_sync().ok

    # Every claim released at the end; none was ever set for longer than one lease.
    assert not Workflow.objects.exclude(sync_claimed_by="").exists()
    assert not Workflow.objects.filter(sync_claimed_until__isnull=False).exists()
    assert Workflow.objects.filter(last_visited_at__gte=before).count() == 16
