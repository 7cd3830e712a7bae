"""Hostile or broken records from QFlow never stop the sync or break the list page: a
malformed record is skipped with a warning and counted, and the pass goes on.

Against the simulator over real HTTP, with its `poison` and `malformed` faults.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from qflowui.mirror.models import Execution, Workflow
from qflowui.mirror.sync import mirror_sync
from qflowui.qflow.errors import QflowBadResponse
from qflowui.qflow.parse import parse_execution, parse_page, skipping_bad_items

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_failure_steps(settings):
    """These tests count the list calls of a pass and what it rewrites: the extra phase that
    fetches failed executions' steps is tested on its own (test_mirror_failures.py)."""
    settings.QFLOW_SYNC_FAILURE_STEPS_PER_PASS = 0


def _window_ids(simulator, workflow_id: str) -> list[str]:
    since = int((timezone.now() - timedelta(days=30) + timedelta(minutes=10)).timestamp() * 1000)
    return [r["id"] for r in simulator.executions(workflow_id) if r["createdAt"] >= since]


def _one_page_workflow(simulator):
    return next(
        wf for wf in simulator.dataset().workflows if 20 < len(_window_ids(simulator, wf.id)) < 100
    )


def test_poisoned_records_are_skipped_counted_and_the_pass_goes_on(simulator, caplog):
    wf = _one_page_workflow(simulator)
    # Items 3 to 7 of every page of its list: an id that is not a UUID, a date "yesterday",
    # <script> in parentExecutionId, an object in linkedExecutionIds, a numeric status.
    simulator.inject("poison", path=rf"/workflows/{wf.id}/executions$", times=None, at=2)
    ids = _window_ids(simulator, wf.id)
    poisoned = set(ids[2:7])

    with caplog.at_level(logging.WARNING, logger="qflowui.mirror.sync"):
        run = mirror_sync()

    assert run.ok, run.summary
    assert run.summary == "ok: 16 of 16 workflows, 5 records skipped"
    assert run.records_skipped == 5
    rows = Execution.objects.filter(workflow_id=wf.id).values_list("id", flat=True)
    mirrored = {str(pk) for pk in rows}
    assert mirrored >= set(ids) - poisoned
    assert not mirrored & poisoned
    # Every other workflow synced as usual: one bad record no longer stops the pass.
    assert Workflow.objects.filter(synced_through__isnull=False).count() == 16
    skipped = [r for r in caplog.records if "skipped a malformed record" in r.getMessage()]
    assert len(skipped) == 5
    assert all("\n" not in r.getMessage() for r in skipped)

    # The next pass: the same five counted again, no endless re-listing of that workflow.
    mark = len(simulator.calls)
    again = mirror_sync()
    assert again.summary == "ok: 16 of 16 workflows, 5 records skipped"
    path = f"/qflowapi/v1/workflows/{wf.id}/executions"
    assert [c.path for c in simulator.calls[mark:]].count(path) == 1


def test_the_list_page_shows_the_skipped_records_and_no_error(simulator, viewer_client):
    wf = _one_page_workflow(simulator)
    simulator.inject(
        "poison", path=rf"/workflows/{wf.id}/executions$", times=None, kinds=["shape", "parent"]
    )
    assert mirror_sync().ok

    response = viewer_client.get("/executions/?range=all")

    assert response.status_code == 200
    html = response.content.decode()
    assert "· 2 malformed records from QFlow skipped" in html
    assert "<script>alert(" not in html
    assert viewer_client.get(f"/executions/?workflow={wf.id}&range=all").status_code == 200


def test_a_malformed_workflow_record_is_skipped_and_the_others_are_synced(simulator):
    simulator.inject("poison", path=r"/workflows$", times=None, kinds=["id"])

    run = mirror_sync()

    assert run.ok, run.summary
    assert run.summary == "ok: 15 of 15 workflows, 1 record skipped"
    assert Workflow.objects.count() == 15


def test_a_list_page_that_is_not_json_fails_that_workflow_only(simulator):
    wf = _one_page_workflow(simulator)
    simulator.inject("malformed", path=rf"/workflows/{wf.id}/executions$")

    first = mirror_sync()

    assert first.partial and not first.ok
    assert first.summary.startswith("partial: 15 of 16 workflows, 1 failed (QFlow sent invalid")
    assert not Execution.objects.filter(workflow_id=wf.id).exists()

    second = mirror_sync()
    assert second.ok, second.summary
    mirrored = {
        str(i) for i in Execution.objects.filter(workflow_id=wf.id).values_list("id", flat=True)
    }
    assert set(_window_ids(simulator, wf.id)) <= mirrored
    # Beyond those: only executions at the very edge of QFlow's 30 days (the helper above
    # leaves a 10-minute margin there), never anything else.
    edge = timezone.now() - timedelta(days=30) + timedelta(minutes=11)
    extra = Execution.objects.filter(workflow_id=wf.id).exclude(
        id__in=_window_ids(simulator, wf.id)
    )
    assert all(e.created_at <= edge for e in extra)


def test_parse_page_hands_unreadable_items_to_the_handler_and_keeps_the_rest():
    good = {"id": "0e71f117-648f-4ad2-a3a9-8f1b857a1b70", "createdAt": 1746007562042}
    body = {"total": 3, "items": [good, {"id": "x", "createdAt": "yesterday"}, "<b>"]}
    with pytest.raises(QflowBadResponse):
        parse_page(body, parse_execution)
    refused: list = []
    with skipping_bad_items(lambda index, raw, error: refused.append((index, str(error)))):
        page = parse_page(body, parse_execution)
    assert [item.id for item in page.items] == [good["id"]]
    assert page.total == 3
    assert [index for index, _ in refused] == [1, 2]
    assert "yesterday" in refused[0][1]
    assert parse_page(body, parse_execution, on_bad_item=lambda *a: None).total == 3
