"""The sync pass fills the mirror from the simulator over real HTTP, incrementally."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from qflowui.mirror.models import Execution, SyncRun, Workflow
from qflowui.mirror.sync import mirror_sync
from qflowui.qflow import client_from_settings

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_failure_steps(settings):
    """These tests count the list calls of a pass and what it rewrites: the extra phase that
    fetches failed executions' steps is tested on its own (test_mirror_failures.py)."""
    settings.QFLOW_SYNC_FAILURE_STEPS_PER_PASS = 0


def _api_executions(simulator) -> dict[str, str]:
    """What the API can list: the simulator's executions of the last 30 days, id -> status."""
    since = timezone.now() - timedelta(days=30) + timedelta(minutes=1)
    listed = {}
    for wf in simulator.dataset().workflows:
        page = 1
        client = client_from_settings()
        while True:
            got = client.list_executions(
                str(wf["id"] if isinstance(wf, dict) else wf.id),
                page_number=page,
                page_size=200,
                start_at=since,
            )
            listed.update({e.id: e.status for e in got.items})
            if not got.items or page * 200 >= got.total:
                break
            page += 1
    return listed


def _calls(simulator, since: int = 0) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in simulator.calls[since:]]


def test_a_first_pass_mirrors_every_workflow_and_execution_the_api_lists(simulator):
    run = mirror_sync()

    assert run.ok, run.error
    assert Workflow.objects.count() == len(simulator.dataset().workflows) >= 12
    expected = _api_executions(simulator)
    mirrored = dict(Execution.objects.values_list("id", "status"))
    mirrored = {str(k): v for k, v in mirrored.items()}
    # Executions that finished in between may differ in status, never in presence.
    assert set(expected) <= set(mirrored)
    assert run.executions_new == len(mirrored)
    assert Workflow.objects.exclude(definition=None).count() == Workflow.objects.count()
    assert Workflow.objects.filter(backfilled=True).count() == Workflow.objects.count()


def test_a_second_pass_changes_nothing_that_is_finished(simulator):
    mirror_sync()
    before = {
        str(e.id): (e.status, e.updated_at, e.last_synced_at)
        for e in Execution.objects.filter(is_terminal=True)
    }
    count = Execution.objects.count()

    second = mirror_sync()

    assert second.ok
    assert second.executions_new == 0
    assert Execution.objects.count() == count
    after = {
        str(e.id): (e.status, e.updated_at, e.last_synced_at)
        for e in Execution.objects.filter(is_terminal=True, id__in=list(before))
    }
    assert after == before
    assert (
        second.executions_updated
        == Execution.objects.filter(last_synced_at__gte=second.started_at).count()
    )


def test_an_incremental_pass_after_one_new_execution_makes_only_the_calls_it_needs(simulator):
    mirror_sync()
    workflow = Workflow.objects.order_by("name").first()
    new_id = (
        client_from_settings().run_workflow(str(workflow.id), input={"why": "test"}).execution_id
    )
    unfinished = {
        str(i) for i in Execution.objects.filter(is_terminal=False).values_list("id", flat=True)
    }
    mark = len(simulator.calls)

    run = mirror_sync()

    assert run.ok, run.error
    assert Execution.objects.filter(pk=new_id, workflow=workflow).exists()
    assert run.executions_new == 1
    calls = _calls(simulator, mark)
    listing = [p for m, p in calls if p.endswith("/executions")]
    details = [p for m, p in calls if "/executions/" in p and not p.endswith("/executions")]
    assert calls.count(("GET", "/qflowapi/v1/workflows")) == 1
    assert len(listing) == Workflow.objects.count()  # one first page per workflow
    assert not [
        p for m, p in calls if p.startswith("/qflowapi/v1/workflows/") and p.count("/") == 4
    ]
    # Only executions still unfinished and off the first pages are fetched one by one.
    assert {p.rsplit("/", 1)[1] for p in details} <= unfinished
    assert run.api_calls == len([c for c in calls if c[1].startswith("/qflowapi")]) + sum(
        1 for c in calls if c[1] == "/auth/oidc"
    )


def test_a_409_with_a_wait_header_makes_the_pass_wait_and_finish(simulator):
    simulator.inject(
        "status",
        path=r"/executions$",
        status=409,
        headers={"X-RateLimit-ToWait-Sec": "1"},
        times=1,
    )
    started = time.monotonic()

    run = mirror_sync()

    assert run.ok, run.error
    assert time.monotonic() - started >= 1.0
    assert Workflow.objects.filter(backfilled=True).count() == Workflow.objects.count()


def test_an_unreachable_upstream_is_recorded_and_nothing_is_lost(simulator):
    mirror_sync()
    count = Execution.objects.count()
    simulator.inject("status", path=r"^/qflowapi/", status=503, times=None)

    run = mirror_sync()

    assert not run.ok
    assert run.upstream_down
    assert "unreachable" in run.error
    assert Execution.objects.count() == count


def test_a_workflow_claimed_by_another_pass_is_left_to_it(simulator):
    mirror_sync(workflow_ids=["00000000-0000-0000-0000-000000000000"])  # workflows only
    claimed = Workflow.objects.order_by("name").first()
    Workflow.objects.filter(pk=claimed.pk).update(
        sync_claimed_until=timezone.now() + timedelta(minutes=5)
    )

    run = mirror_sync()

    assert run.ok
    assert not Execution.objects.filter(workflow=claimed).exists()
    assert Execution.objects.exclude(workflow=claimed).exists()
    assert "another sync holds it" in run.note


def test_a_pass_stays_under_80_percent_of_the_advertised_rate_limit(simulator):
    simulator.configure(rate_limit=30, rate_window_seconds=3600)

    first = mirror_sync()
    second = mirror_sync()

    # Cut short by the budget: partial, and said so, never "ok".
    assert first.partial and second.partial
    assert not first.ok and not second.ok
    assert first.api_calls + second.api_calls <= 24
    assert "budget" in (first.note + second.note)
    assert second.summary.startswith(f"partial: {second.workflows_synced} of 16 workflows")


def test_the_command_prints_what_the_pass_did(simulator, capsys):
    call_command("qflow_sync")
    out = capsys.readouterr().out
    assert "workflows" in out
    assert f"{Execution.objects.count()} new" in out
    assert SyncRun.objects.count() == 1


@pytest.mark.celery_worker
def test_a_freshly_started_worker_fills_the_mirror_without_waiting_for_beat(
    simulator, live_server, settings, start_celery_worker
):
    start_celery_worker(
        env={
            "QFLOW_SYNC_ON_START": "true",
            "QFLOW_BASE_URL": live_server.url,
            "QFLOW_SIMULATOR": "false",
            "QFLOW_CLIENT_ID": settings.QFLOW_DEMO_CLIENT_ID,
            "QFLOW_CLIENT_SECRET": settings.QFLOW_DEMO_CLIENT_SECRET,
        }
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not SyncRun.objects.filter(ok=True).exists():
        time.sleep(0.5)
    assert SyncRun.objects.filter(ok=True).exists()
    assert Execution.objects.count() > 0
