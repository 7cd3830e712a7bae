"""The QFlow client against the simulator over real HTTP: every endpoint, variant and fault.

Expectations come from the simulator's own data (`control.dataset()`, `control.executions()`),
never from the client, so a client and a simulator that agree on a mistake still fail here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from qflowui.qflow import QflowClient, client_from_settings
from qflowui.qflow.errors import (
    QflowAuthError,
    QflowBadResponse,
    QflowForbidden,
    QflowInvalidId,
    QflowNotFound,
    QflowRateLimited,
    QflowRequestRejected,
    QflowUnavailable,
)
from qflowui.qflow.types import Execution
from qflowui.simulator.config import FAILED, RUNNING, STATUS_WORDS, SUCCESS, TIMED_OUT

API = "/qflowapi/v1"
FIXED_TOKEN = "qflowui-fixed-test-token-0123456789"


@pytest.fixture
def sim(simulator, settings) -> Iterator[Any]:
    """The simulator with the default variants, whatever the environment says."""
    settings.QFLOW_SIMULATOR_OPTIONS = ""
    simulator.reset()
    yield simulator


@pytest.fixture
def client(sim) -> Iterator[QflowClient]:
    made = client_from_settings(backoff=0.01)
    yield made
    made.close()


# --- helpers --------------------------------------------------------------------------------


def _calls(sim, method: str | None = None, suffix: str = "") -> list:
    return [
        c for c in sim.calls if (method is None or c.method == method) and c.path.endswith(suffix)
    ]


def _token_calls(sim) -> int:
    return len([c for c in sim.calls if c.path == "/auth/oidc"])


def _in_window(sim, workflow_id: str) -> list[dict[str, Any]]:
    """The workflow's executions the API can list now, newest first, as the simulator sees them."""
    floor = sim.window_start()
    return [r for r in sim.executions(workflow_id) if r["createdAt"] >= floor]


def _walk(
    client: QflowClient, workflow_id: str, *, style: str = "pageNumber", page_size: int = 200, **kw
) -> list[Execution]:
    """Every execution the list endpoint gives, page by page (by pageNumber or by offset)."""
    found: list[Execution] = []
    offset = 0
    for page_number in range(1, 200):
        if style == "offset":
            page = client.list_executions(workflow_id, offset=offset, page_size=page_size, **kw)
        else:
            page = client.list_executions(
                workflow_id, page_number=page_number, page_size=page_size, **kw
            )
        found.extend(page.items)
        if not page.items or len(found) >= page.total:
            return found
        offset += len(page.items)
    raise AssertionError("the execution list never ended")


def _busiest(sim):
    return max(sim.dataset().workflows, key=lambda wf: len(_in_window(sim, wf.id)))


def _settled_with_failures(sim):
    """A workflow with no running execution (statuses stay put) and the most failures."""
    settled = [
        wf
        for wf in sim.dataset().workflows
        if all(r["status"] != RUNNING for r in _in_window(sim, wf.id))
    ]
    return max(settled, key=lambda wf: sum(r["status"] == FAILED for r in _in_window(sim, wf.id)))


def _finished_in_window(sim, *, status: str = SUCCESS, min_steps: int = 4):
    """A data set execution inside the window, finished with `status`, with small payloads."""
    floor, now = sim.window_start(), sim.now_ms()
    return next(
        ex
        for ex in sim.dataset().executions
        if ex.start_ms >= floor + 3_600_000
        and ex.end_ms < now
        and ex.status == status
        and len(ex.steps) >= min_steps
        and not ex.big
    )


def _linked_in_window(sim) -> tuple[str, str, str]:
    ds, floor = sim.dataset(), sim.window_start()
    return next(
        (parent, node, child)
        for parent, node, child in ds.linked
        if ds.execution(parent).start_ms >= floor + 3_600_000
    )


def _ms(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)


def _wait_for_server(call, seconds: float = 5.0) -> None:
    """Let a slow simulator request finish, so it cannot touch the next test's counters."""
    deadline = time.monotonic() + seconds
    while call.status is None and time.monotonic() < deadline:
        time.sleep(0.05)


# --- tokens ---------------------------------------------------------------------------------


def test_the_client_logs_in_once_with_the_demo_pair_for_many_requests(sim) -> None:
    wf = sim.dataset().workflows[0]
    ex = _in_window(sim, wf.id)[0]
    first, second = client_from_settings(), client_from_settings()

    first.list_workflows(page_size=5)
    first.get_workflow(wf.id)
    second.list_executions(wf.id, page_size=5)
    second.get_execution(ex["id"])
    first.list_steps(ex["id"])

    assert _token_calls(sim) == 1
    assert len(_calls(sim, "GET", "")) == 5
    assert all(c.status == 200 for c in sim.calls)


