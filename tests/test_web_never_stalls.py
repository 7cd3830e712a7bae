"""The web UI never stalls: a stalled QFlow, token endpoint, broker or database costs a page a
few seconds at most, slow payloads are fetched by a worker while the panel polls, and
/healthz always answers at once. Real HTTP throughout (loopback servers, live_server)."""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from django.test import Client
from playwright.sync_api import expect
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from qflowui.executions import services, tasks
from qflowui.mirror.models import Execution, StepPayload
from qflowui.qflow import auth as qflow_auth
from tests.conftest import IN_CI, require
from tests.test_execution_detail_support import (
    EXECUTION_ID,
    FakeQflow,
    component,
    step,
    successful,
)
from tests.test_runs_support import point_broker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NODES = ["trigger", "node-2-action", "node-3-action", "node-4-action", "node-5-action"]
KINDS = ("input", "output")
SECRET = "hunter2-not-for-anyone"
BUDGET = 4.0  # QFLOW_PAGE_BUDGET_SECONDS, the default
PAYLOAD_PATH = re.compile(r"/steps/[^/]+/(input|output)$")


@dataclass
class SlowQflow(FakeQflow):
    """FakeQflow whose step payloads (and token endpoint) can be slow or stalled.

    A stalled answer waits on `release` (set at teardown), so no server thread outlives the test.
    """

    payload_delay: float = 0.0
    token_delay: float = 0.0
    token_status: int = 200
    release: threading.Event = field(default_factory=threading.Event)
    arrived: list[str] = field(default_factory=list)  # every request, as it arrives

    def handler(self, request: Request) -> Response:
        self.arrived.append(f"{request.method} {request.path}")
        if request.path == "/auth/oidc":
            if self.token_delay:
                self.release.wait(self.token_delay)
            if self.token_status != 200:
                return Response('{"message": "no"}', status=self.token_status)
            return Response("token-value-from-oidc-0123456789", content_type="text/plain")
        if PAYLOAD_PATH.search(request.path) and self.payload_delay:
            self.release.wait(self.payload_delay)
        return super().handler(request)

    def count(self, pattern: str) -> int:
        """Requests that arrived (answered or not) whose "METHOD path" matches."""
        return sum(1 for call in list(self.arrived) if re.search(pattern, call))


@pytest.fixture
def qflow(settings) -> Iterator[SlowQflow]:
    """A threaded loopback QFlow serving one failed execution of five steps."""
    fake = SlowQflow(
        components=[
            component(node, f"Step {i}", "Trigger" if i == 0 else "Action")
            for i, node in enumerate(NODES)
        ],
        steps=[step(node, "Action", "Success", i + 1) for i, node in enumerate(NODES)],
        inputs={node: {"step": node, "password": SECRET} for node in NODES},
        outputs={node: {"result": f"output of {node}", "token": SECRET} for node in NODES},
    )
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.expect_request(re.compile(".*")).respond_with_handler(fake.handler)
    server.start()
    settings.QFLOW_BASE_URL = server.url_for("/").rstrip("/")
    settings.QFLOW_TOKEN = "t"
    settings.QFLOW_CLIENT_ID = ""
    settings.QFLOW_CLIENT_SECRET = ""
    settings.QFLOW_SIMULATOR = False
    settings.QFLOW_TIMEOUT_SECONDS = 20.0  # the sync's timeout: pages must not wait this long
    qflow_auth.clear_token_cache()
    yield fake
    fake.release.set()
    server.clear()
    server.stop()
    qflow_auth.clear_token_cache()


def mirrored(fake: SlowQflow) -> Execution:
    """The execution and its steps in the mirror, as a first view of its page leaves them."""
    services.execution_load(EXECUTION_ID)
    fake.arrived.clear()
    return Execution.objects.get(pk=EXECUTION_ID)


def tree_url(node: str, kind: str = "output") -> str:
    return f"/executions/{EXECUTION_ID}/steps/{node}/{kind}/tree"


def session_cookie(client: Client, user) -> dict[str, str]:
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return {name: client.cookies[name].value}


