"""Helpers and fixtures (no tests here) for the saved views and alerts tests: mirrored
executions, users, and a loopback JSON webhook receiver (what apprise's json:// posts to)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from qflowui.mirror.models import Execution, Workflow
from tests.test_runs_support import runner, runner_client

__all__ = ["other_viewer", "receiver", "runner", "runner_client"]

SECRET_TOKEN = "TOKENs3cr3tXYZ987"
SECRET_PASSWORD = "pa55w0rdQQ42"


def workflow(name: str = "AWS EC2 compliance", cloud: str = "AWS") -> Workflow:
    return Workflow.objects.create(id=uuid.uuid4(), name=name, cloud=cloud, cloud_providers=[cloud])


def execution(
    wf: Workflow,
    status: str = "Failed",
    *,
    started: datetime | None = None,
    synced: datetime | None = None,
    step: str = "",
    error: str = "",
    region: str = "us-east-1",
) -> Execution:
    from qflowui.mirror import status as st

    now = timezone.now()
    cls = st.status_class(status)
    return Execution.objects.create(
        id=uuid.uuid4(),
        workflow=wf,
        status=status,
        status_class=cls,
        is_terminal=cls in st.TERMINAL_CLASSES,
        started_at=started or now - timedelta(minutes=5),
        cloud=wf.cloud,
        region=region,
        last_synced_at=synced or now,
        failure_node_id="node-1" if step else "",
        failure_step=step,
        failure_message=error,
    )


def resync(execution: Execution, **fields: object) -> None:
    """What a sync pass does to a row it lists again: new fields, last_synced_at now."""
    Execution.objects.filter(pk=execution.pk).update(last_synced_at=timezone.now(), **fields)


@pytest.fixture
def other_viewer(django_user_model, password):
    user = django_user_model.objects.create_user(username="olga.other", password=password)
    user.groups.add(Group.objects.get_or_create(name="Viewers")[0])
    return user


@dataclass
class Receiver:
    """A loopback HTTP server that records what it is sent and answers `status`."""

    port: int = 0
    status: int = 200
    received: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)

    def url(self, *, secret: bool = True, scheme: str = "json") -> str:
        if secret:
            return f"{scheme}://alerts:{SECRET_PASSWORD}@127.0.0.1:{self.port}/hook/{SECRET_TOKEN}"
        return f"{scheme}://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.paths.append(self.path)
            state.auth.append(self.headers.get("Authorization") or "")
            if state.status < 300:
                state.received.append(json.loads(body or b"{}"))
            self.send_response(state.status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if state.status < 300 else b"receiver says no")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
