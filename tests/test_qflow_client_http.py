"""The QFlow client over real HTTP, against loopback servers from pytest-httpserver."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from qflowui.qflow import QflowClient, client_from_settings
from qflowui.qflow.auth import clear_token_cache
from qflowui.qflow.errors import (
    QflowAuthError,
    QflowBadResponse,
    QflowConfigError,
    QflowError,
    QflowForbidden,
    QflowInvalidId,
    QflowNotFound,
    QflowRateLimited,
    QflowRequestRejected,
    QflowUnavailable,
)
from qflowui.qflow.types import RateLimitInfo

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
WF = "f516bcf4-f6fb-46ac-a54f-ddbcf2a2d24a"
EX = "0e71f117-648f-4ad2-a3a9-8f1b857a1b70"
EXECUTION_PATH = f"/qflowapi/v1/executions/{EX}"
EXECUTIONS_PATH = f"/qflowapi/v1/workflows/{WF}/executions"
RUN_PATH = f"/qflowapi/v1/workflows/{WF}/run"
FIXED = "fixed-token-value"
JWT_EXPIRED = {"status": 401, "error": "Unauthorized", "message": "JWT expired"}


def seed(name: str) -> Any:
    return json.loads((SEEDS / name).read_text())


def make_jwt(name: str, expires_in: float = 3600) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'sub': name, 'exp': time.time() + expires_in})}.sig"


TOKEN_A = make_jwt("a")
TOKEN_B = make_jwt("b")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def requests_to(server: HTTPServer, path: str) -> list[Request]:
    return [request for request, _ in server.log if request.path == path]


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    clear_token_cache()
    yield
    clear_token_cache()


@pytest.fixture
def make_client(httpserver: HTTPServer) -> Callable[..., QflowClient]:
    def make(**options: Any) -> QflowClient:
        if "token" not in options:
            options.setdefault("client_id", "client-1")
            options.setdefault("client_secret", "s3cret-value")
        options.setdefault("backoff", 0.01)
        options.setdefault("timeout", 2.0)
        return QflowClient(httpserver.url_for("/"), **options)

    return make


def serve_token(server: HTTPServer, *tokens: str) -> None:
    """Each token answers one /auth/oidc call, in order."""
    for token in tokens:
        server.expect_oneshot_request("/auth/oidc", method="POST").respond_with_data(token)


def serve_execution(server: HTTPServer, token: str) -> None:
    server.expect_request(EXECUTION_PATH, headers=bearer(token)).respond_with_json(
        seed("execution_details.json")
    )


# --- tokens -------------------------------------------------------------------------


def test_it_fetches_the_token_once_and_reuses_it(httpserver, make_client) -> None:
    serve_token(httpserver, TOKEN_A)
    serve_execution(httpserver, TOKEN_A)
    client = make_client()

    client.get_execution(EX)
    client.get_execution(EX)
    make_client().get_execution(EX)  # another client in the same process shares the cache

    (token_request,) = requests_to(httpserver, "/auth/oidc")
    assert token_request.headers["clientId"] == "client-1"
    assert token_request.headers["clientSecret"] == "s3cret-value"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token_request.get_data() == b""
    assert len(requests_to(httpserver, EXECUTION_PATH)) == 3
    assert client.calls == 3


def test_it_refreshes_the_token_once_after_a_401(httpserver, make_client) -> None:
    serve_token(httpserver, TOKEN_A, TOKEN_B)
    httpserver.expect_request(EXECUTION_PATH, headers=bearer(TOKEN_A)).respond_with_json(
        JWT_EXPIRED, status=401
    )
    serve_execution(httpserver, TOKEN_B)
    client = make_client()

    execution = client.get_execution(EX)

    assert execution.id == EX
    assert len(requests_to(httpserver, "/auth/oidc")) == 2
    assert client.calls == 4


def test_it_raises_an_auth_error_when_the_new_token_is_refused_too(httpserver, make_client) -> None:
    serve_token(httpserver, TOKEN_A, TOKEN_B)
    httpserver.expect_request(EXECUTION_PATH).respond_with_json(JWT_EXPIRED, status=401)

    with pytest.raises(QflowAuthError) as caught:
        make_client().get_execution(EX)

    assert caught.value.status_code == 401
    assert caught.value.detail == "JWT expired"
    assert len(requests_to(httpserver, "/auth/oidc")) == 2


def test_a_fixed_token_that_gets_a_401_raises_an_auth_error(httpserver, make_client) -> None:
    httpserver.expect_request(EXECUTION_PATH).respond_with_json(JWT_EXPIRED, status=401)
    client = make_client(token=FIXED)

    with pytest.raises(QflowAuthError, match="JWT expired") as caught:
        client.get_execution(EX)

    assert FIXED not in str(caught.value)
    assert requests_to(httpserver, "/auth/oidc") == []
    assert client.calls == 1


def test_refused_client_credentials_are_an_auth_error(httpserver, make_client) -> None:
    httpserver.expect_request("/auth/oidc").respond_with_json(
        {"message": "bad secret s3cret-value"}, status=401
    )

    with pytest.raises(QflowAuthError) as caught:
        make_client().get_execution(EX)

    assert "s3cret-value" not in str(caught.value)
    assert requests_to(httpserver, EXECUTION_PATH) == []


# --- retries ------------------------------------------------------------------------


def test_it_retries_a_get_after_a_5xx(httpserver, make_client) -> None:
    httpserver.expect_oneshot_request(EXECUTION_PATH).respond_with_data("oops", status=503)
    serve_execution(httpserver, FIXED)
    client = make_client(token=FIXED)

    assert client.get_execution(EX).status == "Success"
    assert client.calls == 2


def test_it_gives_up_on_a_get_after_max_retries(httpserver, make_client) -> None:
    httpserver.expect_request(EXECUTION_PATH).respond_with_json({"message": "down"}, status=502)
    client = make_client(token=FIXED, max_retries=2)

    with pytest.raises(QflowUnavailable, match="down") as caught:
        client.get_execution(EX)

    assert caught.value.status_code == 502
    assert caught.value.maybe_accepted is False
    assert client.calls == 3


def test_a_5xx_on_run_raises_unavailable_after_exactly_one_request(httpserver, make_client) -> None:
    httpserver.expect_request(RUN_PATH, method="POST").respond_with_data("oops", status=500)
    client = make_client(token=FIXED)

    with pytest.raises(QflowUnavailable) as caught:
        client.run_workflow(WF, input={"a": 1})

    assert caught.value.maybe_accepted is True
    assert len(requests_to(httpserver, RUN_PATH)) == 1


def _sleepy(seconds: float) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        time.sleep(seconds)
        return Response("{}", content_type="application/json")

    return handler


def test_a_timeout_raises_unavailable(httpserver, make_client) -> None:
    httpserver.expect_request(EXECUTION_PATH).respond_with_handler(_sleepy(2.0))
    client = make_client(token=FIXED, timeout=0.3, max_retries=0)

    started = time.monotonic()
    with pytest.raises(QflowUnavailable, match="timed out") as caught:
        client.get_execution(EX)

    # It gave up at its timeout instead of waiting for the 2 s answer.
    assert time.monotonic() - started < 1.5
    assert caught.value.maybe_accepted is False


def test_a_timeout_on_run_says_the_run_may_have_started(httpserver, make_client) -> None:
    httpserver.expect_request(RUN_PATH).respond_with_handler(_sleepy(0.6))
    client = make_client(token=FIXED, timeout=0.3)

    with pytest.raises(QflowUnavailable, match="may have reached") as caught:
        client.run_workflow(WF)

    assert caught.value.maybe_accepted is True
    assert client.calls == 1


def test_an_unreachable_host_is_unavailable() -> None:
    client = QflowClient("http://127.0.0.1:9", token=FIXED, timeout=0.5, max_retries=0)

    with pytest.raises(QflowUnavailable, match="could not be reached"):
        client.get_execution(EX)
    with pytest.raises(QflowUnavailable) as caught:
        client.run_workflow(WF)

    assert caught.value.maybe_accepted is False  # refused: the run certainly did not start


# --- rate limits --------------------------------------------------------------------


def test_it_waits_as_long_as_qflow_asks_and_retries(httpserver, make_client) -> None:
    httpserver.expect_oneshot_request(EXECUTION_PATH).respond_with_json(
        {"message": "slow down"}, status=409, headers={"X-RateLimit-ToWait-Sec": "1"}
    )
    serve_execution(httpserver, FIXED)
    client = make_client(token=FIXED)

    started = time.monotonic()
    client.get_execution(EX)

    assert time.monotonic() - started >= 1.0
    assert client.calls == 2


def test_it_honours_retry_after_too(httpserver, make_client) -> None:
    httpserver.expect_oneshot_request(EXECUTION_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "0"}
    )
    serve_execution(httpserver, FIXED)

    assert make_client(token=FIXED).get_execution(EX).id == EX


def test_a_wait_longer_than_max_rate_wait_raises_rate_limited(httpserver, make_client) -> None:
    httpserver.expect_request(EXECUTION_PATH).respond_with_data(
        "", status=429, headers={"X-RateLimit-ToWait-Sec": "120"}
    )
    client = make_client(token=FIXED, max_rate_wait=5)

    with pytest.raises(QflowRateLimited) as caught:
        client.get_execution(EX)

    assert caught.value.wait_seconds == 120
    assert caught.value.status_code == 429
    assert client.calls == 1


def test_a_rate_limited_run_is_not_retried(httpserver, make_client) -> None:
    httpserver.expect_request(RUN_PATH).respond_with_data(
        "", status=409, headers={"X-RateLimit-ToWait-Sec": "1"}
    )
    client = make_client(token=FIXED)

    with pytest.raises(QflowRateLimited) as caught:
        client.run_workflow(WF)

    assert caught.value.wait_seconds == 1
    assert client.calls == 1


def test_it_reads_the_rate_limit_headers(httpserver, make_client) -> None:
    headers = {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Window-Sec": "3600",
        "X-RateLimit-Remaining": "299",
        "X-RateLimit-ToWait-Sec": "0",
        "X-Concurrency-Limit-Limit": "2",
        "X-Concurrency-Limit-Running": "1",
    }
    httpserver.expect_request(EXECUTION_PATH).respond_with_json(
        seed("execution_details.json"), headers=headers
    )
    client = make_client(token=FIXED)
    assert client.rate_limit is None

    client.get_execution(EX)

    assert client.rate_limit == RateLimitInfo(300, 3600, 299, 0, 2, 1)


# --- error mapping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, QflowRequestRejected),
        (422, QflowRequestRejected),
        (403, QflowForbidden),
        (404, QflowNotFound),
    ],
)
def test_http_errors_map_to_our_errors_with_qflows_message(
    httpserver, make_client, status: int, error: type[QflowError]
) -> None:
    httpserver.expect_request(EXECUTION_PATH).respond_with_json(
        {"message": f"no luck for {FIXED}"}, status=status
    )

    with pytest.raises(error) as caught:
        make_client(token=FIXED).get_execution(EX)

    assert caught.value.status_code == status
    assert caught.value.detail == "no luck for ***"  # the token never shows
    assert FIXED not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ("", "application/json"),
        ("<html>Sign in</html>", "text/html"),
    ],
)
def test_a_body_that_is_not_json_is_a_bad_response(
    httpserver, make_client, body: str, content_type: str
) -> None:
    httpserver.expect_request(EXECUTION_PATH).respond_with_data(body, content_type=content_type)

    with pytest.raises(QflowBadResponse):
        make_client(token=FIXED).get_execution(EX)


def test_json_of_the_wrong_shape_is_a_bad_response(httpserver, make_client) -> None:
    httpserver.expect_request(EXECUTION_PATH).respond_with_json(["not", "an", "object"])

    with pytest.raises(QflowBadResponse, match="expected a JSON object"):
        make_client(token=FIXED).get_execution(EX)


# --- redirects ----------------------------------------------------------------------


def test_a_redirect_to_another_host_is_refused_without_sending_the_token(
    httpserver, httpserver_ipv4, make_client
) -> None:
    elsewhere = httpserver_ipv4.url_for(EXECUTION_PATH)
    httpserver.expect_request(EXECUTION_PATH).respond_with_data(
        "", status=302, headers={"Location": elsewhere}
    )
    httpserver_ipv4.expect_request(EXECUTION_PATH).respond_with_json(seed("execution_details.json"))

    with pytest.raises(QflowBadResponse, match="another host"):
        make_client(token=FIXED).get_execution(EX)

    assert httpserver_ipv4.log == []


def test_a_same_origin_redirect_is_followed_with_the_token(httpserver, make_client) -> None:
    moved = f"/v2{EXECUTION_PATH}"
    httpserver.expect_request(EXECUTION_PATH).respond_with_data(
        "", status=307, headers={"Location": f"{moved}?includeSteps=false"}
    )
    httpserver.expect_request(moved, headers=bearer(FIXED)).respond_with_json(
        seed("execution_details.json")
    )
    client = make_client(token=FIXED)

    assert client.get_execution(EX).id == EX
    assert client.calls == 2


def test_endless_redirects_stop(httpserver, make_client) -> None:
    httpserver.expect_request(EXECUTION_PATH).respond_with_data(
        "", status=302, headers={"Location": EXECUTION_PATH}
    )
    client = make_client(token=FIXED)

    with pytest.raises(QflowBadResponse, match="too many"):
        client.get_execution(EX)

    assert client.calls == 4


# --- validation before any request --------------------------------------------------


@pytest.mark.parametrize("node_id", ["../x", "a/b", "a?b", "a#b", "a b", "", "a%2fb", "a\\b"])
@pytest.mark.parametrize("method", ["get_step", "get_step_input", "get_step_output"])
def test_hostile_node_ids_are_refused_before_any_request(
    httpserver, make_client, node_id: str, method: str
) -> None:
    client = make_client(token=FIXED)

    with pytest.raises(QflowInvalidId):
        getattr(client, method)(EX, node_id)

    assert httpserver.log == []
    assert client.calls == 0


@pytest.mark.parametrize("execution_id", ["abc", "../x", f"{EX}/steps", f"{EX[:-1]}"])
def test_an_execution_id_that_is_not_a_uuid_is_refused(
    httpserver, make_client, execution_id: str
) -> None:
    client = make_client(token=FIXED)

    with pytest.raises(QflowInvalidId, match=r"execution id .* is not a UUID") as caught:
        client.get_execution(execution_id)

    assert isinstance(caught.value, ValueError)
    assert httpserver.log == []


def test_the_error_message_names_the_bad_id() -> None:
    with pytest.raises(QflowInvalidId) as caught:
        QflowClient("https://gateway.example.com", token=FIXED).list_executions("abc")

    assert str(caught.value) == "workflow id 'abc' is not a UUID"


@pytest.mark.parametrize(
    "base_url", ["http://example.com", "http://10.0.0.5:8000", "ftp://example.com", "example.com"]
)
def test_plain_http_is_refused_for_a_remote_host(base_url: str) -> None:
    with pytest.raises(QflowConfigError):
        QflowClient(base_url, token=FIXED)


@pytest.mark.parametrize(
    "base_url",
    [
        "https://gateway.qg2.apps.qualys.com",
        "http://localhost:8000",
        "http://127.0.0.2",
        "http://[::1]:80",
    ],
)
def test_https_and_loopback_http_are_accepted(base_url: str) -> None:
    assert QflowClient(base_url, token=FIXED).calls == 0


def test_a_fixed_token_pasted_with_its_bearer_prefix_is_sent_once(httpserver, make_client) -> None:
    serve_execution(httpserver, FIXED)

    assert make_client(token=f"Bearer {FIXED}").get_execution(EX).id == EX


def test_a_client_without_credentials_is_a_config_error() -> None:
    with pytest.raises(QflowConfigError, match="QFLOW_TOKEN"):
        QflowClient("https://gateway.example.com", client_id="only-an-id")


# --- query parameters ---------------------------------------------------------------


def _serve_executions(server: HTTPServer) -> None:
    server.expect_request(EXECUTIONS_PATH).respond_with_json(seed("execution_list.json"))


def _sent_args(server: HTTPServer) -> dict[str, str]:
    (request,) = requests_to(server, EXECUTIONS_PATH)
    return dict(request.args)


def test_statuses_become_the_qql_query(httpserver, make_client) -> None:
    _serve_executions(httpserver)

    page = make_client(token=FIXED).list_executions(WF, statuses=["Success", "Failed"])

    assert page.total == 9
    assert _sent_args(httpserver) == {
        "pageSize": "50",
        "pageNumber": "1",
        "query": "status: Success OR status: Failed",
        "order": "-createdAt",
    }


def test_statuses_are_anded_with_the_callers_query(httpserver, make_client) -> None:
    _serve_executions(httpserver)

    make_client(token=FIXED).list_executions(WF, statuses=["Timed Out"], query="source: UI")

    assert _sent_args(httpserver)["query"] == '(source: UI) AND (status: "Timed Out")'


def test_start_at_is_clamped_to_the_30_day_window(httpserver, make_client) -> None:
    _serve_executions(httpserver)
    client = make_client(token=FIXED)
    client._now = lambda: datetime(2025, 8, 13, 12, 0, tzinfo=UTC)

    client.list_executions(
        WF, start_at=datetime(2025, 5, 1, tzinfo=UTC), end_at=datetime(2025, 8, 4, 0, 0, 0, 5000)
    )

    args = _sent_args(httpserver)
    assert args["startAt"] == "2025-07-14T12:01:00.000Z"
    assert args["endAt"] == "2025-08-04T00:00:00.005Z"  # naive is taken as UTC


def test_a_range_that_ends_before_the_window_asks_nothing(httpserver, make_client) -> None:
    client = make_client(token=FIXED)
    long_ago = datetime.now(UTC) - timedelta(days=40)

    page = client.list_executions(WF, start_at=long_ago - timedelta(days=1), end_at=long_ago)

    assert (page.items, page.total) == ([], 0)
    assert client.calls == 0


def test_offset_paging_sends_offset_instead_of_page_number(httpserver, make_client) -> None:
    _serve_executions(httpserver)

    page = make_client(token=FIXED).list_executions(WF, offset=20, page_size=2, order="createdAt")

    assert _sent_args(httpserver) == {"pageSize": "2", "offset": "20", "order": "createdAt"}
    assert (page.offset, page.page_number) == (20, None)


def test_step_calls_send_their_flags(httpserver, make_client) -> None:
    httpserver.expect_request(f"{EXECUTION_PATH}/steps").respond_with_json(seed("step_list.json"))
    client = make_client(token=FIXED)

    (step,) = client.list_steps(EX, include_data=True, order="eventOrder")

    assert step.event_order == 2
    (request,) = requests_to(httpserver, f"{EXECUTION_PATH}/steps")
    assert dict(request.args) == {"includeData": "true", "order": "eventOrder"}


# --- endpoints end to end -----------------------------------------------------------


def test_step_output_is_the_same_whichever_parse_json_is_asked(httpserver, make_client) -> None:
    path = f"{EXECUTION_PATH}/steps/node-e3a84822-qualysevent/output"
    as_string = (SEEDS / "step_output_parsejson_false.json").read_text()
    as_array = (SEEDS / "step_output_parsejson_true.json").read_text()
    httpserver.expect_request(path, query_string={"parseJson": "false"}).respond_with_data(
        as_string, content_type="application/json"
    )
    httpserver.expect_request(path, query_string={"parseJson": "true"}).respond_with_data(
        as_array, content_type="application/json"
    )
    client = make_client(token=FIXED)

    raw = client.get_step_output(EX, "node-e3a84822-qualysevent", parse_json=False)
    parsed = client.get_step_output(EX, "node-e3a84822-qualysevent", parse_json=True)

    assert raw == parsed == json.loads(as_array)


def test_step_input_and_details_are_read(httpserver, make_client) -> None:
    base = f"{EXECUTION_PATH}/steps/trigger"
    httpserver.expect_request(f"{base}/input").respond_with_json(
        seed("step_input_parsejson_true.json")
    )
    httpserver.expect_request(base).respond_with_json(seed("step_details.json"))
    client = make_client(token=FIXED)

    assert client.get_step_input(EX, "trigger")["method"] == "RunWorkflow"
    assert client.get_step(EX, "trigger").event_order == 2


@pytest.mark.parametrize("name", ["run_response_message.json", "run_response_envelope.json"])
def test_run_posts_input_and_variables_and_returns_the_execution_id(
    httpserver, make_client, name: str
) -> None:
    httpserver.expect_request(
        RUN_PATH,
        method="POST",
        json={"input": {"buckets": ["b1"]}, "variables": {"region": "us-east-1"}},
    ).respond_with_json(seed(name))

    result = make_client(token=FIXED).run_workflow(
        WF, input={"buckets": ["b1"]}, variables={"region": "us-east-1"}
    )

    assert result.execution_id == seed(name).get("data", seed(name))["executionId"]


def test_get_workflow_decodes_the_definition(httpserver, make_client) -> None:
    httpserver.expect_request(f"/qflowapi/v1/workflows/{WF}").respond_with_json(
        seed("workflow_details.json")
    )

    workflow = make_client(token=FIXED).get_workflow(WF)

    assert workflow.definition is not None
    assert len(workflow.definition.edges) == 4


def test_get_execution_with_steps_asks_for_them(httpserver, make_client) -> None:
    body = seed("execution_details.json")
    body["data"]["steps"] = seed("step_list.json")["items"]
    httpserver.expect_request(
        EXECUTION_PATH, query_string={"includeSteps": "true"}
    ).respond_with_json(body)

    execution = make_client(token=FIXED).get_execution(EX, include_steps=True)

    assert [s.node_id for s in execution.steps or []] == ["node-e3a84822-qualysevent"]


def test_iter_workflows_walks_every_page(httpserver, make_client) -> None:
    def workflows(*ids: int) -> list[dict[str, Any]]:
        return [{"id": f"{WF[:-2]}{n:02d}", "name": f"wf {n}"} for n in ids]

    # Page 2 is short, as if QFlow capped pageSize; the walk goes on until total is reached.
    pages = {"1": workflows(1, 2), "2": workflows(3), "3": workflows(4, 5)}
    for number, items in pages.items():
        httpserver.expect_request(
            "/qflowapi/v1/workflows", query_string={"pageNumber": number, "pageSize": "2"}
        ).respond_with_json({"total": 5, "items": items})
    client = make_client(token=FIXED)

    names = [workflow.name for workflow in client.iter_workflows(page_size=2)]

    assert names == ["wf 1", "wf 2", "wf 3", "wf 4", "wf 5"]
    assert client.calls == 3


def test_client_from_settings_reads_the_settings_at_call_time(httpserver, monkeypatch) -> None:
    fake = SimpleNamespace(
        QFLOW_BASE_URL=httpserver.url_for("/").rstrip("/"),
        QFLOW_TOKEN=FIXED,
        QFLOW_CLIENT_ID="",
        QFLOW_CLIENT_SECRET="",
        QFLOW_TIMEOUT_SECONDS=3.0,
    )
    monkeypatch.setattr("django.conf.settings", fake)
    serve_execution(httpserver, FIXED)

    client = client_from_settings()

    assert client.get_execution(EX).id == EX


# --- budgets -------------------------------------------------------------------------


@pytest.fixture
def slow_server() -> Iterator[HTTPServer]:
    """Its own threaded server: a slow answer must not hold up the next test's requests."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def _client_of(server: HTTPServer, **options: Any) -> QflowClient:
    if "token" not in options:
        options.update(client_id="client-1", client_secret="s3cret-value")
    options.setdefault("backoff", 0.01)
    return QflowClient(server.url_for("/").rstrip("/"), **options)