def test_a_fixed_token_is_used_as_is_without_logging_in(sim, settings) -> None:
    settings.QFLOW_TOKEN = FIXED_TOKEN
    settings.QFLOW_CLIENT_ID = settings.QFLOW_CLIENT_SECRET = ""
    client = client_from_settings()

    assert len(client.list_workflows(page_size=3).items) == 3
    client.get_workflow(sim.dataset().workflows[0].id)

    assert _token_calls(sim) == 0
    assert [c.status for c in sim.calls] == [200, 200]


def test_a_wrong_fixed_token_is_an_auth_error_with_no_login_attempt(sim, settings) -> None:
    # The simulator accepts settings.QFLOW_TOKEN, so this client brings another one.
    settings.QFLOW_TOKEN = FIXED_TOKEN
    client = QflowClient(settings.QFLOW_BASE_URL, token="not-the-token-the-simulator-knows")

    with pytest.raises(QflowAuthError) as caught:
        client.list_workflows()

    assert caught.value.detail == "Not authenticated"
    assert _token_calls(sim) == 0
    assert len(sim.calls) == 1


def test_an_expired_token_is_refreshed_once_and_the_request_then_succeeds(sim, client) -> None:
    client.list_workflows(page_size=1)
    sim.inject("expire_token", path=r"/workflows$")

    page = client.list_workflows(page_size=2)

    assert len(page.items) == 2
    assert _token_calls(sim) == 2
    assert [c.status for c in _calls(sim, "GET", "/workflows")] == [200, 401, 200]


# --- workflows ------------------------------------------------------------------------------


