"""Operating it: /metrics behind a bearer token, request ids, JSON logs (web and worker)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from django.utils.module_loading import import_string
from prometheus_client.parser import text_string_to_metric_families

from qflowui.celery import app
from qflowui.core import requestid
from qflowui.core.metrics import queue_length
from qflowui.core.tasks import ping
from qflowui.mirror.models import Execution, SyncRun, Workflow
from qflowui.qflow.client import QflowClient
from qflowui.qflow.errors import QflowNotFound, QflowUnavailable
from qflowui.runs.models import Heartbeat, Run, RunState
from tests.test_runs_support import point_broker, wait_for
from tests.test_web_never_stalls import _unreachable, database_gone, session_cookie  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-" + "x" * 24
GENERATED = re.compile(r"[0-9a-f]{32}")


def _samples(body: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text body, by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _scrape(client: Client | None = None) -> dict[tuple[str, tuple], float]:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain")
    return _samples(response.content.decode())


# --- /metrics: on, off, token ---------------------------------------------------------


def test_metrics_are_off_404_while_no_token_is_set(settings, db):
    settings.QFLOWUI_METRICS_TOKEN = ""
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"{TOKEN}"],
)
def test_metrics_without_the_right_bearer_token_are_401(settings, db, authorization):
    settings.QFLOWUI_METRICS_TOKEN = TOKEN
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = Client().get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"qflowui_" not in response.content


def test_metrics_need_no_session_and_no_group_only_the_token(settings, db, django_user_model):
    settings.QFLOWUI_METRICS_TOKEN = TOKEN
    nobody = django_user_model.objects.create_user(username="no.group", password="x")
    signed_in = Client()
    signed_in.force_login(nobody)  # signed in without access: still the token decides
    assert signed_in.get("/metrics").status_code == 401
    assert _scrape(Client())  # anonymous, token only: 200


@pytest.mark.redis
def test_metrics_report_seeded_state_with_the_right_values(
    settings, db, redis_url, django_user_model
):
    settings.QFLOWUI_METRICS_TOKEN = TOKEN
    cache.clear()
    now = timezone.now()
    user = django_user_model.objects.create_user(username="rita.runner", password="x")
    workflows = [
        Workflow.objects.create(id=uuid.uuid4(), name=f"wf {n}", last_synced_at=now)
        for n in range(3)
    ]
    Execution.objects.bulk_create(
        Execution(
            id=uuid.uuid4(),
            workflow=workflows[n % 3],
            status="COMPLETED",
            status_class="success",
            is_terminal=True,
            started_at=now - timedelta(minutes=n),
            last_synced_at=now,
        )
        for n in range(7)
    )
    states = [RunState.QUEUED] * 2 + [RunState.SUBMITTED] * 3 + [RunState.NEEDS_REVIEW]
    for state in states:
        Run.objects.create(
            idempotency_key=uuid.uuid4(),
            created_by=user,
            workflow=workflows[0],
            body_sha256="0" * 64,
            state=state,
        )
    # The last complete pass finished 600 s ago; a partial one 60 s ago, with the budget.
    SyncRun.objects.create(
        started_at=now - timedelta(seconds=660),
        finished_at=now - timedelta(seconds=600),
        ok=True,
        api_calls=40,
    )
    SyncRun.objects.create(
        started_at=now - timedelta(seconds=90),
        finished_at=now - timedelta(seconds=60),
        partial=True,
        api_calls=25,
        rate_limit=300,
        rate_window_sec=3600,
    )
    SyncRun.objects.create(  # outside the window: not counted in the calls used
        started_at=now - timedelta(hours=2), finished_at=now - timedelta(hours=2), ok=True
    )
    Heartbeat.objects.update_or_create(name="beat", defaults={"at": now - timedelta(seconds=20)})

    # An upstream error, counted by the client in the shared cache: a refused connection.
    refused = QflowClient("http://127.0.0.1:1", token="t", max_retries=0, timeout=1)
    with pytest.raises(QflowUnavailable):
        refused.list_workflows()

    # A queue of this test's own on the Redis broker, holding exactly 4 messages.
    queue = f"test-metrics-{uuid.uuid4().hex[:10]}"
    settings.CELERY_BROKER_URL = redis_url
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    with app.connection_for_write(redis_url) as conn:
        for n in range(4):
            ping.apply_async((str(n),), queue=queue, connection=conn)
    try:
        samples = _scrape()
    finally:
        redis.Redis.from_url(redis_url).delete(queue)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("qflowui_celery_queue_length", queue=queue) == 4
    assert value("qflowui_runs", state="queued") == 2
    assert value("qflowui_runs", state="submitted") == 3
    assert value("qflowui_runs", state="needs_review") == 1
    assert value("qflowui_runs", state="unknown") == 0
    assert value("qflowui_mirror_rows", table="workflows") == 3
    assert value("qflowui_mirror_rows", table="executions") == 7
    assert 600 <= value("qflowui_sync_last_complete_age_seconds") < 630
    assert 60 <= value("qflowui_sync_last_pass_age_seconds") < 90
    assert value("qflowui_sync_last_pass_status", status="partial") == 1
    assert value("qflowui_sync_last_pass_status", status="ok") == 0
    assert value("qflowui_qflow_rate_limit_calls") == 300
    assert value("qflowui_qflow_rate_limit_window_seconds") == 3600
    assert value("qflowui_qflow_api_calls_in_window") == 65
    assert value("qflowui_qflow_rate_limited_seconds") == 0
    assert 20 <= value("qflowui_beat_heartbeat_age_seconds") < 50
    assert value("qflowui_qflow_errors_total", kind="unavailable") == 1
    assert value("qflowui_qflow_errors_total", kind="not_found") == 0
    for source in ("database", "cache", "broker"):
        assert value("qflowui_metrics_source_up", source=source) == 1


def test_upstream_errors_are_counted_by_kind_across_clients(settings, db, httpserver):
    settings.QFLOWUI_METRICS_TOKEN = TOKEN
    cache.clear()
    httpserver.expect_request(re.compile(r".*/workflows/.*")).respond_with_json(
        {"message": "no such workflow"}, status=404
    )
    base = httpserver.url_for("/").rstrip("/")
    for _ in range(2):  # two clients, as two processes would have: one shared count
        client = QflowClient(base, token="t", max_retries=0, timeout=2)
        with pytest.raises(QflowNotFound):
            client.get_workflow(str(uuid.uuid4()))
    samples = _scrape()
    assert samples[("qflowui_qflow_errors_total", (("kind", "not_found"),))] == 2
    assert samples[("qflowui_qflow_errors_total", (("kind", "unavailable"),))] == 0


def test_without_redis_broker_the_queue_length_is_absent_not_zero(settings, db):
    settings.QFLOWUI_METRICS_TOKEN = TOKEN
    settings.CELERY_BROKER_URL = "filesystem://"
    assert queue_length("filesystem://", "qflowui") is None
    names = {name for name, _ in _scrape()}
    assert "qflowui_celery_queue_length" not in names
    assert "qflowui_runs" in names


def test_request_metrics_are_labelled_by_view_name_never_by_raw_path(settings, viewer_client):
    settings.QFLOWUI_METRICS_TOKEN = TOKEN
    list_key = (
        "qflowui_http_requests_total",
        (("method", "GET"), ("status", "2xx"), ("view", "executions:list")),
    )
    missing_key = (
        "qflowui_http_requests_total",
        (("method", "GET"), ("status", "4xx"), ("view", "unmatched")),
    )
    before = _scrape()
    assert viewer_client.get("/executions/").status_code == 200
    assert viewer_client.get("/executions/").status_code == 200
    secret_path = f"/no-such-page-{uuid.uuid4().hex}"
    assert viewer_client.get(secret_path).status_code == 404
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    after = _samples(response.content.decode())
    assert after[list_key] - before.get(list_key, 0) == 2
    assert after[missing_key] - before.get(missing_key, 0) == 1
    assert secret_path not in response.content.decode()
    bucket = (
        "qflowui_http_request_duration_seconds_count",
        (("method", "GET"), ("status", "2xx"), ("view", "executions:list")),
    )
    assert after[bucket] - before.get(bucket, 0) == 2


# --- request ids --------------------------------------------------------------------


def test_every_response_carries_a_new_request_id(client, db):
    first = client.get("/accounts/login/")
    second = client.get("/accounts/login/")
    assert GENERATED.fullmatch(first["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_safe_incoming_request_id_is_kept(client, db):
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID="lb-2025.11.23_abcDEF-42")
    assert response["X-Request-ID"] == "lb-2025.11.23_abcDEF-42"


@pytest.mark.parametrize(
    "unsafe",
    [
        "abcdefgh\nX-Injected: 1",
        "<script>alert(1)</script>",
        "a" * 65,
        "short",
        "with space in it",
        "",
    ],
)
def test_an_unsafe_incoming_request_id_is_replaced(client, db, unsafe):
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID=unsafe)
    assert GENERATED.fullmatch(response["X-Request-ID"])


def test_the_404_page_and_the_no_access_page_show_the_request_id(client, django_user_model):
    missing = client.get("/no-such-page/", HTTP_X_REQUEST_ID="quote-me-404-abc")
    assert missing.status_code == 404
    assert "Request id: <code data-request-id>quote-me-404-abc</code>" in missing.content.decode()

    nobody = django_user_model.objects.create_user(username="no.group", password="x")
    client.force_login(nobody)
    refused = client.get("/executions/", HTTP_X_REQUEST_ID="quote-me-403-abc")
    assert refused.status_code == 403
    assert "<code data-request-id>quote-me-403-abc</code>" in refused.content.decode()


def test_the_database_unavailable_page_shows_the_request_id(viewer, client, database_gone):  # noqa: F811
    cookies = session_cookie(client, viewer)
    browser = Client(raise_request_exception=False)
    browser.cookies.load(cookies)
    database_gone(**_unreachable())

    page = browser.get("/executions/", HTTP_X_REQUEST_ID="db-down-request-1")

    assert page.status_code == 503
    text = page.content.decode()
    assert "Database unavailable" in text
    assert "Request id: <code data-request-id>db-down-request-1</code>" in text
    assert page["X-Request-ID"] == "db-down-request-1"


def test_a_server_error_page_shows_the_request_id(rf):
    from qflowui.core.views import server_error

    request = rf.get("/executions/")
    request.request_id = "boom-request-1234"
    page = server_error(request)
    assert page.status_code == 500
    assert "<code data-request-id>boom-request-1234</code>" in page.content.decode()


# --- logs ---------------------------------------------------------------------------


@pytest.fixture
def fresh_broker_pools():
    """Celery keeps the first broker connection pool a process makes: a test that points the
    app at another broker starts and ends with none, so no other test inherits its broker."""

    def reset() -> None:
        app._pool = None
        app.amqp._producer_pool = None

    reset()
    yield
    reset()


def _json_handler() -> tuple[logging.Handler, io.StringIO]:
    from django.conf import settings

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(import_string(settings.LOGGING["formatters"]["json"]["()"])())
    return handler, stream


def test_json_log_lines_of_a_request_carry_its_id_and_user_and_its_traceback(
    viewer_client, monkeypatch, fresh_broker_pools
):
    handler, stream = _json_handler()
    root = logging.getLogger()
    root.addHandler(handler)
    point_broker(monkeypatch, "redis://127.0.0.1:9/0")  # nothing listens: enqueue fails
    try:
        response = viewer_client.post(
            "/executions/sync/", {"next": "/executions/"}, HTTP_X_REQUEST_ID="json-log-req-1"
        )
    finally:
        root.removeHandler(handler)
    assert response.status_code == 302
    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    ours = [e for e in entries if "could not queue a sync pass" in e["message"]]
    assert len(ours) == 1, lines
    entry = ours[0]
    assert entry["request_id"] == "json-log-req-1"
    assert entry["user"] == "vera.viewer"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "qflowui.executions.views"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert "Traceback" in entry["exception"]


def test_json_logs_as_configured_are_one_masked_object_per_line(tmp_path):
    """The LOGGING dict with LOG_FORMAT=json, in a process of its own."""
    script = (
        "import django, logging\n"
        "django.setup()\n"
        "from qflowui.core import requestid\n"
        "log = logging.getLogger('qflowui.probe')\n"
        "log.info('outside any request')\n"
        "requestid.activate('probe-request-1', user='sam.sre')\n"
        "log.warning('login with password=%s\\nFAKE 2025 INFO forged line', 'hunter2-secret')\n"
        "try:\n"
        "    raise ValueError('token=abcdef0123456789secret')\n"
        "except ValueError:\n"
        "    log.exception('it failed')\n"
    )
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "qflowui.settings"}
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in done.stderr.splitlines() if "qflowui.probe" in line]
    entries = [json.loads(line) for line in lines]
    assert [e["message"].split(" ")[0] for e in entries] == ["outside", "login", "it"]
    outside, masked, failed = entries
    assert outside["request_id"] is None and outside["user"] is None
    assert masked["request_id"] == "probe-request-1" and masked["user"] == "sam.sre"
    assert "hunter2-secret" not in done.stderr
    assert "\\nFAKE 2025" in masked["message"]  # escaped: no second line was forged
    assert failed["request_id"] == "probe-request-1"
    assert "ValueError" in failed["exception"]
    assert "abcdef0123456789secret" not in failed["exception"]


def test_plain_log_lines_carry_the_request_id(tmp_path):
    script = (
        "import django, logging\n"
        "django.setup()\n"
        "from qflowui.core import requestid\n"
        "log = logging.getLogger('qflowui.probe')\n"
        "log.warning('before')\n"
        "requestid.activate('plain-request-1')\n"
        "log.warning('during')\n"
    )
    env = {**os.environ, "LOG_FORMAT": "plain", "DJANGO_SETTINGS_MODULE": "qflowui.settings"}
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in done.stderr.splitlines() if "qflowui.probe" in line]
    assert lines[0].endswith("WARNING qflowui.probe [req=-] before")
    assert lines[1].endswith("WARNING qflowui.probe [req=plain-request-1] during")


def test_a_request_id_is_current_only_while_the_request_runs(client, db):
    client.get("/accounts/login/")
    assert requestid.current_request_id() is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.celery_worker
@pytest.mark.redis
def test_a_task_enqueued_by_a_request_logs_with_its_request_id_in_a_real_worker(
    start_celery_worker, redis_url, monkeypatch, django_user_model, fresh_broker_pools
):
    worker = start_celery_worker(
        env={
            "LOG_FORMAT": "json",
            # Nothing listens there: the pass fails fast, and says so in its log line.
            "QFLOW_BASE_URL": "http://127.0.0.1:1",
            "QFLOW_SIMULATOR": "false",
            "QFLOW_TOKEN": "worker-test-token",
        }
    )
    point_broker(monkeypatch, redis_url, worker.queue)
    user = django_user_model.objects.create_user(username="vera.viewer", password="x")
    user.groups.add(Group.objects.get_or_create(name="Viewers")[0])
    browser = Client()
    browser.force_login(user)

    response = browser.post(
        "/executions/sync/", {"next": "/executions/"}, HTTP_X_REQUEST_ID="worker-req-0042"
    )
    assert response.status_code == 302

    def pass_logged() -> list[dict]:
        found = []
        for line in worker.log_path.read_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry["logger"] == "qflowui.mirror.sync" and "sync pass" in entry["message"]:
                    found.append(entry)
        return found

    entries = wait_for(pass_logged, 40, "the worker's sync pass log line")
    assert entries[0]["request_id"] == "worker-req-0042"
    assert entries[0]["user"] == "vera.viewer"
    # The worker's own lines are JSON too, outside any request.
    text = worker.log_path.read_text()
    ready = [json.loads(line) for line in text.splitlines() if "ready." in line]
    assert ready and ready[0]["request_id"] is None


def test_with_a_multiprocess_dir_request_metrics_add_up_over_worker_processes(tmp_path, db):
    """PROMETHEUS_MULTIPROC_DIR: two processes answer requests, a third scrapes the sum."""
    from tests.conftest import database_url_for_other_processes

    script = (
        "import sys, django\n"
        "django.setup()\n"
        "from django.test import Client\n"
        "client = Client()\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    client.get('/metrics')\n"  # no token: 401, counted
        "if sys.argv[2] == 'scrape':\n"
        "    print(client.get('/metrics', HTTP_AUTHORIZATION='Bearer " + TOKEN + "')"
        ".content.decode())\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "qflowui.settings",
        "DATABASE_URL": database_url_for_other_processes(),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "QFLOWUI_METRICS_TOKEN": TOKEN,
    }

    def run(requests: int, mode: str) -> str:
        done = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, "-c", script, str(requests), mode],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    run(2, "-")
    run(3, "-")
    samples = _samples(run(1, "scrape"))
    key = (
        "qflowui_http_requests_total",
        (("method", "GET"), ("status", "4xx"), ("view", "metrics")),
    )
    assert samples[key] == 2 + 3 + 1
    assert ("qflowui_runs", (("state", "queued"),)) in samples
