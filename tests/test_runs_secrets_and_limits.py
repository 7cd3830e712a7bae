"""Issue #8, runs: QFlow's messages masked before they are stored, shown or logged; the typed
body kept exact only until QFlow has seen it; "run again" never passes a mask off as a value;
and the form's limits (size, depth, NaN, number of variables) answered with a message.

QFlow here is a loopback server (pytest-httpserver) that records what it is sent.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone
from werkzeug import Request, Response

from qflowui.mirror.models import Execution, StepPayload, Workflow
from qflowui.qflow.errors import QflowRequestRejected, QflowUnavailable
from qflowui.runs import services, tasks
from qflowui.runs.models import AuditEvent, Run, RunEvent, RunState
from tests.test_runs_support import *  # noqa: F403 - the fixtures runner, runner_client, sent...
from tests.test_runs_support import fake_workflow, form_data

pytestmark = pytest.mark.django_db

API_KEY = "AKxyzQ7pL2mN8vR4tW6y"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcDEF123456"
DB_PASSWORD = "Sup3rS3cret!"
CONNECTION = f"postgres://dbadmin:{DB_PASSWORD}@db:5432/prod"
REFUSAL = (
    f"Variable validation failed: apiKey={API_KEY} is not allowed, token {JWT} expired, "
    f"database {CONNECTION} unreachable"
)
# Parts of the secrets that must appear nowhere once QFlow's message was handled.
LEAKS = (API_KEY, "eyJhbGciOiJIUzI1NiJ9", "abcDEF123456", DB_PASSWORD, "Sup3rS3cret")
TYPED_SECRET = "hunter2-typed"
CONNECTOR = "aa70acae-6ea8-3acf-b504-f327855b316a"


# --- a fake QFlow on loopback ------------------------------------------------------------------


@dataclass
class FakeQflow:
    """Answers POST /workflows/<id>/run as told and records every body it was sent."""

    status: int = 200
    message: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    execution_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def handler(self, request: Request) -> Response:
        if request.method == "POST" and request.path.endswith("/run"):
            self.bodies.append(json.loads(request.get_data()))
            if self.status != 200:
                return _json({"status": self.status, "message": self.message}, self.status)
            return _json({"executionId": self.execution_id, "status": "Running"})
        if "/executions" in request.path and self.status >= 500:
            return _json({"message": self.message}, self.status)
        return _json({"status": 404, "message": "nothing here"}, 404)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


@pytest.fixture
def qflow(httpserver, settings) -> FakeQflow:
    from qflowui.qflow import auth as qflow_auth

    fake = FakeQflow()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handler)
    settings.QFLOW_SIMULATOR = False
    settings.QFLOW_BASE_URL = httpserver.url_for("/").rstrip("/")
    settings.QFLOW_TOKEN = "test-token"
    settings.QFLOW_CLIENT_ID = ""
    settings.QFLOW_CLIENT_SECRET = ""
    settings.QFLOW_TIMEOUT_SECONDS = 5.0
    qflow_auth.clear_token_cache()
    yield fake
    qflow_auth.clear_token_cache()


# --- helpers -------------------------------------------------------------------------------------


def _everything_stored() -> str:
    """Every column of every Run, RunEvent and AuditEvent row, as one text."""
    rows = [
        *Run.objects.values(),
        *RunEvent.objects.values(),
        *AuditEvent.objects.values(),
    ]
    return json.dumps(rows, default=str, ensure_ascii=False)


def _assert_no_leak(text: str, where: str) -> None:
    for secret in LEAKS:
        assert secret not in text, f"{secret!r} in {where}"


def _confirm(client, workflow, **fields) -> Run:
    response = client.post("/runs/new/", form_data(workflow, **fields))
    assert response.status_code == 302, response.content.decode()[:2000]
    return Run.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))


def _errors_of(response, name: str) -> str:
    return " ".join(response.context["form"].errors.get(name, []))


def _html(response) -> str:
    return response.content.decode()


def _field_value(html: str, name: str) -> str | None:
    """The value of the <input> named `name` ("" without a value), None without such input."""
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    if tag is None:
        return None
    value = re.search(r'value="([^"]*)"', tag.group(0))
    return value.group(1) if value else ""


# --- 1. QFlow's messages are masked before they are stored, shown or logged -------------------


def test_a_refusal_carrying_secrets_is_masked_in_the_page_the_database_and_the_logs(
    qflow, runner_client, sent, caplog
):
    wf = fake_workflow()
    qflow.status, qflow.message = 400, REFUSAL
    typed = json.dumps({"db": {"password": TYPED_SECRET}, "buckets": ["b-1"]})
    run = _confirm(runner_client, wf, input=typed)

    with caplog.at_level("DEBUG"):
        tasks.submit(run.pk)  # the task's body, in this process

    run.refresh_from_db()
    assert run.state == RunState.FAILED and len(qflow.bodies) == 1
    page = runner_client.get(f"/runs/{run.pk}/")
    html = _html(page)
    for where, text in (
        ("the run page", html),
        ("the database", _everything_stored()),
        ("the logs", caplog.text),
    ):
        _assert_no_leak(text, where)
    # What is not a secret stays readable: the user learns what QFlow said.
    assert "postgres://dbadmin:" in html and "Variable validation failed" in html
    assert "unreachable" in html and "HTTP 400" in html
    assert "postgres://dbadmin:" in run.error and "apiKey=********" in run.error
    assert "postgres://dbadmin:" in run.response["message"]
    note = run.events.get(state=RunState.FAILED).note
    assert "Variable validation failed" in note
    # The typed body went to QFlow as typed, and is no longer in the database.
    assert qflow.bodies[0]["input"]["db"]["password"] == TYPED_SECRET
    assert TYPED_SECRET not in _everything_stored()
    assert run.input == {"db": {"password": "********"}, "buckets": ["b-1"]}


def test_raw_upstream_text_in_an_exception_is_masked_and_cut_before_it_is_stored(
    runner, sent, caplog
):
    """Whatever the client puts in str(exc) (QFlow's body included) is masked here too."""
    wf = fake_workflow()
    run, _ = services.run_create(
        user=runner, workflow=wf, body={"input": {"n": 1}}, idempotency_key=uuid.uuid4()
    )
    long_tail = " more words" * 2000  # QFlow's message need not be short

    class Refusing:
        def run_workflow(self, *args, **kwargs):
            raw = f"{REFUSAL}{long_tail}"
            raise QflowRequestRejected(f"QFlow rejected the request: {raw}", detail=raw)

    with caplog.at_level("DEBUG"):
        assert services.run_submit(run.pk, client=Refusing()) == RunState.FAILED

    run.refresh_from_db()
    _assert_no_leak(_everything_stored(), "the database")
    _assert_no_leak(caplog.text, "the logs")
    assert len(run.error) <= services.MAX_ERROR_CHARS
    assert run.error.startswith("QFlow rejected the request: Variable validation failed")
    assert len(run.events.get(state=RunState.FAILED).note) <= 500


def test_an_unexpected_exception_is_logged_with_its_traceback_masked(runner, sent, caplog):
    wf = fake_workflow()
    run, _ = services.run_create(
        user=runner, workflow=wf, body={"input": {}}, idempotency_key=uuid.uuid4()
    )

    class Broken:
        def run_workflow(self, *args, **kwargs):
            raise RuntimeError(f"parser choked on {REFUSAL}")

    with caplog.at_level("DEBUG"):
        assert services.run_submit(run.pk, client=Broken()) == RunState.UNKNOWN

    assert "submit failed unexpectedly" in caplog.text and "Traceback" in caplog.text
    assert "RuntimeError" in caplog.text and "postgres://dbadmin:" in caplog.text
    _assert_no_leak(caplog.text, "the logs")
    _assert_no_leak(_everything_stored(), "the database")


def test_a_lost_answer_and_a_failing_reconcile_keep_qflows_secrets_out(qflow, runner, sent, caplog):
    wf = fake_workflow()
    run, _ = services.run_create(
        user=runner,
        workflow=wf,
        body={"input": {"db": {"password": TYPED_SECRET}}},
        idempotency_key=uuid.uuid4(),
    )
    qflow.status, qflow.message = 502, REFUSAL

    with caplog.at_level("DEBUG"):
        assert services.run_submit(run.pk) == RunState.UNKNOWN
        # The reconcile task: QFlow's execution list fails with the same message.
        with pytest.raises(QflowUnavailable) as raised:
            tasks.reconcile(run.pk)
        assert services.runs_reconcile_all() == {"checked": 1, "submitted": 0, "failed": 0}

    _assert_no_leak(str(raised.value), "the exception Celery logs")
    assert "postgres://dbadmin:" in str(raised.value)
    assert raised.value.maybe_accepted is False  # the same error, only masked
    _assert_no_leak(caplog.text, "the logs")
    assert "reconcile pass stopped" in caplog.text
    stored = _everything_stored()
    _assert_no_leak(stored, "the database")
    assert TYPED_SECRET not in stored and qflow.bodies[0]["input"]["db"]["password"] == (
        TYPED_SECRET
    )


def test_the_run_page_masks_what_was_stored_before_masking_existed(runner_client, runner, sent):
    wf = fake_workflow()
    run, _ = services.run_create(
        user=runner, workflow=wf, body={"input": {}}, idempotency_key=uuid.uuid4()
    )
    Run.objects.filter(pk=run.pk).update(
        state=RunState.FAILED, error=REFUSAL, response={"status": 400, "message": REFUSAL}
    )
    RunEvent.objects.create(run=run, state=RunState.FAILED, note=REFUSAL[:500])

    html = _html(runner_client.get(f"/runs/{run.pk}/"))

    _assert_no_leak(html, "the run page")
    assert html.count("postgres://dbadmin:") >= 3  # error, answer, history


# --- 2. the typed body: exact until QFlow has seen it, masked afterwards -------------------------


def test_after_submit_the_body_is_stored_masked_but_was_posted_as_typed(qflow, runner_client, sent):
    wf = fake_workflow()
    fields = {
        "input": json.dumps({"db": {"password": TYPED_SECRET}, "buckets": ["b-1"]}),
        "credentials": f"@{CONNECTOR}",
        "var_key_0": "apiToken",
        "var_value_0": "tok-typed-secret-42",
        "var_key_1": "depthCount",
        "var_type_1": "Integer",
        "var_value_1": "3",
    }
    # The preview shows the body masked.
    preview = _html(runner_client.post("/runs/new/", form_data(wf, action="preview", **fields)))
    shown = re.search(r"data-preview>(.*?)</pre>", preview, re.S).group(1)
    assert TYPED_SECRET not in shown and "tok-typed-secret-42" not in shown
    assert "********" in shown and f"@{CONNECTOR}" in shown

    data = form_data(wf, **fields)
    first = runner_client.post("/runs/new/", data)
    run = Run.objects.get()
    digest = run.body_sha256
    assert run.input["db"]["password"] == TYPED_SECRET  # queued: kept exact, to be sent

    services.run_submit(run.pk)

    run.refresh_from_db()
    assert run.state == RunState.SUBMITTED and str(run.execution_id) == qflow.execution_id
    assert qflow.bodies == [
        {
            "input": {"db": {"password": TYPED_SECRET}, "buckets": ["b-1"]},
            "variables": {
                "credentials": f"@{CONNECTOR}",
                "apiToken": "tok-typed-secret-42",
                "depthCount": 3,
                # qflowui's own: ties the run to its execution (never stored as typed).
                "qflowuiRunId": str(run.public_id),
            },
        }
    ]
    stored = _everything_stored()
    assert TYPED_SECRET not in stored and "tok-typed-secret-42" not in stored
    assert run.input == {"db": {"password": "********"}, "buckets": ["b-1"]}
    assert run.variables == {
        "credentials": f"@{CONNECTOR}",  # a connector reference, not a secret
        "apiToken": "********",
        "depthCount": 3,
    }
    assert run.body_sha256 == digest
    page = _html(runner_client.get(f"/runs/{run.pk}/"))
    assert "********" in page and TYPED_SECRET not in page and f"@{CONNECTOR}" in page

    # The same form posted again, after submit: still the one run.
    again = runner_client.post("/runs/new/", data, follow=True)
    assert Run.objects.count() == 1
    assert first["Location"] == again.redirect_chain[0][0] == f"/runs/{run.pk}/"
    assert "already submitted" in _html(again)
    assert len(qflow.bodies) == 1


def test_a_run_that_never_reached_qflow_keeps_its_exact_body_to_be_sent_again(
    runner, sent, settings
):
    settings.QFLOW_BASE_URL = "http://127.0.0.1:9"  # nothing listens: connection refused
    settings.QFLOW_TOKEN = "test-token"
    wf = fake_workflow()
    body = {"input": {"db": {"password": TYPED_SECRET}}}
    run, _ = services.run_create(user=runner, workflow=wf, body=body, idempotency_key=uuid.uuid4())

    assert services.run_submit(run.pk) == RunState.QUEUED
    assert Run.objects.get(pk=run.pk).input == body["input"]

    # Failed without ever posting (too many attempts): nothing to send any more, masked.
    Run.objects.filter(pk=run.pk).update(attempts=services.MAX_ATTEMPTS)
    assert services.run_submit(run.pk) == RunState.FAILED
    assert Run.objects.get(pk=run.pk).input == {"db": {"password": "********"}}


@pytest.mark.django_db(transaction=True)
def test_reconcile_still_finds_a_run_whose_body_is_stored_masked(simulator, runner, sent):
    from tests.test_runs_support import api_runs, mirror_workflows, simulator_workflow

    mirror_workflows(simulator)
    aws = simulator_workflow(simulator, "AWS")
    run, _ = services.run_create(
        user=runner,
        workflow=Workflow.objects.get(pk=aws.id),
        body={
            "input": {"db": {"password": TYPED_SECRET}},
            "variables": {"region": "eu-west-1", "apiToken": "tok-typed-secret-42"},
        },
        idempotency_key=uuid.uuid4(),
    )
    simulator.inject("accept_then_status", path=r"/run$", status=500)

    assert services.run_submit(run.pk) == RunState.UNKNOWN
    assert TYPED_SECRET not in json.dumps(Run.objects.get(pk=run.pk).input)
    assert services.run_reconcile(run.pk) == RunState.SUBMITTED
    run.refresh_from_db()
    assert str(run.execution_id) == api_runs(simulator, aws.id)[0]["id"] and run.reconciled


# --- 3. run again with changes: a masked value is never passed off as the value ----------------


@pytest.fixture
def masked_execution() -> Execution:
    """A mirrored execution whose record holds masked variables and a masked input leaf."""
    wf = fake_workflow()
    now = timezone.now()
    execution = Execution.objects.create(
        id=uuid.uuid4(),
        workflow=wf,
        status="Success",
        status_class="success",
        is_terminal=True,
        source="PUBLIC_API",
        started_at=now - timedelta(minutes=5),
        ended_at=now - timedelta(minutes=4),
        last_synced_at=now,
        variables=[
            "region=eu-west-1",
            "credentials=********",
            "apiToken=********",
            "depthCount=3",
        ],
    )
    StepPayload.objects.create(
        execution=execution,
        node_id="trigger",
        kind=StepPayload.INPUT,
        body={"input": {"db": {"host": "db-1", "password": "********"}, "buckets": ["b-1"]}},
        fetched_at=now,
    )
    return execution


def test_run_again_leaves_masked_values_empty_and_says_to_enter_them_again(
    runner_client, masked_execution
):
    html = _html(runner_client.get(f"/runs/new/?from={masked_execution.pk}"))

    assert "input.db.password was masked in QFlow&#x27;s record: enter it again" in html
    assert "credentials, apiToken were masked in QFlow&#x27;s record" in html
    # Masked fields come empty, with the note beside them; the others are copied.
    assert _field_value(html, "credentials") == ""
    assert 'id="id_credentials_masked"' in html
    rows = {_field_value(html, f"var_key_{n}"): n for n in range(3)}
    token_row = rows["apiToken"]
    assert _field_value(html, f"var_value_{token_row}") == ""
    assert f'id="id_var_value_{token_row}_masked"' in html
    assert _field_value(html, f"var_value_{rows['depthCount']}") == "3"
    assert '<option value="eu-west-1" selected>' in html
    # No input field carries the mask as its value; only the JSON shows where it was.
    assert 'value="********"' not in html
    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", html, re.S).group(1)
    assert json.loads(textarea.replace("&quot;", '"'))["db"] == {
        "host": "db-1",
        "password": "********",
    }


def test_run_again_refuses_to_send_a_mask_and_names_the_path(runner_client, masked_execution, sent):
    page = _html(runner_client.get(f"/runs/new/?from={masked_execution.pk}"))
    data = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
    data.update(
        input=re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S)
        .group(1)
        .replace("&quot;", '"'),
        workflow=str(masked_execution.workflow_id),
        action="confirm",
        region="eu-west-1",
    )
    token_row = next(n for n in range(4) if data.get(f"var_key_{n}") == "apiToken")

    refused = runner_client.post("/runs/new/", data)

    assert refused.status_code == 400 and not Run.objects.exists() and not sent
    assert "input.db.password" in _errors_of(refused, "input")
    assert "was masked in QFlow" in _errors_of(refused, "input")
    assert "id_input_errors" in _html(refused)
    # The emptied variable is refused too: an empty string is not the value it had.
    assert "apiToken was masked in QFlow" in _errors_of(refused, f"var_value_{token_row}")

    # A mask typed into a variable value is refused as well.
    data[f"var_value_{token_row}"] = "********"
    refused = runner_client.post("/runs/new/", data)
    assert "apiToken was masked in QFlow" in _errors_of(refused, f"var_value_{token_row}")

    data["input"] = json.dumps({"db": {"host": "db-1", "password": TYPED_SECRET}})
    data[f"var_value_{token_row}"] = "tok-typed-secret-42"
    accepted = runner_client.post("/runs/new/", data)
    assert accepted.status_code == 302
    run = Run.objects.get()
    assert run.input["db"]["password"] == TYPED_SECRET
    assert run.variables["apiToken"] == "tok-typed-secret-42"
    assert "credentials" not in run.variables  # left empty: not sent


