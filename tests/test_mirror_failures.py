"""Why it failed, in the list: the failing step and its error are kept on the execution.

The sync fetches the steps of failed executions (newest first, within its budget), the
failing step's name and first error line show in the list row, `error=` finds executions by
a phrase of their error, and errors that differ only by ids share one failure key.
"""

from __future__ import annotations

import importlib
import re
import uuid
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from qflowui.mirror import status as st
from qflowui.mirror.failures import error_pattern, failing_step, failure_key
from qflowui.mirror.models import Execution, Step
from qflowui.mirror.sync import mirror_sync
from tests.test_executions_list import make_execution, make_workflow, page, shown

ROW = re.compile(r'<tr data-execution-id="([^"]+)".*?</tr>', re.S)


# --- the error pattern ------------------------------------------------------------------


ACCESS_DENIED = (
    "AccessDenied: User: arn:aws:sts::{account}:assumed-role/QFLOW_1/qflow-{session} is not "
    "authorized to perform: ec2:StopInstances on resource: arn:aws:ec2:us-east-1:{account}:"
    "instance/{instance} because no identity-based policy allows the ec2:StopInstances action"
)


def test_errors_that_differ_only_by_ids_share_one_pattern():
    a = ACCESS_DENIED.format(account="123456789012", session="1a2b3c4d", instance="i-0663d3f3")
    b = ACCESS_DENIED.format(account="210987654321", session="9f8e7d6c", instance="i-0c6024ad")
    assert error_pattern(a) == error_pattern(b)
    assert "123456789012" not in error_pattern(a)
    assert error_pattern(a).startswith("AccessDenied: User: <arn> is not authorized")

    state = "IncorrectInstanceState: The instance 'i-0{}' is not in a state to be stopped."
    assert error_pattern(state.format("663d3f3e572608d5")) == error_pattern(
        state.format("c6024ad8375f39ef")
    )
    timed = "Step timed out after {} seconds at {} from 10.0.{}.7"
    assert error_pattern(timed.format(300, "2026-11-30T10:42:07Z", 3)) == error_pattern(
        timed.format(900, "2026-12-01T01:00:00+01:00", 200)
    )
    uuids = f"AuthorizationFailed: The client '{uuid.uuid4()}' has no authorization"
    assert error_pattern(uuids) == error_pattern(
        f"AuthorizationFailed: The client '{uuid.uuid4()}' has no authorization"
    )


def test_different_errors_keep_different_patterns_and_keys():
    throttled = error_pattern("ThrottlingException: Rate exceeded")
    expired = error_pattern("ExpiredToken: The security token included in the request is expired")
    assert throttled == "ThrottlingException: Rate exceeded"
    assert throttled != expired
    wf = uuid.uuid4()
    assert failure_key(wf, "node-a", throttled) != failure_key(wf, "node-b", throttled)
    assert failure_key(wf, "node-a", throttled) != failure_key(uuid.uuid4(), "node-a", throttled)
    assert len(failure_key(wf, "node-a", throttled)) == 16


def test_the_pattern_of_a_huge_or_hostile_error_is_bounded():
    pattern = error_pattern("x" * 1_000_000 + "\n" * 1000 + "<script>")
    assert len(pattern) <= 300


def test_the_failing_step_is_the_first_failed_one_in_order_else_a_cancelled_one():
    class S:
        def __init__(self, node_id, status_class, order):
            self.node_id, self.status_class, self.event_order = node_id, status_class, order
            self.started_at = None

    steps = [S("late", st.FAILED, 5), S("ok", st.SUCCESS, 1), S("first", st.TIMED_OUT, 3)]
    assert failing_step(steps).node_id == "first"
    assert failing_step([S("c", st.CANCELLED, 2), S("ok", st.SUCCESS, 1)]).node_id == "c"
    assert failing_step([S("ok", st.SUCCESS, 1)]) is None


# --- the sync fetches why it failed -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_pass_fetches_the_steps_of_the_newest_failed_executions_within_its_cap(
    simulator, settings, viewer_client
):
    settings.QFLOW_SYNC_FAILURE_STEPS_PER_PASS = 4
    run = mirror_sync()
    assert run.ok, run.summary

    failed = Execution.objects.filter(status_class__in=[st.FAILED, st.TIMED_OUT], is_terminal=True)
    assert failed.count() > 8
    newest = list(failed.order_by("-started_at")[:4])
    for execution in newest:
        assert execution.steps_synced_at is not None
        step = Step.objects.get(execution=execution, node_id=execution.failure_node_id)
        assert step.status_class in (st.FAILED, st.TIMED_OUT)
        assert execution.failure_message == step.error.strip() != ""
        assert execution.failure_step  # the component's name (or its node id)
        assert len(execution.failure_key) == 16
    # Only the cap: the older failures wait for the next pass.
    assert failed.exclude(failure_key="").count() == 4

    fetched = {c.path for c in simulator.calls if c.path.count("/executions/") == 1}
    asked = {p.rsplit("/", 1)[-1] for p in fetched if p.endswith(tuple("0123456789abcdef"))}
    assert {str(e.id) for e in newest} <= asked

    calls_before = len(simulator.calls)
    second = mirror_sync()
    assert second.ok, second.summary
    assert failed.exclude(failure_key="").count() == 8
    again = [c.path for c in simulator.calls[calls_before:]]
    for execution in newest:  # never fetched twice
        assert not any(p.endswith(str(execution.id)) for p in again)

    # The list says why each of them failed, with the whole error on hover.
    html = page(viewer_client, "?status=failed&status=timed_out&range=all")
    rows = {m.group(1): m.group(0) for m in ROW.finditer(html)}
    for execution in newest:
        row = rows[str(execution.id)]
        assert "data-failure" in row
        assert _escaped(execution.failure_step) in row
        assert _escaped(execution.failure_message.split("\n")[0][:80]) in row
        assert f"?step={execution.failure_node_id}" in row