def test_a_budget_bounds_the_whole_call_retries_included(slow_server) -> None:
    slow_server.expect_request(EXECUTION_PATH).respond_with_handler(_sleepy(3.0))
    client = _client_of(slow_server, token=FIXED, timeout=10.0, max_retries=3, budget=1.0)

    started = time.monotonic()
    with pytest.raises(QflowUnavailable, match="timed out"):
        client.get_execution(EX)

    # One request cut to the budget; no retry started without time left for it.
    assert time.monotonic() - started < 2.5
    assert client.calls == 1


def test_a_retry_is_made_only_when_its_backoff_fits_the_budget(slow_server) -> None:
    slow_server.expect_request(EXECUTION_PATH).respond_with_json({"message": "down"}, status=503)
    client = _client_of(slow_server, token=FIXED, max_retries=3, backoff=0.6, budget=1.0)

    with pytest.raises(QflowUnavailable, match="down"):
        client.get_execution(EX)

    # After 0.6 s of backoff a second try fits; a further 1.2 s would not.
    assert client.calls == 2


def test_the_token_fetch_counts_against_the_callers_budget(slow_server) -> None:
    slow_server.expect_request("/auth/oidc").respond_with_handler(_sleepy(3.0))
    client = _client_of(slow_server, timeout=10.0, budget=1.0)

    started = time.monotonic()
    with pytest.raises(QflowUnavailable):
        client.get_execution(EX)

    assert time.monotonic() - started < 2.5
    assert requests_to(slow_server, EXECUTION_PATH) == []


def test_client_from_settings_gives_pages_a_short_budget_and_the_sync_its_timeouts(
    httpserver, monkeypatch
) -> None:
    fake = SimpleNamespace(
        QFLOW_BASE_URL=httpserver.url_for("/").rstrip("/"),
        QFLOW_TOKEN=FIXED,
        QFLOW_CLIENT_ID="",
        QFLOW_CLIENT_SECRET="",
        QFLOW_TIMEOUT_SECONDS=10.0,
        QFLOW_PAGE_BUDGET_SECONDS=4.0,
    )
    monkeypatch.setattr("django.conf.settings", fake)

    page = client_from_settings(purpose="page")
    task = client_from_settings(purpose="task")
    sync = client_from_settings()

    assert (page.budget, page.max_retries, page._transport.timeout) == (4.0, 1, (4.0, 4.0))
    assert (task.budget, task.max_retries) == (45.0, 1)
    assert (sync.budget, sync.max_retries, sync._transport.timeout) == (None, 3, (10.0, 10.0))
    with pytest.raises(ValueError, match="purpose"):
        client_from_settings(purpose="whatever")