def test_a_mask_left_in_several_places_names_every_path(runner_client, sent):
    wf = fake_workflow()
    text = json.dumps({"a": "********", "b": [{"key": "Bearer ********"}], "odd key": "********"})
    response = runner_client.post("/runs/new/", form_data(wf, input=text))

    assert response.status_code == 400 and not Run.objects.exists()
    error = _errors_of(response, "input")
    assert 'input.a, input.b[0].key, input["odd key"] were masked' in error


# --- 4. limits of the form ----------------------------------------------------------------------


def _nested(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (json.dumps({"blob": "x" * 2_000_000}), "the limit is 1 MB (1,000,000 bytes)"),
        # 600,012 characters, 1,200,012 bytes: the limit counts bytes.
        (json.dumps({"blob": "é" * 600_000}, ensure_ascii=False), "1.2 MB (1,200,012 bytes)"),
        (_nested(65), "more than 64 levels deep"),
        ("[" * 10_000 + "]" * 10_000, "more than 64 levels deep"),
        ('{"a": ' + "[" * 10_000 + "]" * 10_000 + "}", "more than 64 levels deep"),
        ('{"ratio": NaN}', "NaN is not JSON"),
        ('{"limit": Infinity}', "Infinity is not JSON"),
        ('{"limit": -Infinity}', "-Infinity is not JSON"),
    ],
    ids=["2MB", "multibyte", "65-levels", "10000-levels", "10000-inside", "NaN", "Inf", "-Inf"],
)
def test_an_input_beyond_the_limits_gets_a_message_and_nothing_is_stored(
    runner_client, sent, text, message
):
    wf = fake_workflow()
    response = runner_client.post("/runs/new/", form_data(wf, input=text))

    assert response.status_code == 400
    assert message in _errors_of(response, "input")
    assert 'id="id_input_errors"' in _html(response)
    assert not Run.objects.exists() and not sent