def test_every_workflow_is_listed_once_across_small_pages(sim, client) -> None:
    expected = {wf.id for wf in sim.dataset().workflows}

    ids = [wf.id for wf in client.iter_workflows(page_size=5)]

    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert len(_calls(sim, "GET", "/workflows")) == -(-len(expected) // 5)


def test_a_workflow_page_reports_the_total_and_its_own_slice(sim, client) -> None:
    total = len(sim.dataset().workflows)

    pages = [client.list_workflows(page_number=n, page_size=4) for n in (1, 2)]

    assert [p.total for p in pages] == [total, total]
    assert [len(p.items) for p in pages] == [4, 4]
    assert not {w.id for w in pages[0].items} & {w.id for w in pages[1].items}


def _component_with_next(sim, kind: type) -> tuple[Any, dict[str, Any]]:
    for wf in sim.dataset().workflows:
        for component in wf.components:
            if isinstance(component["next"], kind) and component["next"]:
                return wf, component
    raise AssertionError(f"the data set has no component whose next is a {kind.__name__}")


@pytest.mark.parametrize("kind", [str, list, dict], ids=["string", "list", "mapping"])
def test_workflow_details_decode_the_definition_into_nodes_and_edges(sim, client, kind) -> None:
    wf, component = _component_with_next(sim, kind)
    nxt = component["next"]
    if isinstance(nxt, str):
        expected = {(nxt, None)}
    elif isinstance(nxt, list):
        expected = {(target, None) for target in nxt}
    else:
        expected = {(target, label) for label, target in nxt.items()}

    got = client.get_workflow(wf.id)

    assert got.id == wf.id
    assert got.name == wf.name
    assert got.revision == wf.revision
    assert got.definition is not None
    assert [n.id for n in got.definition.nodes] == [c["id"] for c in wf.components]
    edges = {(e.target, e.label) for e in got.definition.edges if e.source == component["id"]}
    assert edges == expected
    node = next(n for n in got.definition.nodes if n.id == component["id"])
    assert set(node.next_ids) == {target for target, _ in expected}


def test_an_unknown_workflow_is_not_found(sim, client) -> None:
    with pytest.raises(QflowNotFound):
        client.get_workflow(str(uuid.uuid4()))


# --- executions -----------------------------------------------------------------------------


@pytest.mark.parametrize("paging", ["pageNumber", "offset", "both"])
def test_paging_by_page_number_and_by_offset_give_the_same_executions(sim, client, paging) -> None:
    sim.configure(paging=paging)
    wf = _busiest(sim)
    expected = [r["id"] for r in _in_window(sim, wf.id)]
    styles = ["pageNumber", "offset"] if paging == "both" else [paging]

    walked = {
        style: [e.id for e in _walk(client, wf.id, style=style, page_size=9)] for style in styles
    }

    assert len(expected) > 9 * 3
    for ids in walked.values():
        assert ids == expected


def test_a_total_sent_as_a_string_is_read_as_a_number(sim, client) -> None:
    sim.configure(total="string")
    wf = _busiest(sim)

    executions = client.list_executions(wf.id, page_size=5)
    workflows = client.list_workflows(page_size=5)

    assert executions.total == len(_in_window(sim, wf.id))
    assert isinstance(executions.total, int)
    assert workflows.total == len(sim.dataset().workflows)


def test_a_status_filter_gives_exactly_the_executions_with_those_statuses(sim, client) -> None:
    wf = _settled_with_failures(sim)
    wanted = (FAILED, TIMED_OUT)  # "Timed Out" has a space: it must be quoted in the QQL
    expected = [r["id"] for r in _in_window(sim, wf.id) if r["status"] in wanted]

    got = _walk(client, wf.id, statuses=list(wanted), page_size=7)

    assert len(expected) >= 3
    assert [e.id for e in got] == expected
    assert {e.status for e in got} <= set(wanted)


def test_a_start_and_end_range_gives_exactly_the_executions_inside_it(sim, client) -> None:
    wf = _busiest(sim)
    listed = _in_window(sim, wf.id)
    newest, oldest = listed[10]["createdAt"], listed[40]["createdAt"]
    expected = [r["id"] for r in listed if oldest <= r["createdAt"] <= newest]

    got = _walk(client, wf.id, start_at=_ms(oldest), end_at=_ms(newest), page_size=8)

    assert [e.id for e in got] == expected
    assert expected[0] == listed[10]["id"] and expected[-1] == listed[40]["id"]  # both ends in


def test_a_start_older_than_30_days_is_clamped_instead_of_refused(sim, client) -> None:
    wf = _busiest(sim)
    now = datetime.now(UTC)

    got = _walk(client, wf.id, start_at=now - timedelta(days=45))

    sent = _calls(sim, "GET", "/executions")[-1].query["startAt"]
    sent_ms = int(datetime.fromisoformat(sent.replace("Z", "+00:00")).timestamp() * 1000)
    assert sim.window_start() <= sent_ms <= (now - timedelta(days=29)).timestamp() * 1000
    expected = [r["id"] for r in _in_window(sim, wf.id) if r["createdAt"] >= sent_ms]
    assert [e.id for e in got] == expected
    assert all(c.status == 200 for c in sim.calls)


def test_ascending_order_is_descending_order_reversed(sim, client) -> None:
    wf = _busiest(sim)

    newest_first = [e.id for e in _walk(client, wf.id, order="-createdAt", page_size=50)]
    oldest_first = [e.id for e in _walk(client, wf.id, order="createdAt", page_size=50)]

    assert newest_first == [r["id"] for r in _in_window(sim, wf.id)]
    assert oldest_first == newest_first[::-1]


@pytest.mark.parametrize("vocabulary", ["upper", "conductor"])
def test_other_status_spellings_pass_through_verbatim(sim, client, vocabulary) -> None:
    wf = _settled_with_failures(sim)  # chosen in the default spelling, before the switch
    sim.configure(statuses=vocabulary)
    words = STATUS_WORDS[vocabulary]
    listed = _in_window(sim, wf.id)

    got = _walk(client, wf.id)
    failed = _walk(client, wf.id, statuses=[words[FAILED]])

    assert [(e.id, e.status) for e in got] == [(r["id"], r["status"]) for r in listed]
    assert {e.status for e in got} <= set(words.values())
    assert words[SUCCESS] in {e.status for e in got}
    assert [e.id for e in failed] == [r["id"] for r in listed if r["status"] == words[FAILED]]
    assert failed


# --- execution details ----------------------------------------------------------------------


@pytest.mark.parametrize("steps_key", ["steps", "items", "executionSteps"])
def test_execution_details_carry_the_steps_only_when_asked_whatever_their_key(
    sim, client, steps_key
) -> None:
    sim.configure(steps_key=steps_key)
    ex = _finished_in_window(sim)

    bare = client.get_execution(ex.id)
    full = client.get_execution(ex.id, include_steps=True)

    assert bare.id == full.id == ex.id
    assert bare.workflow_id == ex.workflow_id
    assert bare.status == full.status == SUCCESS
    assert bare.start_date == _ms(ex.start_ms)
    assert bare.steps is None
    assert full.steps is not None
    assert [s.node_id for s in full.steps] == [s.node_id for s in ex.steps]
    assert [s.event_order for s in full.steps] == list(range(1, len(ex.steps) + 1))
    assert steps_key in full.raw


def test_linked_executions_are_read_from_the_parent_and_from_the_child(sim, client) -> None:
    parent_id, _node, child_id = _linked_in_window(sim)

    parent = client.get_execution(parent_id)
    child = client.get_execution(child_id)

    assert child_id in parent.linked_execution_ids
    assert parent.parent_execution_id is None
    assert child.parent_execution_id == parent_id
    assert child.source == "WORKFLOW_TRIGGER"
    assert child.workflow_id == sim.dataset().workflow_by_key("ec2_verify").id


def test_an_unknown_execution_is_not_found(sim, client) -> None:
    with pytest.raises(QflowNotFound) as caught:
        client.get_execution(str(uuid.uuid4()))

    assert caught.value.status_code == 404


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_execution("not-a-uuid"),
        lambda c: c.list_steps("12345"),
        lambda c: c.get_step_output("../../workflows", "trigger"),
        lambda c: c.list_executions("x" * 36),
        lambda c: c.run_workflow("f516bcf4"),
    ],
    ids=["execution", "steps", "step-output", "executions", "run"],
)
def test_an_id_that_is_not_a_uuid_is_refused_before_any_request(sim, client, call) -> None:
    with pytest.raises(QflowInvalidId):
        call(client)

    assert client.calls == 0
    assert sim.calls == []