def timed(call: Callable[[], requests.Response]) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = call()
    return time.monotonic() - started, response


def poll_url(html: str) -> str:
    found = re.search(r'hx-get="([^"]*poll=[^"]*)"', html)
    assert found, html
    return htmllib.unescape(found.group(1))


# --- a stalled QFlow ------------------------------------------------------------------------


def test_a_stalled_qflow_holds_payload_views_for_the_budget_and_never_the_list_or_healthz(
    qflow, viewer, client, live_server
):
    mirrored(qflow)
    qflow.payload_delay = 60  # QFlow accepts the payload requests and stalls for a minute
    cookies = session_cookie(client, viewer)
    htmx = {"HX-Request": "true"}
    views = [f"{live_server.url}{tree_url(node, kind)}" for node in NODES for kind in KINDS]

    def view(url: str) -> tuple[float, requests.Response]:
        return timed(lambda: requests.get(url, cookies=cookies, headers=htmx, timeout=60))

    with ThreadPoolExecutor(len(views)) as pool:
        pending = [pool.submit(view, url) for url in views]
        wait_for(lambda: qflow.count("/(input|output)$") >= len(views), 10, "10 payload views")
        list_took, listing = timed(
            lambda: requests.get(f"{live_server.url}/executions/?range=all", cookies=cookies)
        )
        health_took, health = timed(lambda: requests.get(f"{live_server.url}/healthz"))
        still_waiting = [not future.done() for future in pending]
        payloads = [future.result() for future in pending]

    assert listing.status_code == 200 and f'data-execution-id="{EXECUTION_ID}"' in listing.text
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    # Both answered while all ten payload views were still waiting on QFlow.
    assert all(still_waiting)
    assert list_took < 5 and health_took < 5, (list_took, health_took)
    for took, response in payloads:
        assert response.status_code == 200
        assert "QFlow could not be reached" in response.text
        # Given up at the page budget, not after 2 x 20 s (the sync's timeout, one retry).
        assert took < BUDGET + 3, took


# --- payloads fetched by a worker -----------------------------------------------------------


def shared_redis_cache(settings, redis_url: str) -> None:
    """This process's cache on the Redis the test's worker uses (same key prefix)."""
    settings.CACHES = {
        alias: {
            "BACKEND": "qflowui.core.cache.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": conf["KEY_PREFIX"],
        }
        for alias, conf in django_settings.CACHES.items()
    }
    cache.clear()


def test_a_slow_payload_is_fetched_by_a_worker_while_the_panel_shows_progress_and_polls(
    qflow, viewer_client, settings, redis_url, start_celery_worker, monkeypatch
):
    shared_redis_cache(settings, redis_url)
    mirrored(qflow)
    qflow.payload_delay = 2.0  # slow, not stalled: the worker gets it
    worker = start_celery_worker(
        env={
            "QFLOW_BASE_URL": settings.QFLOW_BASE_URL,
            "QFLOW_TOKEN": "t",
            "QFLOW_CLIENT_ID": "",
            "QFLOW_CLIENT_SECRET": "",
            "QFLOW_SIMULATOR": "false",
        }
    )
    point_broker(monkeypatch, redis_url, worker.queue)
    wait_for(services.workers_alive, 30, "the worker's heartbeat")
    url = tree_url("node-3-action")

    first = viewer_client.get(url, HTTP_HX_REQUEST="true")
    other_viewer = viewer_client.get(url, HTTP_HX_REQUEST="true")

    html = first.content.decode()
    assert first.status_code == other_viewer.status_code == 200
    assert "Fetching the output from QFlow… 0 s" in html
    assert 'hx-trigger="every 1s"' in html
    assert "Fetching the output from QFlow" in other_viewer.content.decode()
    assert not StepPayload.objects.filter(node_id="node-3-action").exists()

    polls: list[int] = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        response = viewer_client.get(poll_url(html), HTTP_HX_REQUEST="true")
        polls.append(response.status_code)
        if response.status_code != 200:
            break
        assert "Fetching the output from QFlow…" in response.content.decode()
        time.sleep(0.5)
    final = response.content.decode()

    assert polls[-1] == 286, (polls, final[:500])
    assert 'class="jt"' in final and "output of node-3-action" in final
    assert SECRET not in final and "hx-trigger" not in final
    # One upstream request for two viewers and all their polls (single flight).
    assert qflow.count(r"node-3-action/output$") == 1
    row = StepPayload.objects.get(node_id="node-3-action", kind="output")
    assert SECRET not in json.dumps(row.body)
    # Cached now: served at once, no task, no call.
    again = viewer_client.get(url, HTTP_HX_REQUEST="true")
    assert "output of node-3-action" in again.content.decode()
    assert qflow.count(r"node-3-action/output$") == 1


