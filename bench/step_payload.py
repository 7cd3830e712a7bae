"""Step payload views: server time and bytes sent for 100 KB, 1 MB and 10 MB outputs.

Standalone: `python bench/step_payload.py [--runs N]` (uses a throwaway test database and a
loopback fake QFlow serving realistic inventory payloads). Prints a markdown table: median
and p95 server time over the runs, bytes sent, and the median's ratio to a bare stdlib
`json.loads` of the same payload's bytes (measured in the same process, same runs).

Rows per size:
- cold first view: the panel fragment plus the output's first view, which fetches the
  payload from QFlow, masks it, stores it and renders it (what the very first analyst pays);
- cached first view: the panel fragment with the payload inline from the mirror (every
  later analyst), with the in-process payload memos cleared;
- subtree: one item of `collection` fetched by path;
- search: a search of the whole payload on the server (no match: first with the memos
  cleared, then warm).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qflowui.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from qflowui.executions import services  # noqa: E402
from qflowui.mirror.models import Execution, Step, StepPayload, Workflow  # noqa: E402
from qflowui.qflow import auth  # noqa: E402
from qflowui.simulator.payloads import big_inventory  # noqa: E402

SIZES = {"100 KB": 100_000, "1 MB": 1_000_000, "10 MB": 10_500_000}
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 9
COLD_RUNS = max(3, RUNS // 2)
HTMX = {"HTTP_HX_REQUEST": "true"}
NODE = "node-0badcafe-resource"


class FakeQflow(BaseHTTPRequestHandler):
    bodies: dict[str, bytes] = {}

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        body = self.bodies.get(path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        body = body if body is not None else b'{"message": "not found"}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _timed(client: Client, url: str, **headers: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(url, **headers)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, (url, response.status_code)
    return elapsed, len(response.content)


def _stats(samples: list[tuple[float, int]]) -> tuple[float, float, int]:
    """Median and p95 (nearest rank) of the times, and the bytes of the last answer."""
    times = sorted(s[0] for s in samples)
    p95 = times[min(len(times) - 1, max(0, round(0.95 * len(times) + 0.5) - 1))]
    return statistics.median(times), p95, samples[-1][1]


def _bare_loads(data: bytes) -> float:
    """Median seconds of a bare stdlib json.loads of `data` (the yardstick of the issue)."""
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        json.loads(data)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeQflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.QFLOW_BASE_URL = f"http://127.0.0.1:{server.server_port}"
    settings.QFLOW_TOKEN = "bench"  # noqa: S105 - the loopback fake accepts anything
    settings.QFLOW_CLIENT_ID = ""
    auth.clear_token_cache()
    try:
        rows = run()
    finally:
        server.shutdown()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    print(f"runs: {RUNS} ({COLD_RUNS} cold)")
    print("| payload | view | median | p95 | bytes sent | median / json.loads |")
    print("|---|---|---:|---:|---:|---:|")
    for size, view, (median, p95, sent), bare in rows:
        print(
            f"| {size} | {view} | {median * 1000:,.0f} ms | {p95 * 1000:,.0f} ms "
            f"| {sent / 1024:,.1f} KB | {median / bare:.2f} |"
        )
    for size, bare in BARE.items():
        print(f"bare json.loads of the {size} output: {bare * 1000:,.0f} ms (median)")


BARE: dict[str, float] = {}


def run() -> list[tuple[str, str, tuple[float, float, int], float]]:
    user = get_user_model().objects.create_user("bench", password="bench-password-123")  # noqa: S106
    # Data pages need the Viewers group (or Runners, or staff): the analyst this bench measures.
    user.groups.add(Group.objects.get_or_create(name="Viewers")[0])
    client = Client()
    client.force_login(user)
    now = timezone.now()
    workflow = Workflow.objects.create(
        id="9b1e3c1a-0000-4000-8000-000000000001",
        name="Bench inventory",
        definition={
            "components": [
                {"id": "trigger", "name": "Trigger", "type": "trigger", "next": NODE},
                {"id": NODE, "name": "Fetch inventory", "type": "resource", "next": None},
            ]
        },
    )
    rows = []
    for index, (label, size) in enumerate(SIZES.items()):
        execution_id = f"9b1e3c1a-0000-4000-8000-0000000001{index:02d}"
        execution = Execution.objects.create(
            id=execution_id,
            workflow=workflow,
            status="Success",
            status_class="success",
            is_terminal=True,
            started_at=now - timedelta(minutes=5),
            ended_at=now - timedelta(minutes=4),
            last_synced_at=now - timedelta(minutes=3),
            steps_synced_at=now - timedelta(minutes=3),
        )
        Step.objects.create(
            execution=execution,
            node_id=NODE,
            node_type="resource",
            status="Success",
            status_class="success",
            event_order=2,
            started_at=now - timedelta(minutes=5),
            ended_at=now - timedelta(minutes=4),
            last_synced_at=now,
        )
        output = big_inventory(
            f"bench:{label}", "123456789012", "us-east-1", 1_760_000_000_000, size
        )
        api = f"/qflowapi/v1/executions/{execution_id}/steps/{NODE}"
        FakeQflow.bodies[f"{api}/output"] = output.encode()
        FakeQflow.bodies[f"{api}/input"] = json.dumps({"method": "getResources"}).encode()
        base = f"/executions/{execution_id}/steps/{NODE}/"
        shown = (
            f"{len(output) / 1_000_000:.1f} MB"
            if size >= 1_000_000
            else f"{len(output) // 1000} KB"
        )

        bare = BARE[shown] = _bare_loads(FakeQflow.bodies[f"{api}/output"])

        def row(view: str, samples: list[tuple[float, int]]) -> None:
            rows.append((shown, view, _stats(samples), bare))  # noqa: B023 - used at once

        cold = []
        for _ in range(COLD_RUNS):
            StepPayload.objects.filter(execution=execution).delete()
            services.memo_clear()
            cache.clear()
            panel = _timed(client, base, **HTMX)
            tree_in = _timed(client, base + "input/tree", **HTMX)
            tree_out = _timed(client, base + "output/tree", **HTMX)
            cold.append((panel[0] + tree_in[0] + tree_out[0], panel[1] + tree_in[1] + tree_out[1]))
        row("cold first view (fetch, mask, store, render)", cold)

        cached = []
        for _ in range(RUNS):
            services.memo_clear()
            cached.append(_timed(client, base, **HTMX))
        row("cached first view (panel with both trees)", cached)

        subtree = [
            _timed(client, base + "output/tree?path=/collection/50", **HTMX) for _ in range(RUNS)
        ]
        row("subtree by path (memo warm)", subtree)
        subtree_cold = []
        for _ in range(RUNS):
            services.memo_clear()
            subtree_cold.append(_timed(client, base + "output/tree?path=/collection/50", **HTMX))
        row("subtree by path (memo cold)", subtree_cold)
        hits = [_timed(client, base + "output/tree?q=NON_COMPLIANT", **HTMX) for _ in range(RUNS)]
        row("search, first 200 matches (memo warm)", hits)
        misses_cold = []
        for _ in range(RUNS):
            services.memo_clear()
            misses_cold.append(_timed(client, base + "output/tree?q=no-such-text", **HTMX))
        row("search, no match: whole payload (memos cold)", misses_cold)
        misses = [_timed(client, base + "output/tree?q=no-such-text", **HTMX) for _ in range(RUNS)]
        row("search, no match: whole payload (memo warm)", misses)
    return rows


if __name__ == "__main__":
    main()
