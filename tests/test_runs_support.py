"""Helpers and fixtures (no tests here) for the run tests: actors, mirrored workflows, the
form's POST data, a recorder for enqueues, and routing the test's tasks to a real worker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission

from qflowui.mirror.models import Workflow
from qflowui.runs.models import Run

# What `from tests.test_runs_support import *` brings: the fixtures (helpers are imported by name).
__all__ = ["other_runner", "runner", "runner_client", "sent"]

AWS_DEFINITION = {
    "variables": [
        {"key": "region", "value": ["us-east-1"]},
        {"key": "credentials", "value": ["@aa70acae-6ea8-3acf-b504-f327855b316a"]},
        {"key": "depthCount", "value": [2]},
    ],
    "components": [],
}


def runners_group() -> Group:
    """The Runners group as the data migrations make it, running and triaging (recreated
    after a transactional flush)."""
    group, _ = Group.objects.get_or_create(name="Runners")
    group.permissions.add(
        Permission.objects.get(codename="run_workflow", content_type__app_label="runs"),
        Permission.objects.get(codename="change_triage", content_type__app_label="triage"),
    )
    return group


@pytest.fixture
def runner(django_user_model, password):
    user = django_user_model.objects.create_user(username="rita.runner", password=password)
    user.groups.add(runners_group())
    return user


@pytest.fixture
def other_runner(django_user_model, password):
    user = django_user_model.objects.create_user(username="otto.runner", password=password)
    user.groups.add(runners_group())
    return user


@pytest.fixture
def runner_client(client, runner):
    client.force_login(runner)
    return client


def fake_workflow(cloud: str = "AWS", name: str = "Stop idle EC2 instances") -> Workflow:
    """A mirrored workflow that exists only here (for tests that never reach QFlow)."""
    return Workflow.objects.create(
        id=uuid.uuid4(), name=name, cloud=cloud, cloud_providers=[cloud], definition=AWS_DEFINITION
    )


def mirror_workflows(simulator, *, with_executions_of: list[str] | None = None) -> list[Workflow]:
    """Mirror the simulator's workflows over HTTP (and the executions of a few of them)."""
    from qflowui.mirror.sync import mirror_sync

    run = mirror_sync(workflow_ids=with_executions_of or ["none"])
    assert run.ok, run.error
    return list(Workflow.objects.all())


def simulator_workflow(simulator, cloud: str = "AWS"):
    """A deployed simulator workflow of that cloud (its dataset record)."""
    return next(w for w in simulator.dataset().workflows if w.cloud == cloud)


def form_data(workflow: Any, **fields: Any) -> dict[str, Any]:
    """A complete, valid run form POST; keyword arguments override or add fields."""
    data = {
        "workflow": str(workflow.id),
        "input": '{"buckets": ["test-bucket-1"]}',
        "idempotency_key": str(uuid.uuid4()),
        "action": "confirm",
    }
    data.update({k: v for k, v in fields.items() if v is not None})
    return data


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, tuple]]:
    """Record what would be handed to the broker instead of sending it."""
    from qflowui.runs import services

    calls: list[tuple[str, tuple]] = []

    def fake_send(task_name: str, args: tuple, *, countdown: float | None = None) -> bool:
        calls.append((task_name, args))
        return True

    monkeypatch.setattr(services, "_send", fake_send)
    return calls


def point_broker(monkeypatch, url: str, queue: str | None = None) -> None:
    """Make this (test) process send tasks to `url`, on `queue`, as the app would."""
    from qflowui.celery import app

    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setitem(app.conf, "broker_url", url)
    if queue is not None:
        monkeypatch.setitem(app.conf, "task_default_queue", queue)


def worker_env(live_server, settings, **extra: str) -> dict[str, str]:
    """What a worker process needs to reach the simulator served by this test's live server."""
    return {
        "QFLOW_BASE_URL": live_server.url,
        "QFLOW_SIMULATOR": "false",
        "QFLOW_TOKEN": "",
        "QFLOW_CLIENT_ID": settings.QFLOW_DEMO_CLIENT_ID,
        "QFLOW_CLIENT_SECRET": settings.QFLOW_DEMO_CLIENT_SECRET,
        "QFLOW_TIMEOUT_SECONDS": "5",
        **extra,
    }


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def run_state(run_id: int) -> str:
    return Run.objects.values_list("state", flat=True).get(pk=run_id)


def api_runs(simulator, workflow_id: str) -> list[dict]:
    """Executions started through POST /run of a workflow (not the demo data set's)."""
    ds = simulator.dataset()
    return [e for e in simulator.executions(workflow_id) if ds.execution(e["id"]) is None]