def test_without_javascript_the_page_says_the_payload_is_being_fetched_and_to_reload(
    qflow, viewer_client, monkeypatch
):
    mirrored(qflow)
    queued: list[tuple[str, str, str]] = []
    monkeypatch.setattr(services, "workers_alive", lambda: True)
    monkeypatch.setattr(services, "_enqueue_fetch", lambda *args: queued.append(args) or True)
    url = tree_url("node-2-action")

    first = viewer_client.get(url)
    reload = viewer_client.get(url)
    tasks.fetch_payload(EXECUTION_ID, "node-2-action", "output")  # what the worker does
    done = viewer_client.get(url)

    page = first.content.decode()
    assert first.status_code == 200 and "<html" in page
    assert "Fetching the output from QFlow" in page and "being fetched in the background" in page
    assert f'href="{url}">reload</a>' in page
    assert "Fetching the output from QFlow" in reload.content.decode()
    # One task per payload of the step (its input too), however many views.
    assert sorted(queued) == [
        (EXECUTION_ID, "node-2-action", "input"),
        (EXECUTION_ID, "node-2-action", "output"),
    ]
    assert "output of node-2-action" in done.content.decode()
    assert "Fetching the output" not in done.content.decode()
    assert "Fetching the input" in done.content.decode()


def test_a_payload_the_task_could_not_fetch_stops_the_poll_with_the_reason(
    qflow, viewer_client, monkeypatch
):
    mirrored(qflow)
    monkeypatch.setattr(services, "workers_alive", lambda: True)
    monkeypatch.setattr(services, "_enqueue_fetch", lambda *args: True)
    monkeypatch.setattr(
        "qflowui.qflow.client.TASK_BUDGET_SECONDS", 1.0
    )  # the task's own budget, kept short here
    qflow.payload_delay = 30
    first = viewer_client.get(tree_url("node-4-action"), HTTP_HX_REQUEST="true")

    tasks.fetch_payload(EXECUTION_ID, "node-4-action", "output")
    polled = viewer_client.get(poll_url(first.content.decode()), HTTP_HX_REQUEST="true")

    text = polled.content.decode()
    assert polled.status_code == 286
    assert "QFlow could not be reached" in text and "hx-trigger" not in text


def test_with_the_broker_down_the_page_fetches_the_payload_itself_within_its_budget(
    qflow, viewer_client, monkeypatch, settings
):
    mirrored(qflow)
    settings.RUNS_ENQUEUE_TIMEOUT_SECONDS = 0.2
    monkeypatch.setattr(services, "workers_alive", lambda: True)
    point_broker(monkeypatch, "redis://127.0.0.1:9/0")  # nothing listens there

    response = viewer_client.get(tree_url("node-5-action"), HTTP_HX_REQUEST="true")

    text = response.content.decode()
    assert response.status_code == 200
    assert "output of node-5-action" in text and "Fetching" not in text
    assert qflow.count(r"node-5-action/output$") == 1


# --- the token endpoint ---------------------------------------------------------------------


@pytest.fixture
def qflow_with_sign_in(qflow, settings):
    settings.QFLOW_TOKEN = ""
    settings.QFLOW_CLIENT_ID = "client-1"
    settings.QFLOW_CLIENT_SECRET = "client-secret-value"
    settings.QFLOW_PAGE_BUDGET_SECONDS = 1.5
    return qflow


