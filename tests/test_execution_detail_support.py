"""Helpers (no tests here) for the execution-detail tests: picking simulator executions,
counting upstream calls, and a fake QFlow on a loopback server (pytest-httpserver)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response

from qflowui.simulator.config import FAILED, SUCCESS
from qflowui.simulator.dataset import DAY_MS


def upstream_calls(simulator, since: int = 0) -> list[str]:
    """API calls the simulator received since `since`, token fetches left out."""
    return [f"{c.method} {c.path}" for c in simulator.calls[since:] if c.path != "/auth/oidc"]


def finished(simulator, *, status: str | None = None, where: Callable[[Any], bool] | None = None):
    """A finished execution well inside the API's 30-day window."""
    now = simulator.now_ms()
    oldest = simulator.window_start(now) + DAY_MS
    for ex in simulator.dataset().executions:
        if ex.start_ms < oldest or ex.end_ms > now - 60_000 or len(ex.steps) < 2:
            continue
        if status is not None and ex.status != status:
            continue
        if where is not None and not where(ex):
            continue
        return ex
    raise LookupError("no such execution in the simulator's data set")


def successful(simulator, **kw):
    return finished(simulator, status=SUCCESS, **kw)


def failed(simulator, **kw):
    return finished(simulator, status=FAILED, **kw)


def workflow_of(simulator, ex):
    return simulator.dataset().workflow(ex.workflow_id)


# --- a fake QFlow ------------------------------------------------------------------------------

WORKFLOW_ID = "11111111-2222-4333-8444-555555555555"
EXECUTION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
T0 = 1_760_000_000_000


@dataclass
class FakeQflow:
    """Serves one workflow with one execution, steps and payloads over real HTTP."""

    workflow_name: str = "Fake workflow"
    components: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)
    workflow_tags: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def execution_record(self) -> dict[str, Any]:
        record = {
            "id": EXECUTION_ID,
            "execution": EXECUTION_ID,
            "workflow": WORKFLOW_ID,
            "status": "Failed",
            "createdAt": T0,
            "updatedAt": T0 + 60_000,
            "startDate": T0,
            "endDate": T0 + 60_000,
            "source": "PUBLIC_API",
            "executionType": "Simple",
            "tags": ["created_by=0ffaf046-768b-79fc-83f6-aa25be52c2a1"],
            "categories": {"cloud_providers": ["AWS"], "regions": ["us-east-1"]},
            "variables": ["region=us-east-1"],
        }
        record.update(self.execution)
        record["steps"] = self.steps
        return record

    def handler(self, request: Request) -> Response:
        path = request.path
        self.calls.append(f"{request.method} {path}")
        api = "/qflowapi/v1"
        if path == f"{api}/workflows/{WORKFLOW_ID}":
            definition = json.dumps({"variables": [], "components": self.components})
            data = {
                "id": WORKFLOW_ID,
                "workflow": WORKFLOW_ID,
                "name": self.workflow_name,
                "revision": "r1",
                "definition": definition,
                "tags": self.workflow_tags,
            }
            return _json({"data": data})
        if path == f"{api}/executions/{EXECUTION_ID}":
            return _json({"data": self.execution_record()})
        if path == f"{api}/executions/{EXECUTION_ID}/steps":
            return _json({"total": len(self.steps), "items": self.steps})
        match = re.fullmatch(rf"{api}/executions/{EXECUTION_ID}/steps/(.+)/(input|output)", path)
        if match:
            node, kind = match.groups()
            source = self.inputs if kind == "input" else self.outputs
            if node not in source:
                return _json({"status": 404, "message": "no data"}, 404)
            return _json(source[node])
        return _json({"status": 404, "message": f"nothing at {path}"}, 404)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def serve_fake(httpserver, settings, fake: FakeQflow) -> FakeQflow:
    from qflowui.qflow import auth as qflow_auth

    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handler)
    settings.QFLOW_BASE_URL = httpserver.url_for("/").rstrip("/")
    settings.QFLOW_TOKEN = "t"
    settings.QFLOW_CLIENT_ID = ""
    settings.QFLOW_CLIENT_SECRET = ""
    settings.QFLOW_TIMEOUT_SECONDS = 5.0
    qflow_auth.clear_token_cache()
    return fake


def step(node_id: str, node_type: str, status: str, order: int, **extra: Any) -> dict[str, Any]:
    record = {
        "id": f"01JT3585YRG0DHQNS9DNN432{order:02d}",
        "nodeId": node_id,
        "nodeType": node_type,
        "status": status,
        "eventOrder": order,
        "execution": EXECUTION_ID,
        "startDate": T0 + order * 1000,
        "endDate": T0 + order * 1000 + 800,
        "createdAt": T0 + order * 1000,
        "updatedAt": T0 + order * 1000 + 800,
    }
    record.update(extra)
    return record


def component(node_id: str, name: str, kind: str, nxt: Any = None, previous: Any = None) -> dict:
    return {"id": node_id, "name": name, "type": kind, "next": nxt, "previous": previous}