def test_an_input_at_the_limits_is_accepted(runner_client, sent, settings):
    wf = fake_workflow()
    deep = runner_client.post("/runs/new/", form_data(wf, action="preview", input=_nested(64)))
    assert deep.status_code == 200, _errors_of(deep, "input")

    settings.RUNS_MAX_INPUT_BYTES = 100
    text = json.dumps({"k": "x" * 91})  # 100 bytes
    assert runner_client.post("/runs/new/", form_data(wf, input=text)).status_code == 302
    too_big = runner_client.post("/runs/new/", form_data(wf, input=text + " "))
    assert "the limit is 100 bytes" in _errors_of(too_big, "input")


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("JSON", _nested(65), "more than 64 levels deep"),
        ("JSON", "[" * 5_000 + "]" * 5_000, "more than 64 levels deep"),
        ("JSON", '{"x": NaN}', "NaN is not JSON"),
        ("List", "[1, Infinity]", "Infinity is not JSON"),
        ("String", "x" * 10_001, "the limit is 10 KB (10,000 bytes) per variable"),
        ("JSON", json.dumps(["y" * 10_000]), "the limit is 10 KB (10,000 bytes) per variable"),
    ],
)
def test_a_variable_beyond_the_limits_gets_a_message(runner_client, sent, kind, value, message):
    wf = fake_workflow()
    data = form_data(wf, var_key_0="cfg", var_type_0=kind, var_value_0=value)
    response = runner_client.post("/runs/new/", data)

    assert response.status_code == 400
    assert message in _errors_of(response, "var_value_0")
    assert not Run.objects.exists() and not sent