def test_a_stalled_token_endpoint_costs_each_page_its_budget_once_and_then_nothing(
    qflow_with_sign_in, viewer, client, live_server
):
    qflow = qflow_with_sign_in
    cookies = session_cookie(client, viewer)
    qflow.token_delay = 60
    # Eight executions nobody has mirrored: each page must ask QFlow (no shared refresh).
    ids = [f"{EXECUTION_ID[:-2]}{i:02d}" for i in range(8)]

    def page(execution_id: str) -> tuple[float, requests.Response]:
        url = f"{live_server.url}/executions/{execution_id}/"
        return timed(lambda: requests.get(url, cookies=cookies, timeout=60))

    with ThreadPoolExecutor(len(ids)) as pool:
        results = list(pool.map(page, ids))

    for took, response in results:
        assert response.status_code == 503
        assert "QFlow" in response.text
        # Nobody queued behind the one token fetch for longer than the page budget.
        assert took < 1.5 + 2, took
    assert qflow.count("/auth/oidc") == 1
    # The failed fetch is remembered: a storm of pages makes no new attempt.
    later = [page(execution_id) for execution_id in ids[:3]]
    assert all(r.status_code == 503 for _, r in later)
    assert qflow.count("/auth/oidc") == 1


# --- the negative cache ---------------------------------------------------------------------


def _refresh_due(execution_id: str) -> None:
    """What 5 s of waiting does between two live refreshes: the shared refresh claim expires."""
    cache.delete(f"qflowui:refresh:{execution_id}")


def test_the_live_refresh_of_an_execution_qflow_no_longer_has_asks_once_a_minute(
    simulator, viewer_client
):
    gone = "0b1c2d3e-4f50-4617-8283-949596979899"
    wf = simulator.dataset().workflows[0]
    from qflowui.mirror.models import Workflow

    workflow = Workflow.objects.create(id=wf.id, name=wf.name)
    Execution.objects.create(
        id=gone,
        workflow=workflow,
        status="Running",
        status_class="running",
        is_terminal=False,
        started_at="2026-11-01T00:00:00Z",
        last_synced_at="2026-11-01T00:00:00Z",
    )
    before = len(simulator.calls)

    pages = []
    for _ in range(6):
        _refresh_due(gone)
        pages.append(
            viewer_client.get(f"/executions/{gone}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="live")
        )

    asked = [c.path for c in simulator.calls[before:] if c.path.endswith(gone)]
    assert asked == [f"/qflowapi/v1/executions/{gone}"]
    for response in pages:
        assert response.status_code == 200
        assert "QFlow no longer returns this execution" in response.content.decode()


def test_an_execution_unknown_to_qflow_is_asked_about_once_and_then_remembered(
    simulator, viewer_client
):
    unknown = "1c2d3e4f-5061-4728-8394-a5b6c7d8e9f0"
    before = len(simulator.calls)

    responses = [viewer_client.get(f"/executions/{unknown}/") for _ in range(4)]

    assert [r.status_code for r in responses] == [404] * 4
    assert [c.path for c in simulator.calls[before:] if c.path.endswith(unknown)] == [
        f"/qflowapi/v1/executions/{unknown}"
    ]


def test_a_failing_qflow_is_asked_once_per_few_seconds_not_at_every_refresh(
    simulator, viewer_client
):
    ex = successful(simulator)
    services.execution_load(ex.id)
    Execution.objects.filter(pk=ex.id).update(is_terminal=False, steps_synced_at=None)
    simulator.inject("status", path=rf"/executions/{ex.id}$", status=503, times=None)
    before = len(simulator.calls)

    pages = []
    for _ in range(4):
        _refresh_due(ex.id)
        pages.append(viewer_client.get(f"/executions/{ex.id}/"))

    asked = [c for c in simulator.calls[before:] if c.path.endswith(ex.id)]
    assert len(asked) == 2  # the first refresh and its one retry; then it is remembered
    for response in pages:
        assert response.status_code == 200
        assert "QFlow could not be reached" in response.content.decode()


# --- the database ---------------------------------------------------------------------------


@pytest.fixture
def database_gone():
    """Point this process's database connection somewhere that fails, then put it back."""
    saved = dict(connection.settings_dict)

    def point(**changes: Any) -> None:
        connection.close()
        connection.settings_dict.update(changes)

    yield point
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


def _unreachable() -> dict[str, Any]:
    if connection.vendor == "postgresql":
        return {"HOST": "127.0.0.1", "PORT": "1"}  # nothing listens: refused at once
    return {"NAME": "/nonexistent-qflowui-dir/db.sqlite3"}  # cannot be opened


def test_a_database_that_is_down_gives_a_short_503_page_and_healthz_still_answers(
    viewer, client, database_gone
):
    cookies = session_cookie(client, viewer)
    browser = Client(raise_request_exception=False)
    browser.cookies.load(cookies)
    database_gone(**_unreachable())

    page = browser.get("/executions/")
    sign_in = Client(raise_request_exception=False).post(
        "/accounts/login/", {"username": "vera.viewer", "password": "x"}
    )
    health = Client().get("/healthz")

    for response in (page, sign_in):
        text = response.content.decode()
        assert response.status_code == 503, text[:300]
        assert "Database unavailable" in text and "Server Error" not in text
        assert response["Retry-After"] == "30"
    assert health.status_code == 200 and health.json() == {"status": "ok"}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung database)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_database_that_accepts_but_never_answers_gives_the_503_after_the_connect_timeout(
    viewer, client, database_gone, silent_server
):
    if connection.vendor != "postgresql":
        require(not IN_CI, "PostgreSQL (DATABASE_URL)")
        pytest.skip("a connect timeout is PostgreSQL's (connect_timeout)")
    cookies = session_cookie(client, viewer)
    browser = Client(raise_request_exception=False)
    browser.cookies.load(cookies)
    options = {**connection.settings_dict.get("OPTIONS", {}), "connect_timeout": 1}
    database_gone(HOST="127.0.0.1", PORT=str(silent_server), OPTIONS=options)

    took, page = timed(lambda: browser.get("/executions/"))
    health_took, health = timed(lambda: Client().get("/healthz"))

    assert page.status_code == 503 and "Database unavailable" in page.content.decode()
    assert took < 1 + 4, took  # the connect timeout, not the 130 s of a hung connect
    assert health.status_code == 200 and health_took < 1