# --- steps ----------------------------------------------------------------------------------


def test_the_step_list_has_data_only_when_asked(sim, client) -> None:
    ex = _finished_in_window(sim)

    plain = client.list_steps(ex.id)
    with_data = client.list_steps(ex.id, include_data=True)

    assert [s.node_id for s in plain] == [s.node_id for s in with_data]
    assert [s.node_id for s in plain] == [s.node_id for s in ex.steps]
    assert all(s.input is None and s.output is None for s in plain)
    assert all(s.input is not None and s.output is not None for s in with_data)
    last = with_data[-1]
    assert last.input == client.get_step_input(ex.id, last.node_id)
    assert last.output == client.get_step_output(ex.id, last.node_id)


def test_step_details_describe_one_step(sim, client) -> None:
    ex = _finished_in_window(sim)
    planned = ex.steps[1]

    step = client.get_step(ex.id, planned.node_id)

    assert step.node_id == planned.node_id
    assert step.execution_id == ex.id
    assert step.node_type == planned.node_type
    assert step.status == SUCCESS
    assert step.event_order == planned.order
    assert step.start_date == _ms(planned.start_ms)
    assert step.end_date == _ms(planned.end_ms)
    assert step.error is None


def _payload_steps(sim) -> list[tuple[str, str]]:
    ex = _finished_in_window(sim)
    parent_id, event_node, _child = _linked_in_window(sim)
    return [(ex.id, "trigger"), (ex.id, ex.steps[1].node_id), (parent_id, event_node)]


@pytest.mark.parametrize("which", ["input", "output"])
def test_step_payloads_are_equal_whichever_parse_json_is_asked(sim, client, which) -> None:
    fetch = client.get_step_input if which == "input" else client.get_step_output
    for execution_id, node_id in _payload_steps(sim):
        parsed = fetch(execution_id, node_id, parse_json=True)
        raw = fetch(execution_id, node_id, parse_json=False)

        assert parsed == raw
        assert isinstance(parsed, dict | list)
    flags = [c.query["parseJson"] for c in _calls(sim, "GET", f"/{which}")]
    assert flags == ["true", "false"] * 3


def test_a_qualysevent_output_names_the_child_execution(sim, client) -> None:
    parent_id, event_node, child_id = _linked_in_window(sim)

    output = client.get_step_output(parent_id, event_node)

    assert isinstance(output, list)
    assert output[0]["source"] == "WORKFLOW_TRIGGER"
    assert child_id in json.dumps(output)


def test_a_multi_megabyte_output_is_equal_whichever_parse_json_is_asked(sim, client) -> None:
    execution_id, node_id, size = min(sim.dataset().big_payloads, key=lambda b: b[2])

    parsed = client.get_step_output(execution_id, node_id, parse_json=True)
    raw = client.get_step_output(execution_id, node_id, parse_json=False)

    assert size > 3_000_000
    assert isinstance(parsed, dict)
    assert parsed == raw