def _custom_variables(count: int) -> dict[str, str]:
    data = {}
    for n in range(count):
        data.update({f"var_key_{n}": f"v{n}", f"var_type_{n}": "String", f"var_value_{n}": "x"})
    return data


def test_fifty_custom_variables_are_sent_and_fifty_one_get_a_message(runner_client, sent):
    wf = fake_workflow()
    fifty = runner_client.post("/runs/new/", form_data(wf, **_custom_variables(50)))
    assert fifty.status_code == 302
    assert len(Run.objects.get().variables) == 50  # none dropped silently

    response = runner_client.post("/runs/new/", form_data(wf, **_custom_variables(51)))

    assert response.status_code == 400
    html = _html(response)
    assert "At most 50 custom variables can be set; this form has 51." in html
    assert Run.objects.count() == 1
    # Every row is still on the form, to remove some.
    assert 'name="var_key_50"' in html


def test_six_hundred_custom_variables_get_a_message_on_the_form_not_a_bare_400(runner, sent):
    """1,800 fields: more than Django reads (DATA_UPLOAD_MAX_NUMBER_FIELDS); with CSRF on,
    posted urlencoded as a browser posts this form."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(runner)
    wf = fake_workflow()
    page = _html(client.get("/runs/new/"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = form_data(wf, csrfmiddlewaretoken=token, **_custom_variables(600))

    response = client.post(
        "/runs/new/", urlencode(data), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    html = _html(response)
    assert "too many fields" in html and "(600 custom variables)" in html
    assert "At most 50 custom variables can be set" in html
    assert "<form" in html and f'<option value="{wf.id}" data-cloud="AWS" selected>' in html
    assert "test-bucket-1" in html  # the input is kept
    assert not Run.objects.exists() and not sent

    # Sent as multipart the fields cannot be read back, but the message is the same.
    response = client.post("/runs/new/", data)
    assert response.status_code == 400
    assert "At most 50 custom variables can be set" in _html(response)
    assert not Run.objects.exists() and not sent


def test_a_form_larger_than_django_reads_gets_a_message_not_a_bare_400(runner_client, sent):
    """Past DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) Django refuses to read the POST at all."""
    wf = fake_workflow()
    data = form_data(wf, input=json.dumps({"blob": "x" * 3_000_000}))

    response = runner_client.post(
        "/runs/new/", urlencode(data), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    html = _html(response)
    assert "larger than the server accepts" in html
    assert "The input is limited to 1 MB (1,000,000 bytes)" in html and "<form" in html
    assert not Run.objects.exists() and not sent


def test_the_run_form_still_checks_csrf(runner, sent):
    client = Client(enforce_csrf_checks=True)
    client.force_login(runner)
    wf = fake_workflow()

    assert client.post("/runs/new/", form_data(wf)).status_code == 403
    page = _html(client.get("/runs/new/"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post("/runs/new/", form_data(wf, csrfmiddlewaretoken=token)).status_code == 302
    assert Run.objects.count() == 1