def test_settings_give_postgresql_a_connect_timeout_and_web_processes_a_statement_timeout():
    if connection.vendor != "postgresql":
        require(not IN_CI, "PostgreSQL (DATABASE_URL)")
        pytest.skip("the options are PostgreSQL's")
    options = connection.settings_dict["OPTIONS"]
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        (statement_timeout,) = cursor.fetchone()
    assert options["connect_timeout"] == 5
    assert statement_timeout == "15s"


def test_healthz_answers_before_the_https_redirect_the_session_and_the_database(settings):
    settings.SECURE_SSL_REDIRECT = True
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connection, "ensure_connection", _no_database)
        response = Client().get("/healthz", HTTP_COOKIE="sessionid=abc")
        redirected = Client().get("/executions/")

    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")
    assert redirected.status_code == 301


def _no_database() -> None:
    raise AssertionError("/healthz touched the database")


# --- several web processes --------------------------------------------------------------------


def _in_another_process(code: str) -> str:
    """Run `code` in a fresh Django process with this test's settings (database, cache)."""
    from tests.conftest import database_url_for_other_processes

    env = {**os.environ, "DATABASE_URL": database_url_for_other_processes()}
    done = subprocess.run(  # noqa: S603 - our interpreter, our code
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=Path(__file__).resolve().parent.parent,
        env={**env, "DJANGO_SETTINGS_MODULE": "qflowui.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_the_simulators_faults_and_call_log_are_shared_by_every_process_serving_it(simulator):
    api = requests.Session()
    _in_another_process(
        "from qflowui.simulator import control\n"
        "control.inject('status', path=r'/auth/oidc$', status=503, times=1)\n"
    )

    refused = api.post(f"{django_settings.QFLOW_BASE_URL}/auth/oidc", timeout=10)
    seen = _in_another_process(
        "from qflowui.simulator import control\n"
        "print([(c.path, c.status) for c in control.calls])\n"
    )

    assert refused.status_code == 503
    assert "('/auth/oidc', 503)" in seen


def test_the_workers_heartbeat_and_the_fetch_claims_live_in_the_shared_cache():
    """What a Celery worker and the web processes must share: not the process's memory."""
    backend = django_settings.CACHES["default"]["BACKEND"]
    assert backend in {
        "qflowui.core.cache.RedisCache",
        "django.core.cache.backends.filebased.FileBasedCache",
    }
    _in_another_process(
        "from django.core.cache import cache\ncache.set('qflowui:shared-check', 42, 30)\n"
    )
    assert cache.get("qflowui:shared-check") == 42


def test_a_redis_cache_that_is_down_misses_instead_of_failing_pages():
    from qflowui.core import cache as shared

    dead = shared.RedisCache(
        "redis://127.0.0.1:9/0",
        {"KEY_PREFIX": "dead", "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}},
    )
    started = time.monotonic()
    dead.set("k", 1)
    results = (dead.get("k", "missed"), dead.add("claim", 1), dead.get_many(["k"]))
    for _ in range(50):
        dead.get("k")  # left alone after the first failure: no timeout paid again

    assert results == ("missed", True, {})
    assert time.monotonic() - started < 3


def test_clearing_the_redis_cache_deletes_only_its_own_keys(redis_url):
    import redis

    from qflowui.core import cache as shared

    raw = redis.Redis.from_url(redis_url)
    raw.set("someone-else:key", "kept", ex=60)
    mine = shared.RedisCache(redis_url, {"KEY_PREFIX": f"clear-test-{os.getpid()}"})
    mine.set("a", 1, 60)

    mine.clear()

    assert mine.get("a") is None
    assert raw.get("someone-else:key") == b"kept"
    raw.delete("someone-else:key")


def test_the_procfile_runs_several_web_workers_from_web_concurrency():
    procfile = (Path(__file__).resolve().parent.parent / "Procfile").read_text()
    web = next(line for line in procfile.splitlines() if line.startswith("web:"))
    command = web.split(":", 1)[1]

    def workers(env: dict[str, str]) -> str:
        path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
        out = subprocess.run(  # noqa: S603 - the Procfile's own line, echoed instead of run
            ["/bin/sh", "-c", command.replace("gunicorn", "echo", 1)],
            env={**os.environ, "PATH": path, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return re.search(r"--workers (\d+)", out).group(1)

    assert workers({"WEB_CONCURRENCY": "3"}) == "3"
    assert workers({"WEB_CONCURRENCY": ""}) == str(2 * (os.cpu_count() or 1) + 1)
    assert "--threads" in command


@pytest.mark.browser
def test_in_a_browser_the_panel_shows_progress_then_the_tree_the_worker_fetched(
    qflow, viewer, page, login, live_server, settings, redis_url, start_celery_worker, monkeypatch
):
    shared_redis_cache(settings, redis_url)
    mirrored(qflow)
    qflow.payload_delay = 2.0
    worker = start_celery_worker(
        env={
            "QFLOW_BASE_URL": settings.QFLOW_BASE_URL,
            "QFLOW_TOKEN": "t",
            "QFLOW_CLIENT_ID": "",
            "QFLOW_CLIENT_SECRET": "",
            "QFLOW_SIMULATOR": "false",
        }
    )
    point_broker(monkeypatch, redis_url, worker.queue)
    wait_for(services.workers_alive, 30, "the worker's heartbeat")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    login(page, viewer)
    page.goto(f"{live_server.url}/executions/{EXECUTION_ID}/?step=node-2-action")

    expect(page.locator("#payload-output [data-fetching]")).to_contain_text(
        "Fetching the output from QFlow"
    )
    expect(page.locator("#payload-output .jt")).to_contain_text(
        "output of node-2-action", timeout=30_000
    )
    expect(page.locator("#payload-input .jt")).to_contain_text("node-2-action", timeout=30_000)
    assert page.locator("[data-fetching]").count() == 0
    assert SECRET not in page.content()
    assert errors == []
