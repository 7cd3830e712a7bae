"""The QFlow simulator's HTTP API: auth, workflows, executions, steps, runs, variants, faults."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from qflowui.simulator import control, dataset, tokens
from qflowui.simulator.dataset import DAY_MS

API = "/qflowapi/v1"
SEED_ITEM_KEYS = {
    "execution", "workflow", "endDate", "parDateKey", "executionType", "source",
    "parentExecutionId", "tags", "createdAt", "customerId", "details", "id", "categories",
    "startDate", "linkedExecutionIds", "updatedAt", "status", "variables",
}  # fmt: skip
CATEGORY_KEYS = {
    "regions", "projects", "solutions", "cloud_providers", "services", "accounts",
    "resource_groups", "apps",
}  # fmt: skip
STEP_KEYS = {
    "id", "createdAt", "updatedAt", "tags", "customerId", "eventOrder", "nodeId", "execution",
    "nodeType", "status", "startDate", "endDate", "parDateKey",
}  # fmt: skip
RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Window-Sec",
    "X-RateLimit-Remaining",
    "X-Concurrency-Limit-Limit",
    "X-Concurrency-Limit-Running",
)


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


class Api:
    """The Django test client speaking to the simulator with a bearer token."""

    def __init__(self, client, token: str) -> None:
        self.client = client
        self.token = token

    def get(self, path: str, **params):
        return self.client.get(path, params, headers={"Authorization": f"Bearer {self.token}"})

    def post(self, path: str, body: object = None, raw: str | None = None):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(
            path,
            data,
            content_type="application/json",
            headers={"Authorization": f"Bearer {self.token}"},
        )

    def json(self, path: str, **params):
        response = self.get(path, **params)
        assert response.status_code == 200, response.content[:300]
        return response.json()


def issue_token(client, settings) -> str:
    response = client.post(
        "/auth/oidc",
        headers={
            "clientId": settings.QFLOW_DEMO_CLIENT_ID,
            "clientSecret": settings.QFLOW_DEMO_CLIENT_SECRET,
        },
    )
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def api(client, settings, sim) -> Api:
    return Api(client, issue_token(client, settings))


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def workflow_by_key(key: str):
    return control.dataset().workflow_by_key(key)


def in_window(ex) -> bool:
    return ex.start_ms >= control.window_start() + DAY_MS  # a day of margin from the edge


def components(api: Api, workflow_id: str) -> list[dict]:
    data = api.json(f"{API}/workflows/{workflow_id}")["data"]
    return json.loads(data["definition"])["components"]


# --- auth -----------------------------------------------------------------------------------


def test_it_issues_a_raw_hs256_jwt_for_the_demo_client_pair(client, settings, sim):
    token = issue_token(client, settings)

    header = json.loads(b64decode(token.split(".")[0]))
    claims = json.loads(b64decode(token.split(".")[1]))
    assert header["alg"] == "HS256"
    assert 4 * 3600 - 5 <= claims["exp"] - time.time() <= 4 * 3600 + 1
    assert tokens.check(token) == tokens.VALID


def test_it_refuses_a_token_for_a_wrong_client_secret(client, settings, sim):
    response = client.post(
        "/auth/oidc",
        headers={"clientId": settings.QFLOW_DEMO_CLIENT_ID, "clientSecret": "nope"},
    )
    assert response.status_code == 401


def test_the_token_lifetime_follows_the_token_ttl_option(client, settings, sim):
    control.configure(token_ttl_seconds=60)
    claims = json.loads(b64decode(issue_token(client, settings).split(".")[1]))
    assert 55 <= claims["exp"] - time.time() <= 61


@pytest.mark.parametrize("header", [None, "Bearer not-a-jwt", "Bearer a.b.c"])
def test_it_answers_401_not_authenticated_without_a_valid_token(client, sim, header):
    headers = {"Authorization": header} if header else {}
    response = client.get(f"{API}/workflows", {"pageSize": 5}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "status": 401,
        "error": "Unauthorized",
        "message": "Not authenticated",
    }


def test_it_answers_401_jwt_expired_for_an_expired_token(client, sim):
    expired = tokens.issue("qflowui-demo", ttl_seconds=-5)
    response = Api(client, expired).get(f"{API}/workflows", pageSize=5)
    assert response.status_code == 401
    assert response.json()["message"] == "JWT expired"


def test_it_accepts_the_configured_fixed_token(client, settings, sim):
    settings.QFLOW_TOKEN = "fixed-token-for-tests"
    assert (
        Api(client, "fixed-token-for-tests").get(f"{API}/workflows", pageSize=5).status_code == 200
    )


def test_every_endpoint_is_404_when_the_simulator_is_off(client, settings, sim):
    settings.QFLOW_SIMULATOR = False
    assert client.get(f"{API}/workflows", {"pageSize": 5}).status_code == 404
    assert client.post("/auth/oidc").status_code == 404


# --- workflows and the data set -------------------------------------------------------------


def test_it_lists_at_least_twelve_workflows_across_aws_azure_gcp_and_oci(api):
    body = api.json(f"{API}/workflows", pageSize=100, pageNumber=1)
    assert body["total"] >= 12 and len(body["items"]) == body["total"]
    clouds = {c for item in body["items"] for c in item["cloudProviders"]}
    assert clouds == {"AWS", "AZURE", "GCP", "OCI"}
    assert {"name", "description", "category", "deployed", "definition"} <= set(body["items"][0])


def test_the_workflow_list_filters_by_name_with_qql(api):
    body = api.json(f"{API}/workflows", pageSize=50, query="qflow.name: Publicly accessible RDS")
    assert [i["name"] for i in body["items"]] == ["Publicly accessible RDS DB Instances"]


def test_workflow_details_carry_a_json_string_definition_whose_revision_matches(api):
    wf = workflow_by_key("ec2_public")
    data = api.json(f"{API}/workflows/{wf.id}")["data"]
    assert data["id"] == data["workflow"] == wf.id
    definition = json.loads(data["definition"])
    assert data["revision"] == hashlib.sha256(data["definition"].encode()).hexdigest()
    keys = {v["key"] for v in definition["variables"]}
    assert {"region", "credentials"} <= keys
    credentials = next(v for v in definition["variables"] if v["key"] == "credentials")
    assert credentials["value"][0].startswith("@")
    first = definition["components"][0]
    assert set(first) == {"name", "id", "type", "next", "previous", "inputs"}
    assert first["id"] == "trigger" and first["previous"] is None


def test_definitions_have_3_to_40_components_with_mapping_and_list_branches(api):
    counts, mapping_next, list_next = [], 0, 0
    for wf in control.dataset().workflows:
        comps = components(api, wf.id)
        counts.append(len(comps))
        mapping_next += sum(isinstance(c["next"], dict) for c in comps)
        list_next += sum(isinstance(c["next"], list) for c in comps)
        for c in comps[1:]:
            assert c["id"].startswith("node-") and c["id"].endswith(f"-{c['type']}")
    assert min(counts) >= 3 and max(counts) <= 40 and max(counts) >= 30
    assert mapping_next and list_next
    types = {c["type"] for wf in control.dataset().workflows for c in wf.components}
    assert types == {
        "trigger",
        "resource",
        "filter",
        "action",
        "wait",
        "qualysevent",
        "notification",
    }


def test_the_data_set_holds_at_least_2000_executions_over_60_days(sim):
    ds = control.dataset()
    assert len(ds.executions) >= 2000
    oldest = min(e.start_ms for e in ds.executions)
    assert ds.anchor_ms - oldest > 58 * DAY_MS and ds.anchor_ms - oldest <= 60 * DAY_MS
    statuses = Counter(e.status for e in ds.executions)
    assert statuses.most_common(1)[0][0] == "Success"
    assert {"Failed", "Cancelled", "Timed Out"} <= set(statuses)
    assert {e.source for e in ds.executions} == {
        "UI", "SCHEDULE", "EVENT", "PUBLIC_API", "WORKFLOW_TRIGGER"
    }  # fmt: skip
    assert len({e.created_by for e in ds.executions}) >= 4
    running = [e for e in ds.executions if e.status_at(ds.anchor_ms) == "Running"]
    assert len(running) >= 3


def test_two_builds_with_the_same_seed_give_identical_ids_and_another_seed_does_not():
    first = dataset.build(7, 1_760_000_000_000)
    second = dataset.build(7, 1_760_000_000_000)
    other = dataset.build(8, 1_760_000_000_000)
    assert [e.id for e in first.executions] == [e.id for e in second.executions]
    assert [w.revision for w in first.workflows] == [w.revision for w in second.workflows]
    assert first.executions[0].id != other.executions[0].id


def test_a_data_set_built_now_covers_60_days_with_at_least_2000_executions():
    now = int(time.time() * 1000)
    built = dataset.build(11, now)
    assert len(built.executions) >= 2000
    oldest = min(e.start_ms for e in built.executions)
    assert now - oldest > 55 * 86_400_000


# --- execution list -------------------------------------------------------------------------


def busiest_workflow():
    ds = control.dataset()
    return max(ds.workflows, key=lambda w: len(ds.by_workflow[w.id]))


def test_execution_items_are_shaped_exactly_like_the_seed(api):
    wf = busiest_workflow()
    body = api.json(f"{API}/workflows/{wf.id}/executions", pageSize=5, pageNumber=1)
    assert isinstance(body["total"], int) and body["total"] > 5
    for item in body["items"]:
        assert set(item) == SEED_ITEM_KEYS
        assert set(item["categories"]) == CATEGORY_KEYS
        assert item["id"] == item["execution"] and item["workflow"] == wf.id
        assert item["parDateKey"].endswith("T00:00:00.000Z")
        assert item["tags"][0].startswith("created_by=")


def test_page_number_and_offset_paging_give_the_same_records_without_gaps(api):
    wf = busiest_workflow()
    path = f"{API}/workflows/{wf.id}/executions"
    total = api.json(path, pageSize=1, pageNumber=1)["total"]
    by_page, by_offset = [], []
    for number in range(1, total // 37 + 2):
        by_page += [i["id"] for i in api.json(path, pageSize=37, pageNumber=number)["items"]]
        offset = (number - 1) * 37
        by_offset += [i["id"] for i in api.json(path, pageSize=37, offset=offset)["items"]]
    assert by_page == by_offset
    assert len(by_page) == len(set(by_page)) == total
    expected = [
        e["id"] for e in control.executions(wf.id) if e["createdAt"] >= control.window_start()
    ]
    assert by_page == expected


def test_the_offset_variant_ignores_page_number_and_vice_versa(api):
    path = f"{API}/workflows/{busiest_workflow().id}/executions"
    first = [i["id"] for i in api.json(path, pageSize=10, pageNumber=1)["items"]]
    control.configure(paging="offset")
    assert [i["id"] for i in api.json(path, pageSize=10, pageNumber=3)["items"]] == first
    control.configure(paging="pageNumber")
    assert [i["id"] for i in api.json(path, pageSize=10, offset=20)["items"]] == first


def test_page_size_is_mandatory_and_at_most_200(api):
    path = f"{API}/workflows/{busiest_workflow().id}/executions"
    assert api.get(path).status_code == 400
    assert api.get(path, pageSize=201).status_code == 400
    assert api.get(path, pageSize="ten").status_code == 400
    assert api.get(path, pageSize=200).status_code == 200


def test_the_list_only_covers_the_last_30_days(api):
    wf = busiest_workflow()
    body = api.json(f"{API}/workflows/{wf.id}/executions", pageSize=200, order="createdAt")
    assert body["items"][0]["createdAt"] >= control.window_start()
    older = [e for e in control.dataset().by_workflow[wf.id] if e.start_ms < control.window_start()]
    assert older, "the data set keeps 60 days"


def test_start_at_older_than_30_days_is_400_or_empty_or_clamped_per_variant(api):
    path = f"{API}/workflows/{busiest_workflow().id}/executions"
    too_old = iso(int(time.time() * 1000) - 45 * DAY_MS)
    response = api.get(path, pageSize=10, startAt=too_old)
    assert response.status_code == 400 and "30 days" in response.json()["message"]
    control.configure(window="empty")
    assert api.json(path, pageSize=10, startAt=too_old) == {"total": 0, "items": []}
    control.configure(window="clamp")
    assert api.json(path, pageSize=10, startAt=too_old) == api.json(path, pageSize=10)


def test_start_at_and_end_at_bound_the_list(api):
    wf = busiest_workflow()
    now = int(time.time() * 1000)
    start, end = now - 20 * DAY_MS, now - 10 * DAY_MS
    body = api.json(
        f"{API}/workflows/{wf.id}/executions", pageSize=200, startAt=iso(start), endAt=iso(end)
    )
    expected = [e for e in control.dataset().by_workflow[wf.id] if start <= e.start_ms <= end]
    assert body["total"] == len(expected) > 0
    assert all(start <= i["createdAt"] <= end for i in body["items"])


def test_order_created_at_sorts_oldest_first_and_the_default_is_newest_first(api):
    path = f"{API}/workflows/{busiest_workflow().id}/executions"
    newest = [i["createdAt"] for i in api.json(path, pageSize=50)["items"]]
    oldest = [i["createdAt"] for i in api.json(path, pageSize=50, order="createdAt")["items"]]
    assert newest == sorted(newest, reverse=True) and oldest == sorted(oldest)
    assert oldest[0] < newest[-1]
    assert api.get(path, pageSize=5, order="colour").status_code == 400


def windowed(workflow_id: str) -> list[dict]:
    return [e for e in control.executions(workflow_id) if e["createdAt"] >= control.window_start()]


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("status: Failed", {"Failed"}),
        ('status: "Timed Out"', {"Timed Out"}),
        ("status: Timed Out", {"Timed Out"}),
        ("status: Success OR status: Cancelled", {"Success", "Cancelled"}),
    ],
)
def test_status_qql_filters_the_execution_list(api, query, wanted):
    wf = workflow_by_key("root_audit")
    body = api.json(f"{API}/workflows/{wf.id}/executions", pageSize=200, query=query)
    expected = [e["id"] for e in windowed(wf.id) if e["status"] in wanted]
    assert [i["id"] for i in body["items"]] == expected
    assert body["total"] == len(expected)


def test_anded_parenthesised_groups_filter_by_status_and_source(api):
    wf = workflow_by_key("s3_public")
    query = "(status: Success OR status: Failed) AND source: UI"
    body = api.json(f"{API}/workflows/{wf.id}/executions", pageSize=200, query=query)
    expected = [
        e["id"]
        for e in windowed(wf.id)
        if e["status"] in ("Success", "Failed") and e["source"] == "UI"
    ]
    assert [i["id"] for i in body["items"]] == expected and expected


@pytest.mark.parametrize(
    "query", ["status:", "(status: Success", "colour: red", "status: [1 .. 2]"]
)
def test_an_unparseable_query_is_a_400(api, query):
    path = f"{API}/workflows/{busiest_workflow().id}/executions"
    response = api.get(path, pageSize=10, query=query)
    assert response.status_code == 400 and "query" in response.json()["message"].lower()


def test_total_is_a_string_in_the_string_variant(api):
    control.configure(total="string")
    body = api.json(f"{API}/workflows/{busiest_workflow().id}/executions", pageSize=2)
    assert isinstance(body["total"], str) and int(body["total"]) > 2


@pytest.mark.parametrize(
    ("vocabulary", "words"),
    [
        ("upper", {"SUCCESS", "FAILED", "CANCELLED", "TIMED_OUT"}),
        ("conductor", {"COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"}),
    ],
)
def test_the_status_vocabulary_variant_changes_the_wire_spelling(api, vocabulary, words):
    control.configure(statuses=vocabulary)
    wf = busiest_workflow()
    seen = {
        i["status"] for i in api.json(f"{API}/workflows/{wf.id}/executions", pageSize=200)["items"]
    }
    assert seen <= words | {"RUNNING"} and len(seen) >= 3
    spelled = sorted(words)[0]
    filtered = api.json(
        f"{API}/workflows/{wf.id}/executions", pageSize=200, query=f"status: {spelled}"
    )
    assert {i["status"] for i in filtered["items"]} == {spelled}


# --- execution details and steps ------------------------------------------------------------


def a_windowed_execution(key: str, status: str = "Success"):
    now = int(time.time() * 1000)
    return next(
        e
        for e in control.dataset().by_workflow[workflow_by_key(key).id]
        if in_window(e) and e.status_at(now) == status
    )


@pytest.mark.parametrize("key", ["steps", "items", "executionSteps"])
def test_execution_details_include_the_steps_under_each_steps_key_variant(api, key):
    control.configure(steps_key=key)
    ex = a_windowed_execution("s3_public")
    plain = api.json(f"{API}/executions/{ex.id}", includeSteps="false")["data"]
    full = api.json(f"{API}/executions/{ex.id}", includeSteps="true")["data"]
    assert plain["id"] == ex.id and key not in plain
    steps = full[key]
    assert [s["eventOrder"] for s in steps] == list(range(1, len(steps) + 1))
    assert steps[0]["nodeId"] == "trigger"
    assert all(ex.start_ms <= s["startDate"] <= s["endDate"] <= ex.end_ms for s in steps)
    assert all(set(s) == STEP_KEYS for s in steps)


def test_an_execution_older_than_30_days_is_404_though_the_data_set_keeps_it(api):
    old = next(e for e in control.dataset().executions if e.start_ms < control.window_start())
    assert api.get(f"{API}/executions/{old.id}").status_code == 404
    assert api.get(f"{API}/executions/{uuid.uuid4()}").status_code == 404
    assert api.get(f"{API}/executions/not-a-uuid").status_code == 400


def test_the_step_list_has_ulid_ids_and_include_data_adds_input_and_output(api):
    ex = a_windowed_execution("azure_rdp")
    body = api.json(f"{API}/executions/{ex.id}/steps")
    assert body["total"] == len(ex.steps) == len(body["items"])
    assert all(len(s["id"]) == 26 and s["id"].isalnum() for s in body["items"])
    with_data = api.json(f"{API}/executions/{ex.id}/steps", includeData="true")
    for step in with_data["items"]:
        assert {"input", "output"} <= set(step)
        assert step["input"]["globalVariables"]["credentials_azure"] == "********************"
    descending = api.json(f"{API}/executions/{ex.id}/steps", order="-eventOrder")["items"]
    assert [s["eventOrder"] for s in descending] == sorted(
        (s["eventOrder"] for s in body["items"]), reverse=True
    )


def test_a_failed_execution_stops_at_a_failed_step_with_error_text(api):
    ex = a_windowed_execution("ec2_public", "Failed")
    steps = api.json(f"{API}/executions/{ex.id}/steps")["items"]
    assert steps[-1]["status"] == "Failed" and steps[-1]["error"]
    assert all("error" not in s for s in steps[:-1])
    reached = {s["nodeId"] for s in steps}
    unreached = [
        c["id"] for c in workflow_by_key("ec2_public").components if c["id"] not in reached
    ]
    assert api.get(f"{API}/executions/{ex.id}/steps/{unreached[0]}").status_code == 404
    assert api.get(f"{API}/executions/{ex.id}/steps/{unreached[0]}/output").status_code == 404
    output = api.json(
        f"{API}/executions/{ex.id}/steps/{steps[-1]['nodeId']}/output", parseJson="true"
    )
    assert output["success"] is False and output["error"]["message"] == steps[-1]["error"]


def test_access_denied_errors_read_like_aws(sim):
    errors = [
        s.error
        for e in control.dataset().executions
        for s in e.steps
        if s.error and s.error.startswith("AccessDenied")
    ]
    assert any("is not authorized to perform: ec2:StopInstances" in e for e in errors)
    assert all(e.endswith("action") for e in errors)


def test_step_details_are_the_bare_step_object(api):
    ex = a_windowed_execution("gcs_public")
    node = ex.steps[1].node_id
    step = api.json(f"{API}/executions/{ex.id}/steps/{node}")
    assert step["nodeId"] == node and step["execution"] == ex.id and set(step) == STEP_KEYS


@pytest.mark.parametrize("which", ["input", "output"])
def test_step_payloads_decode_to_the_same_value_with_and_without_parse_json(api, which):
    ex = a_windowed_execution("s3_encrypt")
    for step in ex.steps:
        path = f"{API}/executions/{ex.id}/steps/{step.node_id}/{which}"
        parsed = api.json(path, parseJson="true")
        as_string = api.json(path, parseJson="false")
        assert isinstance(as_string, str)
        assert json.loads(as_string) == parsed
        assert api.json(path) == as_string


def test_a_qualysevent_output_starts_the_linked_child_execution(api):
    ds = control.dataset()
    parent_id, node_id, child_id = next(
        link for link in ds.linked if in_window(ds.execution(link[0]))
    )
    envelopes = api.json(f"{API}/executions/{parent_id}/steps/{node_id}/output", parseJson="true")
    assert isinstance(envelopes, list)
    envelope = envelopes[0]
    assert envelope["executionId"] == child_id and envelope["source"] == "WORKFLOW_TRIGGER"
    assert envelope["forceRun"] is False
    assert envelope["input"]["collection"][0]["StoppingInstances"][0]["InstanceId"].startswith("i-")
    parent = api.json(f"{API}/executions/{parent_id}")["data"]
    child = api.json(f"{API}/executions/{child_id}")["data"]
    assert parent["linkedExecutionIds"] == [child_id]
    assert child["parentExecutionId"] == parent_id and child["source"] == "WORKFLOW_TRIGGER"
    assert child["workflow"] == envelope["workflowId"] == workflow_by_key("ec2_verify").id
    assert child["createdAt"] >= parent["startDate"]
    trigger = api.json(f"{API}/executions/{child_id}/steps/trigger/output", parseJson="true")
    assert trigger == envelope["input"]


def test_the_rotate_keys_output_leaks_an_aws_secret_access_key(api):
    ds = control.dataset()
    execution_id, node_id = next(leak for leak in ds.leaks if in_window(ds.execution(leak[0])))
    output = api.json(f"{API}/executions/{execution_id}/steps/{node_id}/output", parseJson="true")
    key = output["collection"][0]["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40


def test_a_full_inventory_output_is_several_megabytes(api):
    ds = control.dataset()
    execution_id, node_id, size = max(ds.big_payloads, key=lambda b: b[2])
    assert size > 10_000_000 and in_window(ds.execution(execution_id))
    response = api.get(f"{API}/executions/{execution_id}/steps/{node_id}/output", parseJson="true")
    assert response.status_code == 200 and len(response.content) >= size
    body = json.loads(response.content)
    assert body["success"] is True and len(body["collection"]) > 10_000
    assert body["collection"][0]["ResourceARN"].startswith("arn:aws:")
    as_string = api.get(f"{API}/executions/{execution_id}/steps/{node_id}/output")
    assert json.loads(json.loads(as_string.content)) == body
    assert len(ds.big_payloads) >= 3 and all(3e6 <= b[2] <= 12e6 for b in ds.big_payloads)


# --- run ------------------------------------------------------------------------------------


RUN_BODY = {
    "input": {"bucketName": "test-bucket-1", "totalBucketCount": 4},
    "variables": {"connectorId": str(uuid.UUID(int=1)), "region": "eu-west-1", "name": "maha2"},
}


def test_run_answers_a_message_and_an_execution_id_by_default(api):
    wf = workflow_by_key("s3_public")
    response = api.post(f"{API}/workflows/{wf.id}/run", RUN_BODY)
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Workflow execution started"
    data = api.json(f"{API}/executions/{body['executionId']}")["data"]
    assert data["source"] == "PUBLIC_API" and data["status"] == "Running"
    assert data["tags"] == [f"created_by={control.dataset().api_user_id}"]
    assert "region=eu-west-1" in data["variables"] and "name=maha2" in data["variables"]
    listed = api.json(f"{API}/workflows/{wf.id}/executions", pageSize=1)["items"][0]
    assert listed["id"] == body["executionId"]


def test_run_answers_the_data_envelope_in_the_data_variant(api):
    control.configure(run_response="data")
    wf = workflow_by_key("ec2_public")
    data = api.post(f"{API}/workflows/{wf.id}/run", RUN_BODY).json()["data"]
    assert data["workflowId"] == wf.id and data["forceRun"] is True
    assert data["source"] == "PUBLIC_API" and data["input"] == RUN_BODY["input"]
    assert {"key": "region", "value": "eu-west-1", "type": "system-defined"} in data[
        "overrideVariables"
    ]
    assert {"key": "name", "value": "maha2", "type": "user-defined"} in data["overrideVariables"]
    assert uuid.UUID(data["executionId"])


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        json.dumps({"input": "a string"}),
        json.dumps({"variables": {"connectorId": "aa70acae-xxxx"}}),
        json.dumps({"variables": {"region": ["us-east-1"]}}),
    ],
)
def test_run_rejects_a_bad_body_with_400_and_starts_nothing(api, raw):
    wf = workflow_by_key("s3_public")
    before = len(control.executions(wf.id))
    response = api.post(f"{API}/workflows/{wf.id}/run", raw=raw)
    assert response.status_code == 400 and response.json()["message"]
    assert len(control.executions(wf.id)) == before


def test_run_of_an_unknown_workflow_is_404(api):
    assert api.post(f"{API}/workflows/{uuid.uuid4()}/run", RUN_BODY).status_code == 404


def test_a_run_is_running_at_once_and_finishes_with_its_steps_progressing(api):
    control.configure(run_min_seconds=1, run_max_seconds=1.5, run_status="success")
    wf = workflow_by_key("oci_bucket")
    execution_id = api.post(f"{API}/workflows/{wf.id}/run", RUN_BODY).json()["executionId"]
    first = api.json(f"{API}/executions/{execution_id}", includeSteps="true")["data"]
    assert first["status"] == "Running" and first["endDate"] is None
    assert len(first["steps"]) < len(control.find_execution(execution_id).steps)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        data = api.json(f"{API}/executions/{execution_id}", includeSteps="true")["data"]
        if data["status"] != "Running":
            break
        time.sleep(0.2)
    assert data["status"] == "Success" and data["endDate"] >= data["startDate"]
    assert len(data["steps"]) > len(first["steps"])
    assert all(s["status"] == "Success" for s in data["steps"])
    trigger = api.json(f"{API}/executions/{execution_id}/steps/trigger/output", parseJson="true")
    assert trigger == RUN_BODY["input"]


def test_reset_forgets_runs(api):
    wf = workflow_by_key("oci_bucket")
    execution_id = api.post(f"{API}/workflows/{wf.id}/run", {}).json()["executionId"]
    control.reset()
    assert control.find_execution(execution_id) is None


# --- faults -----------------------------------------------------------------------------------


def test_a_status_fault_answers_that_status_the_given_number_of_times(api):
    path = f"{API}/workflows"
    control.inject("status", path=r"/workflows$", status=503, times=2)
    assert api.get(path, pageSize=5).status_code == 503
    assert api.get(path, pageSize=5).status_code == 503
    assert api.get(path, pageSize=5).status_code == 200


def test_a_429_fault_carries_the_wait_header_and_custom_headers_and_body(api):
    control.inject("status", status=429, headers={"X-RateLimit-ToWait-Sec": "7"}, body={"x": 1})
    response = api.get(f"{API}/workflows", pageSize=5)
    assert response.status_code == 429
    assert response["X-RateLimit-ToWait-Sec"] == "7" and response.json() == {"x": 1}


def test_a_fault_can_target_a_method(api):
    wf = workflow_by_key("s3_public")
    control.inject("status", method="POST", status=409)
    assert api.get(f"{API}/workflows/{wf.id}").status_code == 200
    assert api.post(f"{API}/workflows/{wf.id}/run", {}).status_code == 409


def test_a_latency_fault_slows_the_answer_down(api):
    control.inject("latency", seconds=0.3)
    started = time.perf_counter()
    assert api.get(f"{API}/workflows", pageSize=5).status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_an_expire_token_fault_answers_jwt_expired_even_for_a_good_token(api):
    control.inject("expire_token")
    response = api.get(f"{API}/workflows", pageSize=5)
    assert response.status_code == 401 and response.json()["message"] == "JWT expired"
    assert api.get(f"{API}/workflows", pageSize=5).status_code == 200


def test_a_malformed_fault_answers_200_with_a_body_that_is_not_json(api):
    control.inject("malformed", path="/workflows")
    response = api.get(f"{API}/workflows", pageSize=5)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_a_redirect_fault_answers_302_with_a_location(api):
    control.inject("redirect", location="https://login.example.com/sso")
    response = api.get(f"{API}/workflows", pageSize=5)
    assert response.status_code == 302 and response["Location"] == "https://login.example.com/sso"


def test_accept_then_status_creates_the_execution_but_answers_500(api):
    wf = workflow_by_key("gcs_public")
    before = {e["id"] for e in control.executions(wf.id)}
    control.inject("accept_then_status", path=r"/run$")
    response = api.post(f"{API}/workflows/{wf.id}/run", RUN_BODY)
    assert response.status_code == 500
    created = [e for e in control.executions(wf.id) if e["id"] not in before]
    assert len(created) == 1 and created[0]["status"] == "Running"


def test_accept_then_delay_creates_the_execution_before_answering_late(api):
    wf = workflow_by_key("gcs_public")
    control.inject("accept_then_delay", path=r"/run$", seconds=0.3)
    started = time.perf_counter()
    response = api.post(f"{API}/workflows/{wf.id}/run", RUN_BODY)
    assert time.perf_counter() - started >= 0.3
    assert control.find_execution(response.json()["executionId"]) is not None


def test_unknown_fault_kinds_and_options_are_refused(sim):
    with pytest.raises(ValueError):
        control.inject("explode")
    with pytest.raises(ImproperlyConfigured, match="unknown key 'colour'"):
        control.configure(colour="blue")
    with (
        override_settings(QFLOW_SIMULATOR_OPTIONS="total=string,colour=blue"),
        pytest.raises(ImproperlyConfigured, match="colour"),
    ):
        control.options()


def test_options_come_from_settings_and_configure_restores_them_as_a_context_manager(api, settings):
    settings.QFLOW_SIMULATOR_OPTIONS = "total=string,paging=offset,latency_ms=1"
    control.reset()
    assert control.options().total == "string" and control.options().paging == "offset"
    with control.configure(total="number"):
        assert control.options().total == "number"
    assert control.options().total == "string"


def test_calls_are_recorded_with_method_path_and_query(api):
    api.get(f"{API}/workflows", pageSize=5, pageNumber=1)
    call = control.calls[-1]
    assert (call.method, call.path, call.query, call.status) == (
        "GET",
        f"{API}/workflows",
        {"pageSize": "5", "pageNumber": "1"},
        200,
    )
    assert control.calls[0].path == "/auth/oidc"


# --- unknown paths, methods, rate limits ------------------------------------------------------


def test_an_unknown_api_path_is_a_json_404_and_a_wrong_method_is_405(api):
    response = api.get(f"{API}/connectors")
    assert response.status_code == 404 and response.json()["status"] == 404
    response = api.client.delete(
        f"{API}/workflows/{busiest_workflow().id}", headers={"Authorization": f"Bearer {api.token}"}
    )
    assert response.status_code == 405


def test_every_api_response_carries_the_rate_limit_headers(api):
    for response in (
        api.get(f"{API}/workflows", pageSize=5),
        api.get(f"{API}/nowhere"),
        Api(api.client, "bad").get(f"{API}/workflows", pageSize=5),
    ):
        assert all(response.has_header(h) for h in RATE_HEADERS)
    response = api.get(f"{API}/workflows", pageSize=5)
    assert response["X-RateLimit-Limit"] == "6000" and response["X-RateLimit-Window-Sec"] == "3600"
    assert response["X-Concurrency-Limit-Limit"] == "2"


def test_calls_beyond_the_rate_limit_get_429_with_the_time_to_wait(api, client, settings):
    control.configure(rate_limit=3, rate_window_seconds=60)
    remaining = [api.get(f"{API}/workflows", pageSize=5)["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    response = api.get(f"{API}/workflows", pageSize=5)
    assert response.status_code == 429
    assert 1 <= int(response["X-RateLimit-ToWait-Sec"]) <= 60
    assert issue_token(client, settings)  # /auth is not limited


# --- over real HTTP ---------------------------------------------------------------------------


def test_the_simulator_answers_over_real_http(live_server, settings, sim):
    token = requests.post(
        f"{live_server.url}/auth/oidc",
        headers={
            "clientId": settings.QFLOW_CLIENT_ID,
            "clientSecret": settings.QFLOW_CLIENT_SECRET,
        },
        timeout=10,
    ).text
    response = requests.get(
        f"{live_server.url}{API}/workflows",
        params={"pageSize": 2, "pageNumber": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200 and len(response.json()["items"]) == 2


def test_start_at_accepts_url_encoded_iso_dates_with_milliseconds(api):
    moment = datetime.now(UTC) - timedelta(days=3)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    body = api.json(
        f"{API}/workflows/{busiest_workflow().id}/executions", pageSize=5, startAt=stamp
    )
    assert all(i["createdAt"] >= moment.timestamp() * 1000 - 1 for i in body["items"])
