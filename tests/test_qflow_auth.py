"""The token cache under a slow or failing token endpoint (real HTTP, loopback server)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from qflowui.qflow import QflowClient
from qflowui.qflow import auth as qflow_auth
from qflowui.qflow.errors import QflowUnavailable

EX = "0e71f117-648f-4ad2-a3a9-8f1b857a1b70"
EXECUTION_PATH = f"/qflowapi/v1/executions/{EX}"


class TokenEndpoint:
    """/auth/oidc that can stall (until released) or fail, counting what it was asked."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.status = 200
        self.asked = 0
        self.release = threading.Event()

    def __call__(self, request: Request) -> Response:
        self.asked += 1
        if self.delay:
            self.release.wait(self.delay)
        if self.status != 200:
            return Response('{"message": "down"}', status=self.status)
        return Response("opaque-token-value-0123456789", content_type="text/plain")


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    qflow_auth.clear_token_cache()
    yield server
    server.clear()
    server.stop()
    qflow_auth.clear_token_cache()


@pytest.fixture
def token_endpoint(server) -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    server.expect_request("/auth/oidc", method="POST").respond_with_handler(endpoint)
    server.expect_request(EXECUTION_PATH).respond_with_json(
        {"data": {"id": EX, "workflow": EX, "status": "Success"}}
    )
    yield endpoint
    endpoint.release.set()


def client(server: HTTPServer, **options) -> QflowClient:
    options.setdefault("timeout", 10.0)
    options.setdefault("max_retries", 0)
    return QflowClient(
        server.url_for("/").rstrip("/"), client_id="c-1", client_secret="s-1", **options
    )


def test_pages_waiting_for_a_stalled_token_fetch_give_up_at_their_budget_not_one_after_another(
    server, token_endpoint
) -> None:
    token_endpoint.delay = 30

    def page(budget: float) -> tuple[float, BaseException | None]:
        started = time.monotonic()
        try:
            client(server, budget=budget).get_execution(EX)
        except QflowUnavailable as exc:
            return time.monotonic() - started, exc
        return time.monotonic() - started, None

    with ThreadPoolExecutor(6) as pool:
        fetching = pool.submit(page, 2.0)  # this page's fetch stalls
        deadline = time.monotonic() + 5
        while token_endpoint.asked == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        waiting = list(pool.map(page, [0.5] * 5))
        fetcher = fetching.result()

    # Each waiting page gave up at its own budget, at once, and said why.
    for took, error in waiting:
        assert isinstance(error, QflowUnavailable) and "sign-in is slow" in str(error)
        assert took < 0.5 + 1.0, took
    assert isinstance(fetcher[1], QflowUnavailable) and fetcher[0] < 2.0 + 1.0
    assert token_endpoint.asked == 1


def test_a_failed_token_fetch_is_remembered_for_a_few_seconds_then_tried_again(
    server, token_endpoint, monkeypatch
) -> None:
    monkeypatch.setattr(qflow_auth, "FAILURE_MEMO_SECONDS", 0.5)
    token_endpoint.status = 500

    errors = []
    for _ in range(5):
        with pytest.raises(QflowUnavailable) as caught:
            client(server).get_execution(EX)
        errors.append(caught.value)
    asked_during_the_memo = token_endpoint.asked
    time.sleep(0.6)
    token_endpoint.status = 200
    execution = client(server).get_execution(EX)

    assert asked_during_the_memo == 1  # a storm of callers made one attempt, not five
    assert all(error.status_code == 500 for error in errors)
    assert len({id(error) for error in errors}) == 5  # each caller gets its own exception
    assert execution.id == EX and token_endpoint.asked == 2


def test_without_a_budget_a_caller_waits_for_the_fetch_in_progress_and_shares_its_token(
    server, token_endpoint
) -> None:
    token_endpoint.delay = 0.5

    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: client(server).get_execution(EX).id, range(4)))

    assert found == [EX] * 4
    assert token_endpoint.asked == 1


@pytest.mark.django_db
def test_a_fetch_stalled_in_another_process_is_waited_for_and_its_failure_shared(
    server, token_endpoint
) -> None:
    """Several gunicorn workers: one token request between them, not one per process."""
    token_endpoint.delay = 30
    other = subprocess.Popen(  # noqa: S603 - our interpreter, our code
        [sys.executable, "-c", OTHER_PROCESS, server.url_for("/").rstrip("/")],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "qflowui.settings"},
    )
    try:
        deadline = time.monotonic() + 30
        while token_endpoint.asked == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(QflowUnavailable, match="sign-in is slow"):
            client(server, budget=0.5).get_execution(EX)
        assert other.wait(30) == 0
        qflow_auth.TOKEN_CACHE._failures.clear()  # only what the other process shared is left
        with pytest.raises(QflowUnavailable, match="timed out"):
            client(server, budget=0.5).get_execution(EX)
    finally:
        other.kill()
        other.wait()

    assert token_endpoint.asked == 1


# A second process whose page fetch (budget 2 s) stalls and fails: it holds the claim, then
# shares its failure.
OTHER_PROCESS = """
import sys
import django
django.setup()
from qflowui.qflow import QflowClient
from qflowui.qflow.errors import QflowUnavailable
client = QflowClient(sys.argv[1], client_id="c-1", client_secret="s-1", budget=2.0, max_retries=0)
try:
    client.get_execution("0e71f117-648f-4ad2-a3a9-8f1b857a1b70")
except QflowUnavailable:
    sys.exit(0)
sys.exit(1)
"""