def _escaped(text: str) -> str:
    from django.utils.html import escape

    return escape(text)


# --- the list ---------------------------------------------------------------------------


def _failed(wf, message: str, *, node: str = "node-stop", name: str = "Stop instances", **kw):
    execution = make_execution(wf, status="Failed", **kw)
    Step.objects.create(
        execution=execution,
        node_id="node-list",
        status="Success",
        status_class=st.SUCCESS,
        event_order=1,
        last_synced_at=timezone.now(),
    )
    Step.objects.create(
        execution=execution,
        node_id=node,
        status="Failed",
        status_class=st.FAILED,
        event_order=2,
        error=message,
        last_synced_at=timezone.now(),
    )
    wf.definition = {
        "components": [
            {"id": "node-list", "name": "List instances", "type": "resource"},
            {"id": node, "name": name, "type": "action"},
        ]
    }
    wf.save()
    from qflowui.mirror.failures import failure_apply

    execution.workflow = wf
    failure_apply(execution)
    execution.refresh_from_db()
    return execution


@pytest.mark.django_db
def test_a_failed_row_shows_its_step_and_first_error_line_and_others_show_none(viewer_client):
    wf = make_workflow()
    message = (
        "AccessDenied: not authorized to perform ec2:StopInstances\n"
        "Request id 4f3c9e2a-1b2c-4d5e-8f90-123456789abc, password=hunter2hunter2"
    )
    failed = _failed(wf, message)
    ok = make_execution(wf, status="Success")
    html = page(viewer_client, "?range=all")
    rows = {m.group(1): m.group(0) for m in ROW.finditer(html)}
    row = rows[str(failed.id)]
    assert 'class="why-step">Stop instances</span>' in row
    assert 'class="why-error">AccessDenied: not authorized to perform ec2:StopInstances</span>' in (
        row
    )
    # The whole error on hover, with its second line; never a secret.
    assert "Request id 4f3c9e2a-1b2c-4d5e-8f90-123456789abc" in row
    assert "hunter2" not in html
    assert f'href="/executions/{failed.id}/?step=node-stop"' in row
    assert "data-failure" not in rows[str(ok.id)]


@pytest.mark.django_db
def test_a_hostile_error_is_escaped_in_the_row(viewer_client):
    wf = make_workflow()
    failed = _failed(wf, '<img src=x onerror="alert(1)"> failed', name="<b>step</b>")
    html = page(viewer_client, "?range=all")
    assert "<img src=x" not in html and "<b>step</b>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; failed" in html
    assert str(failed.id) in html


@pytest.mark.django_db
def test_error_filter_finds_executions_whose_error_contains_the_phrase(viewer_client):
    wf = make_workflow()
    denied = _failed(wf, "AccessDenied: not authorized to perform ec2:StopInstances")
    throttled = _failed(wf, "ThrottlingException: Rate exceeded")
    make_execution(wf, status="Success")
    assert shown(viewer_client, "?range=all&error=accessdenied") == [str(denied.id)]
    assert shown(viewer_client, "?range=all&error=Rate+exceeded") == [str(throttled.id)]
    html = page(viewer_client, "?range=all&error=Rate+exceeded")
    assert "error contains “Rate exceeded”" in html  # a removable chip
    assert 'data-filter="error"' in html


@pytest.mark.django_db
def test_the_failure_filter_lists_exactly_one_group(viewer_client):
    wf = make_workflow()
    a = _failed(wf, "IncorrectInstanceState: The instance 'i-0663d3f3e572608d5' is not stoppable")
    b = _failed(wf, "IncorrectInstanceState: The instance 'i-0c6024ad8375f39ef' is not stoppable")
    other_step = _failed(
        wf, "IncorrectInstanceState: The instance 'i-0aaaaaaa' is not stoppable", node="node-2"
    )
    _failed(wf, "ThrottlingException: Rate exceeded")
    assert a.failure_key == b.failure_key != other_step.failure_key
    assert sorted(shown(viewer_client, f"?range=all&failure={a.failure_key}")) == sorted(
        [str(a.id), str(b.id)]
    )
    html = page(viewer_client, f"?range=all&failure={a.failure_key}")
    assert 'data-filter="failure"' in html and "“Stop instances”: IncorrectInstanceState" in html
    bad = page(viewer_client, "?range=all&failure=nothex")
    assert "is not a failure group" in bad


@pytest.mark.django_db
def test_the_migration_fills_executions_whose_steps_were_stored_before(viewer_client):
    wf = make_workflow()
    failed = _failed(wf, "ThrottlingException: Rate exceeded")
    Execution.objects.filter(pk=failed.pk).update(
        failure_node_id="", failure_step="", failure_message="", failure_pattern="", failure_key=""
    )
    migration = importlib.import_module("qflowui.mirror.migrations.0007_backfill_failures")
    migration.backfill(apps, None)
    failed.refresh_from_db()
    assert failed.failure_step == "Stop instances"
    assert failed.failure_message == "ThrottlingException: Rate exceeded"
    assert failed.failure_key
    assert failed.started_at > timezone.now() - timedelta(days=1)