def test_a_failed_step_brings_its_error_text(sim, client) -> None:
    floor, now = sim.window_start(), sim.now_ms()
    ex = next(
        e
        for e in sim.dataset().executions
        if e.start_ms >= floor + 3_600_000
        and e.end_ms < now
        and e.status == FAILED
        and e.steps[-1].error
    )
    failed = ex.steps[-1]

    step = client.get_step(ex.id, failed.node_id)
    listed = client.list_steps(ex.id)[-1]
    execution = client.get_execution(ex.id, include_steps=True)

    assert step.status == listed.status == FAILED
    assert step.error == listed.error == failed.error
    assert execution.status == FAILED
    assert execution.steps is not None and execution.steps[-1].error == failed.error


# --- run ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["message", "data"])
def test_a_run_starts_an_execution_that_runs_then_finishes(sim, client, shape) -> None:
    sim.configure(
        run_response=shape, run_min_seconds=0.6, run_max_seconds=1.0, run_status="success"
    )
    wf = sim.dataset().workflow_by_key("s3_public")

    result = client.run_workflow(wf.id, input={"buckets": ["b-1"]}, variables={"region": "eu"})

    uuid.UUID(result.execution_id)
    if shape == "data":
        assert result.workflow_id == wf.id
    else:
        assert result.message == "Workflow execution started"
    started = client.get_execution(result.execution_id)
    assert started.status == RUNNING
    assert started.source == "PUBLIC_API"
    assert started.workflow_id == wf.id
    assert client.list_executions(wf.id, page_size=1).items[0].id == result.execution_id
    deadline = time.monotonic() + 5
    status = started.status
    while status == RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get_execution(result.execution_id).status
    assert status == SUCCESS


def test_a_connector_id_that_is_not_a_uuid_is_rejected_with_the_simulators_message(
    sim, client
) -> None:
    wf = sim.dataset().workflows[0]

    with pytest.raises(QflowRequestRejected) as caught:
        client.run_workflow(wf.id, variables={"connectorId": "my-aws-connector"})

    assert caught.value.status_code == 400
    assert caught.value.detail == "connectorId must be a connector UUID"
    assert len(_calls(sim, "POST", "/run")) == 1


def test_running_an_unknown_workflow_is_not_found(sim, client) -> None:
    with pytest.raises(QflowNotFound):
        client.run_workflow(str(uuid.uuid4()))


def test_a_run_answered_with_a_500_may_have_started_and_is_sent_only_once(sim, client) -> None:
    wf = sim.dataset().workflow_by_key("s3_public")
    before = sum(r["source"] == "PUBLIC_API" for r in sim.executions(wf.id))
    sim.inject("accept_then_status", path=r"/run$")

    with pytest.raises(QflowUnavailable) as caught:
        client.run_workflow(wf.id)

    assert caught.value.maybe_accepted is True
    assert caught.value.status_code == 500
    assert len(_calls(sim, "POST", "/run")) == 1
    assert sum(r["source"] == "PUBLIC_API" for r in sim.executions(wf.id)) == before + 1


def test_a_forbidden_run_is_a_forbidden_error(sim, client) -> None:
    sim.inject("status", path=r"/run$", status=403)

    with pytest.raises(QflowForbidden):
        client.run_workflow(sim.dataset().workflows[0].id)

    assert len(_calls(sim, "POST", "/run")) == 1


# --- faults over real HTTP ------------------------------------------------------------------


def test_a_response_slower_than_the_timeout_is_unavailable(sim) -> None:
    client = client_from_settings(timeout=0.3, max_retries=0)
    client.list_workflows(page_size=1)  # log in first: only the slow call may time out
    sim.inject("latency", path=r"/workflows$", seconds=3.0)

    started = time.monotonic()
    with pytest.raises(QflowUnavailable, match="timed out"):
        client.list_workflows(page_size=1)

    # It gave up at its timeout instead of waiting for the 3 s answer.
    assert time.monotonic() - started < 2.0
    _wait_for_server(_calls(sim, "GET", "/workflows")[-1])


def test_a_500_on_a_read_is_retried_once_then_succeeds(sim, client) -> None:
    sim.inject("status", path=r"/workflows$", status=500)

    page = client.list_workflows(page_size=2)

    assert len(page.items) == 2
    assert [c.status for c in _calls(sim, "GET", "/workflows")] == [500, 200]


