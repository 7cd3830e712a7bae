"""The pure parsers, checked against the sample payloads from the QFlow docs.

The fixtures in tests/fixtures/seeds/ are copies of the documented samples; the
README there lists the few repairs (the docs' garbled step-details sample, the
truncated step list and workflow definition).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from qflowui.qflow.auth import FALLBACK_LIFETIME_SECONDS, refresh_time, token_from_body
from qflowui.qflow.errors import QflowBadResponse
from qflowui.qflow.parse import (
    parse_definition,
    parse_execution,
    parse_ms,
    parse_page,
    parse_payload,
    parse_payload_text,
    parse_rate_limit,
    parse_run_result,
    parse_step,
    parse_steps,
    parse_workflow,
)
from qflowui.qflow.query import iso_z, status_query
from qflowui.qflow.types import Edge, RateLimitInfo, Variable

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
WORKFLOW_ID = "f516bcf4-f6fb-46ac-a54f-ddbcf2a2d24a"
USER_ID = "0ffaf046-768b-79fc-83f6-aa25be52c2a1"


def seed(name: str) -> Any:
    return json.loads((SEEDS / name).read_text())


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- executions ---------------------------------------------------------------------


def test_it_reads_the_documented_execution_details() -> None:
    execution = parse_execution(seed("execution_details.json"))

    assert execution.id == "0e71f117-648f-4ad2-a3a9-8f1b857a1b70"
    assert execution.workflow_id == WORKFLOW_ID
    assert execution.customer_id == "54f50897-26f3-c9af-83f9-e71459be70d9"
    assert execution.status == "Success"
    assert execution.source == "UI"
    assert execution.execution_type == "Simple"
    assert execution.created_at == utc(2025, 4, 30, 10, 6, 2, 42000)
    assert execution.updated_at == utc(2025, 4, 30, 10, 7, 13, 97000)
    assert execution.start_date == utc(2025, 4, 30, 10, 6, 2, 41000)
    assert execution.end_date == utc(2025, 4, 30, 10, 7, 13, 52000)
    assert execution.created_by == USER_ID
    assert execution.variables == ["region=us-east-1"]
    assert execution.parent_execution_id is None
    assert execution.linked_execution_ids == []
    assert execution.par_date_key == "2025-04-30T00:00:00.000Z"
    assert execution.steps is None
    assert execution.raw["executionType"] == "Simple"


def test_it_drops_the_junk_entries_from_categories() -> None:
    execution = parse_execution(seed("execution_details.json"))

    assert execution.categories["projects"] == []  # was [[]]
    assert execution.categories["accounts"] == ["@aa70acae-6ea8-3acf-b504-f327855b316a"]
    assert execution.categories["solutions"] == ["AWS Best Practices"]
    assert execution.categories["services"] == []


def test_it_reads_the_execution_list_with_a_string_total() -> None:
    page = parse_page(seed("execution_list.json"), parse_execution, page_number=1, page_size=2)

    assert page.total == 9
    assert [e.id for e in page.items] == [
        "e5d57d53-79db-4840-a7a0-10d0cb1d8020",
        "6ad5f333-c4ad-4008-b0d3-caab170d130b",
    ]
    first = page.items[0]
    assert first.categories["projects"] == []  # was [null]
    assert first.end_date == utc(2025, 4, 21, 11, 13, 15, 144000)
    assert first.created_by == USER_ID
    assert (page.page_number, page.page_size) == (1, 2)


def test_it_takes_the_end_date_from_details_when_end_date_is_missing() -> None:
    raw = seed("execution_details.json")["data"]
    del raw["endDate"]

    assert parse_execution(raw).end_date == utc(2025, 4, 30, 10, 7, 13, 52000)


def test_it_takes_the_id_from_execution_when_id_is_missing() -> None:
    raw = seed("execution_details.json")["data"]
    del raw["id"]

    assert parse_execution(raw).id == "0e71f117-648f-4ad2-a3a9-8f1b857a1b70"


def test_it_passes_unknown_statuses_through_verbatim() -> None:
    raw = dict(seed("execution_details.json")["data"], status="Partially Cancelled")

    assert parse_execution(raw).status == "Partially Cancelled"


def test_it_reads_linked_execution_ids() -> None:
    raw = dict(seed("execution_details.json")["data"], linkedExecutionIds=["a", {"id": "b"}])

    assert parse_execution(raw).linked_execution_ids == ["a", "b"]


@pytest.mark.parametrize("key", ["steps", "items", "executionSteps", "somethingNew"])
def test_it_finds_included_steps_under_any_key(key: str) -> None:
    raw = dict(seed("execution_details.json")["data"])
    raw[key] = seed("step_list.json")["items"]

    steps = parse_execution(raw).steps

    assert steps is not None
    assert [s.node_id for s in steps] == ["node-e3a84822-qualysevent"]


# --- steps --------------------------------------------------------------------------


def test_it_reads_the_documented_step_list() -> None:
    (step,) = parse_steps(seed("step_list.json"))

    assert step.id == "01JT3585YRG0DHQNS9DNN432X3"
    assert step.execution_id == "0e72b4a1-abea-45b2-9ae9-91cd87506404"
    assert step.node_id == "node-e3a84822-qualysevent"
    assert step.node_type == "qualysevent"
    assert step.status == "Success"
    assert step.event_order == 2
    assert step.created_at == utc(2025, 4, 30, 10, 53, 0, 248000)
    assert step.start_date == utc(2025, 4, 30, 10, 53, 0, 100000)
    assert step.error is None
    assert step.input is None and step.output is None


def test_it_reads_the_repaired_step_details_sample() -> None:
    step = parse_step(seed("step_details.json"))

    assert step.node_id == "node-e3a84822-qualysevent"
    assert step.status == ""  # the garbled sample lost it
    assert step.par_date_key == "2025-04-30T00:00:00.000Z"


@pytest.mark.parametrize(
    "extra",
    [
        {"error": "boom"},
        {"errorMessage": "boom"},
        {"status": "Failed", "message": "boom"},
        {"details": {"error": "boom"}},
        {"error": {"message": "boom", "code": 7}},
    ],
)
def test_it_finds_a_step_error_wherever_qflow_put_it(extra: dict[str, Any]) -> None:
    raw = {**seed("step_details.json"), **extra}

    assert parse_step(raw).error == "boom"


def test_a_message_on_a_successful_step_is_not_an_error() -> None:
    raw = {**seed("step_details.json"), "status": "Success", "message": "Child workflow triggered"}

    assert parse_step(raw).error is None


def test_included_step_data_is_decoded_like_a_payload() -> None:
    output = seed("step_output_parsejson_false.json")
    raw = {**seed("step_details.json"), "input": '{"a": 1}', "output": output}

    step = parse_step(raw)

    assert step.input == {"a": 1}
    assert step.output == seed("step_output_parsejson_true.json")


# --- workflows ----------------------------------------------------------------------


def test_it_reads_the_documented_workflow_details() -> None:
    workflow = parse_workflow(seed("workflow_details.json"))

    assert workflow.id == WORKFLOW_ID
    assert workflow.name == ""  # the details sample has no name
    assert workflow.created_at == utc(2025, 4, 16, 7, 1, 18, 828000)
    assert workflow.updated_at == utc(2025, 5, 13, 5, 33, 52, 724000)
    assert workflow.created_by == USER_ID
    assert workflow.revision.startswith("27653453ffa1")
    assert workflow.definition is not None
    assert workflow.definition.variables[0] == Variable(key="region", value=["us-east-1"])
    assert workflow.definition.variables[3].value == ["@aa70acae-6ea8-3acf-b504-f327855b316a"]


def test_it_turns_every_shape_of_next_into_edges() -> None:
    definition = parse_workflow(seed("workflow_details.json")).definition
    assert definition is not None

    assert definition.edges == [
        Edge("trigger", "node-6748e0e3-resource", None),  # next: "…"
        Edge("node-6748e0e3-resource", "node-67649155-filter", None),  # next: ["…"]
        Edge("node-67649155-filter", "node-e3a84822-qualysevent", "true"),  # mapping
        Edge("node-67649155-filter", "node-5a1b2c3d-email", "false"),  # mapping to a list
    ]
    nodes = {node.id: node for node in definition.nodes}
    assert nodes["trigger"].type == "trigger"
    assert nodes["trigger"].previous_ids == []  # previous: null
    assert nodes["trigger"].inputs["event"]["active"] is False
    assert nodes["node-e3a84822-qualysevent"].next_ids == []  # next: null
    assert nodes["node-67649155-filter"].next_ids == [
        "node-e3a84822-qualysevent",
        "node-5a1b2c3d-email",
    ]
    assert nodes["node-67649155-filter"].previous_ids == ["node-6748e0e3-resource"]


def test_it_accepts_an_already_decoded_definition() -> None:
    text = seed("workflow_details.json")["data"]["definition"]

    assert parse_definition(json.loads(text)) == parse_definition(text)


def test_edges_known_only_from_previous_are_kept() -> None:
    definition = parse_definition(
        {"components": [{"id": "a", "next": None}, {"id": "b", "previous": "a"}]}
    )

    assert definition.edges == [Edge("a", "b", None)]


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"name": "Stop idle EC2"}, "Stop idle EC2"),
        ({"title": "Stop idle EC2"}, "Stop idle EC2"),
        ({"qflowName": "Stop idle EC2"}, "Stop idle EC2"),
        ({}, ""),
    ],
)
def test_the_workflow_name_comes_from_whichever_field_is_there(
    fields: dict[str, str], name: str
) -> None:
    workflow = parse_workflow({"id": WORKFLOW_ID, **fields})

    assert workflow.name == name
    assert workflow.definition is None


def test_it_reads_list_fields_of_a_workflow() -> None:
    workflow = parse_workflow(
        {
            "id": WORKFLOW_ID,
            "description": "d",
            "category": "Cost",
            "cloudProviders": ["AWS", "Azure"],
            "deployed": "Undeployed",
        }
    )

    assert (workflow.description, workflow.category) == ("d", "Cost")
    assert workflow.cloud_providers == ["AWS", "Azure"]
    assert workflow.deployed is False


# --- run ----------------------------------------------------------------------------


def test_it_reads_the_execution_id_from_both_run_response_shapes() -> None:
    flat = parse_run_result(seed("run_response_message.json"))
    wrapped = parse_run_result(seed("run_response_envelope.json"))

    assert flat.execution_id == "497d0fe7-xxxx-xxxx-xxxx-3d90e904d1c5"
    assert flat.message == "Workflow execution started"
    assert wrapped.execution_id == "93c29829-8efd-4dcb-bfb8-efd6bbb2b725"
    assert wrapped.workflow_id == WORKFLOW_ID


def test_a_run_response_without_an_execution_id_is_a_bad_response() -> None:
    with pytest.raises(QflowBadResponse, match="executionId"):
        parse_run_result({"message": "Workflow execution started"})


# --- payloads -----------------------------------------------------------------------


def test_parse_json_false_and_true_give_the_same_output() -> None:
    as_string = seed("step_output_parsejson_false.json")
    as_array = seed("step_output_parsejson_true.json")

    assert isinstance(as_string, str)
    assert parse_payload(as_string) == parse_payload(as_array) == as_array
    assert as_array[0]["executionId"] == "93c29829-8efd-4dcb-bfb8-efd6bbb2b725"


def test_the_docs_unquoted_escaped_output_decodes_too() -> None:
    printed = (SEEDS / "step_output_parsejson_false.json").read_text().strip()[1:-1]

    assert parse_payload_text(printed) == seed("step_output_parsejson_true.json")


def test_an_input_object_survives_a_string_round_trip() -> None:
    as_object = seed("step_input_parsejson_true.json")

    assert parse_payload(as_object) == as_object
    assert parse_payload(json.dumps(as_object)) == as_object
    assert parse_payload(json.dumps(json.dumps(as_object))) == as_object  # doubly encoded
    assert as_object["method"] == "RunWorkflow"


@pytest.mark.parametrize("text", ["hello", "not {json"])
def test_a_plain_string_payload_stays_a_string(text: str) -> None:
    assert parse_payload(text) == text
    assert parse_payload(json.dumps(text)) == text


# --- malformed data -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("parser", "body", "message"),
    [
        (parse_execution, [], "expected a JSON object"),
        (parse_execution, {"status": "Success"}, "no id"),
        (parse_execution, {"id": "x", "createdAt": "yesterday"}, "createdAt"),
        (parse_execution, {"id": "x", "tags": [], "workflow": {"a": 1}}, "workflow"),
        (parse_workflow, "nope", "expected a JSON object"),
        (parse_workflow, {"id": "x", "definition": "{broken"}, "not valid JSON"),
        (parse_workflow, {"id": "x", "definition": "[1, 2]"}, "expected a JSON object"),
        (parse_definition, {"components": [{"id": "a", "next": 5}]}, "next"),
        (parse_definition, {"components": "a,b"}, "components"),
        (parse_step, {"id": "s"}, "nodeId"),
        (parse_steps, {"items": {"a": 1}}, "items should be a list"),
    ],
)
def test_malformed_data_is_a_bad_response(parser: Any, body: Any, message: str) -> None:
    with pytest.raises(QflowBadResponse, match=message):
        parser(body)


def test_a_total_that_is_not_a_number_is_a_bad_response() -> None:
    with pytest.raises(QflowBadResponse, match="total"):
        parse_page({"total": "lots", "items": []}, parse_execution)


# --- small helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (1746007562042, utc(2025, 4, 30, 10, 6, 2, 42000)),
        ("1746007562042", utc(2025, 4, 30, 10, 6, 2, 42000)),
        ("2025-04-30T00:00:00.000Z", utc(2025, 4, 30)),
        ("2025-04-30T02:00:00+02:00", utc(2025, 4, 30)),
        ("2025-04-30T00:00:00", utc(2025, 4, 30)),
    ],
)
def test_timestamps_become_aware_utc_datetimes(value: Any, expected: datetime | None) -> None:
    assert parse_ms(value) == expected


def test_rate_limit_headers_are_read_case_insensitively() -> None:
    info = parse_rate_limit({"x-ratelimit-limit": "300", "X-RateLimit-Remaining": "7"})

    assert info == RateLimitInfo(limit=300, remaining=7)
    assert parse_rate_limit({"Content-Type": "application/json"}) is None


def test_statuses_become_qql_with_quotes_where_needed() -> None:
    assert status_query(["Success", "Failed"], None) == "status: Success OR status: Failed"
    assert (
        status_query(["Timed Out"], "qflow.name: x") == '(qflow.name: x) AND (status: "Timed Out")'
    )
    assert status_query([], "  ") is None


def test_dates_are_sent_as_iso_z_with_milliseconds() -> None:
    assert iso_z(utc(2025, 5, 12, 1, 45, 36, 220000)) == "2025-05-12T01:45:36.220Z"
    assert iso_z(datetime(2025, 5, 12, 1, 45, 36)) == "2025-05-12T01:45:36.000Z"  # naive is UTC


def test_the_token_is_refreshed_a_minute_before_it_expires() -> None:
    now = 1_700_000_000.0
    header = "eyJhbGciOiJSUzI1NiJ9"
    payload = "eyJleHAiOjE3MDAwMDM2MDB9"  # {"exp":1700003600}

    assert refresh_time(f"{header}.{payload}.sig", now) == 1_700_003_540.0
    assert refresh_time("opaque-token", now) == now + FALLBACK_LIFETIME_SECONDS - 60


@pytest.mark.parametrize(
    "body", ["abc.def.ghi\n", '{"access_token": "abc.def.ghi"}', '{"token": "abc.def.ghi"}']
)
def test_the_token_endpoint_may_answer_in_text_or_json(body: str) -> None:
    assert token_from_body(body) == "abc.def.ghi"


def test_an_html_token_answer_is_a_bad_response_that_does_not_echo_it() -> None:
    with pytest.raises(QflowBadResponse) as caught:
        token_from_body("<html><body>login secret-ish</body></html>")

    assert "secret" not in str(caught.value)
