"""The simulator's fleet: a large tenant whose executions keep appearing as time goes by, its
clock seam, and gateways that advertise the limit without X-RateLimit-Remaining."""

from __future__ import annotations

import pytest

from qflowui.simulator import control

API = "/qflowapi/v1"
TOKEN = "fleet-test-token-0123456789"


@pytest.fixture
def fleet(settings):
    settings.QFLOW_SIMULATOR = True
    settings.QFLOW_TOKEN = TOKEN
    settings.QFLOW_SIMULATOR_OPTIONS = (
        "fleet_workflows=30,fleet_active=3,fleet_active_minutes=5,fleet_rare_per_month=30,"
        "fleet_days=1"
    )
    clock = {"now": control.clock()}
    control.reset()
    control.clock = lambda: clock["now"]
    yield clock
    control.clock = __import__("time").time
    control.reset()


def _get(client, path, **params):
    response = client.get(API + path, params, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    return response


def _listed(client, workflow_id: str) -> tuple[int, list[dict]]:
    body = _get(client, f"/workflows/{workflow_id}/executions", pageSize=200, pageNumber=1).json()
    return int(body["total"]), body["items"]


def test_a_fleet_lists_its_workflows_and_only_executions_created_by_now(client, fleet):
    ds = control.dataset()
    assert len(ds.workflows) == 30
    body = _get(client, "/workflows", pageSize=100, pageNumber=1).json()
    assert body["total"] == 30 and len(body["items"]) == 30
    names = [w["name"] for w in body["items"]]
    assert sum("(active #" in n for n in names) == 3

    active = ds.workflows[0]
    total, items = _listed(client, active.id)
    now_ms = int(fleet["now"] * 1000)
    assert total > 100 and items  # a day of runs every 5 minutes or so
    assert all(item["createdAt"] <= now_ms for item in items)
    later = [e for e in ds.by_workflow[active.id] if e.start_ms > now_ms]
    assert later  # the fleet holds executions still to come...
    assert _get(client, f"/executions/{later[-1].id}").status_code == 404  # ...not served

    # An hour later, the ones created meanwhile are listed, and only those.
    fleet["now"] += 3600
    total_after, items_after = _listed(client, active.id)
    due = [e for e in later if e.start_ms <= fleet["now"] * 1000]
    assert total_after == total + len(due) and due
    assert {e.id for e in due} <= {item["id"] for item in items_after}
    assert _get(client, f"/executions/{due[-1].id}").status_code == 200


def test_rare_workflows_run_rarely(client, fleet):
    ds = control.dataset()
    now_ms = int(fleet["now"] * 1000)
    rare = ds.workflows[3:]
    runs = [e for wf in rare for e in ds.by_workflow[wf.id] if e.start_ms <= now_ms]
    # 30 a month each for a day: about 27 in all; far fewer than one active workflow's.
    assert 5 <= len(runs) <= 80
    assert len(ds.by_workflow[ds.workflows[0].id]) > 4 * len(runs)


def test_the_rate_window_follows_the_simulators_clock(client, fleet):
    control.configure(rate_limit=2, rate_window_seconds=60)
    assert _get(client, "/workflows", pageSize=1, pageNumber=1).status_code == 200
    assert _get(client, "/workflows", pageSize=1, pageNumber=1).status_code == 200
    blocked = _get(client, "/workflows", pageSize=1, pageNumber=1)
    assert blocked.status_code == 429
    fleet["now"] += 61
    assert _get(client, "/workflows", pageSize=1, pageNumber=1).status_code == 200


def test_rate_headers_limit_advertises_the_limit_without_remaining(client, fleet):
    control.configure(rate_limit=300, rate_headers="limit")
    response = _get(client, "/workflows", pageSize=1, pageNumber=1)
    assert response["X-RateLimit-Limit"] == "300"
    assert response["X-RateLimit-Window-Sec"] == "3600"
    assert "X-RateLimit-Remaining" not in response
    control.configure(rate_headers="all")
    assert "X-RateLimit-Remaining" in _get(client, "/workflows", pageSize=1, pageNumber=1)