@pytest.mark.parametrize("status", [429, 409])
def test_a_rate_limit_answer_is_waited_out_then_the_read_succeeds(sim, client, status) -> None:
    sim.inject("status", path=r"/workflows$", status=status, to_wait=1)

    started = time.monotonic()
    page = client.list_workflows(page_size=2)

    assert time.monotonic() - started >= 0.95
    assert len(page.items) == 2
    assert [c.status for c in _calls(sim, "GET", "/workflows")] == [status, 200]


@pytest.mark.parametrize(
    "call",
    [
        lambda c, wf, ex: c.list_workflows(page_size=5),
        lambda c, wf, ex: c.get_workflow(wf),
        lambda c, wf, ex: c.list_executions(wf, page_size=5),
        lambda c, wf, ex: c.get_execution(ex),
        lambda c, wf, ex: c.list_steps(ex),
    ],
    ids=["workflows", "workflow", "executions", "execution", "steps"],
)
def test_a_malformed_body_is_a_bad_response(sim, client, call) -> None:
    ex = _finished_in_window(sim)
    sim.inject("malformed", path=r"^/qflowapi/")

    with pytest.raises(QflowBadResponse, match="invalid JSON"):
        call(client, ex.workflow_id, ex.id)

    assert len(_calls(sim, "GET", "")) == 1


@pytest.mark.parametrize("parse_json", [True, False], ids=["parseJson", "raw"])
@pytest.mark.parametrize("which", ["input", "output"])
def test_a_truncated_step_payload_is_a_bad_response_not_a_string(
    sim, client, which, parse_json
) -> None:
    ex = _finished_in_window(sim)
    fetch = client.get_step_input if which == "input" else client.get_step_output
    sim.inject("malformed", path=rf"/{which}$")

    with pytest.raises(QflowBadResponse, match="invalid JSON"):
        fetch(ex.id, ex.steps[1].node_id, parse_json=parse_json)

    assert [c.status for c in _calls(sim, "GET", f"/{which}")] == [200]


@pytest.fixture
def elsewhere() -> Iterator[HTTPServer]:
    """A server on another loopback address: another origin than the simulator's."""
    server = HTTPServer(host="127.0.0.2", port=0)
    server.expect_request("/qflowapi/v1/workflows").respond_with_json({"total": 0, "items": []})
    server.start()
    yield server
    server.clear()
    server.stop()


def test_a_redirect_to_another_origin_is_refused_and_the_token_stays_home(
    sim, settings, elsewhere
) -> None:
    settings.QFLOW_TOKEN = FIXED_TOKEN
    client = client_from_settings()
    target = elsewhere.url_for("/qflowapi/v1/workflows")
    sim.inject("redirect", path=r"/workflows$", location=target)

    with pytest.raises(QflowBadResponse, match="another host") as caught:
        client.list_workflows()

    assert elsewhere.log == []
    assert FIXED_TOKEN not in str(caught.value)
    assert FIXED_TOKEN not in (caught.value.detail or "")
    assert [c.status for c in sim.calls] == [302]


def test_a_short_rate_limit_is_waited_out(sim, client) -> None:
    sim.configure(rate_limit=2, rate_window_seconds=1)
    wf = sim.dataset().workflows[0]

    started = time.monotonic()
    for _ in range(3):
        client.get_workflow(wf.id)

    assert time.monotonic() - started >= 0.9
    assert [c.status for c in _calls(sim, "GET", wf.id)] == [200, 200, 429, 200]
    info = client.rate_limit
    assert info is not None
    assert (info.limit, info.window_sec, info.concurrency_limit) == (2, 1, 2)
    assert info.concurrency_running is not None and info.concurrency_running >= 1


def test_a_long_rate_limit_raises_rate_limited_and_the_headers_are_kept(sim, client) -> None:
    sim.configure(rate_limit=2, rate_window_seconds=3600)
    wf = sim.dataset().workflows[0]

    client.get_workflow(wf.id)
    assert client.rate_limit is not None and client.rate_limit.remaining == 1
    client.get_workflow(wf.id)
    assert client.rate_limit.remaining == 0
    with pytest.raises(QflowRateLimited) as caught:
        client.get_workflow(wf.id)

    assert caught.value.status_code == 429
    assert caught.value.wait_seconds is not None and 3500 < caught.value.wait_seconds <= 3600
    assert [c.status for c in _calls(sim, "GET", wf.id)] == [200, 200, 429]
    info = client.rate_limit
    assert (info.limit, info.window_sec, info.remaining) == (2, 3600, 0)
    assert info.to_wait_sec is not None and 3500 < info.to_wait_sec <= 3600
