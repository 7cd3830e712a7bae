"""The simulator's faults for the sync's tests: faults narrowed to one page of one list, and
poisoned records."""

from __future__ import annotations

import pytest

from qflowui.simulator import control
from tests.test_simulator_api import API, Api, issue_token, workflow_by_key


@pytest.fixture
def sim(settings):
    settings.QFLOW_SIMULATOR = True
    settings.QFLOW_TOKEN = ""
    settings.QFLOW_CLIENT_ID = settings.QFLOW_DEMO_CLIENT_ID
    settings.QFLOW_CLIENT_SECRET = settings.QFLOW_DEMO_CLIENT_SECRET
    settings.QFLOW_SIMULATOR_OPTIONS = ""
    control.reset()
    yield control
    control.reset()


@pytest.fixture
def api(client, settings, sim) -> Api:
    return Api(client, issue_token(client, settings))


def test_a_fault_narrowed_by_query_hits_only_that_page_of_that_list(api):
    wf, other = workflow_by_key("ec2_public"), workflow_by_key("s3_public")
    path = f"{API}/workflows/{wf.id}/executions"
    control.inject(
        "status", path=rf"/workflows/{wf.id}/executions$", query={"pageNumber": 2}, times=None
    )
    assert api.get(path, pageSize=50, pageNumber=1).status_code == 200
    assert api.get(path, pageSize=50, pageNumber=2).status_code == 500
    assert api.get(path, pageSize=50, pageNumber=2).status_code == 500  # every time
    assert api.get(path, pageSize=50, pageNumber=3).status_code == 200
    other_path = f"{API}/workflows/{other.id}/executions"
    assert api.get(other_path, pageSize=50, pageNumber=2).status_code == 200


def test_a_poison_fault_spoils_records_from_at_in_the_order_of_kinds(api):
    wf = workflow_by_key("ec2_public")
    path = f"{API}/workflows/{wf.id}/executions"
    clean = api.json(path, pageSize=10)
    control.inject("poison", path=rf"/workflows/{wf.id}/executions$", at=1)

    spoiled = api.json(path, pageSize=10)

    assert spoiled["total"] == clean["total"]  # QFlow's own records, only unreadable
    items, before = spoiled["items"], clean["items"]
    assert items[0] == before[0]
    assert items[1]["id"] == "not-a-uuid" and items[1]["execution"] == "not-a-uuid"
    assert items[2]["createdAt"] == "yesterday" and items[2]["id"] == before[2]["id"]
    assert items[3]["parentExecutionId"].startswith("<script>")
    assert items[4]["linkedExecutionIds"] == [{"evil": "<img src=x onerror=alert('linked')>"}]
    assert items[5]["status"] == 3
    assert items[6:] == before[6:]
    assert api.json(path, pageSize=10) == clean  # times=1 by default


def test_a_poison_fault_can_replace_a_whole_record_and_spoil_a_single_answer(api):
    wf = workflow_by_key("s3_public")
    control.inject("poison", path=r"/executions$", kinds="shape")
    items = api.json(f"{API}/workflows/{wf.id}/executions", pageSize=3)["items"]
    assert items[0] == "<script>alert('not an object')</script>"
    execution_id = items[1]["id"]
    control.inject("poison", path=rf"/executions/{execution_id}$", kinds=["date"])
    data = api.json(f"{API}/executions/{execution_id}")["data"]
    assert data["createdAt"] == "yesterday" and data["id"] == execution_id


def test_unknown_poisons_are_refused(sim):
    with pytest.raises(ValueError, match="unknown poison"):
        control.inject("poison", kinds=["explode"])
