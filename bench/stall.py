"""A stalled QFlow under real gunicorn: what the list page, /healthz and payload views cost.

The issue's scenario: QFlow accepts requests for step payloads and answers after 60 s; ten
analysts open step payloads at once; meanwhile someone opens the executions list and a
probe asks /healthz. Also: QFlow's token endpoint stalled while eight pages need a token.

Everything runs for real: gunicorn as the Procfile starts it (several workers, 8 threads
each), a throwaway SQLite database and file cache in a temporary QFLOWUI_VAR_DIR (or a
throwaway PostgreSQL database on the server DATABASE_URL names), a loopback fake QFlow in
this process that stalls, and, in the "with a worker" case, a Celery worker on a filesystem
broker in the same temporary directory.

    .venv/bin/python bench/stall.py                     # this checkout
    .venv/bin/python bench/stall.py --tree /tmp/before  # another checkout, e.g. the commit
        # before the fix (git archive 8048cf0 | tar -x -C /tmp/before), with --workers 1

Prints a markdown table (recorded in docs/benchmarks.md, "## A stalled QFlow").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
STALL_SECONDS = 60.0
PAYLOAD_VIEWS = 10
PROBES = 5
WORKFLOW_ID = "11111111-2222-4333-8444-555555555555"
EXECUTION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
NODES = [f"node-{i}" for i in range(1, PAYLOAD_VIEWS // 2 + 1)]
T0 = 1_760_000_000_000
PASSWORD = "bench-password-0123"  # noqa: S105 - a throwaway database's user


# --- a QFlow that stalls ----------------------------------------------------------------------


class FakeQflow(ThreadingHTTPServer):
    daemon_threads = True
    stall_payloads = False
    stall_token = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.release = threading.Event()
        self.arrived: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeQflow

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.server.arrived.append(f"POST {self.path}")
        if self.path.startswith("/auth/oidc"):
            if self.server.stall_token:
                self.server.release.wait(STALL_SECONDS)
            self._send(200, "token-from-the-fake-gateway-0123456789", "text/plain")
        else:
            self._send(404, {"message": "no"})

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.server.arrived.append(f"GET {path}")
        api = "/qflowapi/v1"
        if re.search(r"/steps/[^/]+/(input|output)$", path):
            if self.server.stall_payloads:
                self.server.release.wait(STALL_SECONDS)
            self._send(200, {"node": path.rsplit("/", 2)[1], "items": list(range(50))})
        elif path == f"{api}/workflows/{WORKFLOW_ID}":
            components = [{"id": n, "name": n, "type": "Action", "next": None} for n in NODES]
            definition = json.dumps({"variables": [], "components": components})
            self._send(200, {"data": {"id": WORKFLOW_ID, "name": "Bench", "revision": "r1",
                                      "definition": definition}})  # fmt: skip
        elif path.startswith(f"{api}/executions/"):
            execution_id = path.rsplit("/", 1)[1]
            self._send(200, {"data": execution(execution_id)})
        else:
            self._send(404, {"message": f"nothing at {path}"})

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up long ago


def execution(execution_id: str) -> dict[str, Any]:
    steps = [
        {"id": f"01JT3585YRG0DHQNS9DNN432{i:02d}", "nodeId": node, "nodeType": "Action",
         "status": "Success", "eventOrder": i, "startDate": T0 + i * 1000,
         "endDate": T0 + i * 1000 + 500}
        for i, node in enumerate(NODES, 1)
    ]  # fmt: skip
    return {"id": execution_id, "workflow": WORKFLOW_ID, "status": "Success", "createdAt": T0,
            "updatedAt": T0 + 60_000, "startDate": T0, "endDate": T0 + 60_000,
            "source": "PUBLIC_API", "steps": steps}  # fmt: skip


# --- the app under gunicorn -------------------------------------------------------------------

SEED = f"""
import django
django.setup()
from django.contrib.auth.models import Group, User
from qflowui.executions import services
user = User.objects.create_user("bench", password="{PASSWORD}")
user.groups.add(Group.objects.get_or_create(name="Viewers")[0])
services.execution_load("{EXECUTION_ID}")
from qflowui.mirror.models import Execution
base = Execution.objects.get(pk="{EXECUTION_ID}")
import uuid, datetime
rows = []
for i in range(500):
    row = Execution.objects.get(pk=base.pk)
    row.pk = uuid.uuid4()
    row.started_at = base.started_at - datetime.timedelta(minutes=i)
    rows.append(row)
Execution.objects.bulk_create(rows)
"""


def run(argv: list[str], **options: Any) -> None:
    subprocess.run(argv, check=True, **options)  # noqa: S603 - our interpreter, psql


def psql(url: str, sql: str) -> None:
    run([shutil.which("psql") or "psql", url, "-qc", sql])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class App:
    """gunicorn (and optionally a Celery worker) of the checkout `tree`, on a fresh database."""

    def __init__(self, tree: Path, workers: int, qflow_url: str, *, sign_in: bool) -> None:
        self.tree, self.workers = tree, workers
        self.var = Path(tempfile.mkdtemp(prefix="qflowui-bench-stall-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.pg_name = ""
        self.env = {
            **os.environ,
            "QFLOWUI_VAR_DIR": str(self.var),
            "QFLOW_BASE_URL": qflow_url,
            "QFLOW_SIMULATOR": "false",
            "QFLOW_TOKEN": "" if sign_in else "bench-fixed-token",
            "QFLOW_CLIENT_ID": "bench-client" if sign_in else "",
            "QFLOW_CLIENT_SECRET": "bench-secret" if sign_in else "",
            "QFLOW_SYNC_ON_START": "false",
            # Redis for the cache (and the broker) when REDIS_URL is set, else files in `var`.
            "REDIS_URL": os.environ.get("REDIS_URL", ""),
            "CELERY_BROKER_URL": os.environ.get("REDIS_URL") or "filesystem://",
            "CELERY_TASK_DEFAULT_QUEUE": f"bench-stall-{os.getpid()}",
            "QFLOWUI_CACHE_PREFIX": f"bench-stall-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(tree),
            "DJANGO_SETTINGS_MODULE": "qflowui.settings",
        }
        database = os.environ.get("DATABASE_URL", "")
        if database.startswith("postgres"):
            self.pg_name = f"qflowui_bench_stall_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            server = database.rsplit("/", 1)[0]
            psql(f"{server}/postgres", f"create database {self.pg_name}")
            self.env["DATABASE_URL"] = f"{server}/{self.pg_name}"
            self.pg_server = server
        else:
            self.env["DATABASE_URL"] = ""

    def python(self, *args: str) -> None:
        run([sys.executable, *args], cwd=self.tree, env=self.env, stdout=subprocess.DEVNULL)

    def start(self, *, celery_worker: bool) -> None:
        self.python("manage.py", "migrate", "--noinput", "-v", "0")
        self.python("manage.py", "collectstatic", "--noinput", "-v", "0")
        self.python("-c", SEED)
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        # As the Procfile runs it.
        self.spawn([gunicorn, "qflowui.wsgi", "--bind", f"127.0.0.1:{self.port}",
                    "--workers", str(self.workers), "--threads", "8",
                    "--timeout", "60"])  # fmt: skip
        if celery_worker:
            self.spawn([sys.executable, "-m", "celery", "-A", "qflowui", "worker",
                        "--concurrency=4", "--loglevel=WARNING", "--without-mingle",
                        "--without-gossip"])  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start")
            time.sleep(0.2)
        if celery_worker:
            time.sleep(8)  # the worker's first heartbeat reaches the cache

    def spawn(self, argv: list[str]) -> None:
        log = (self.var / f"{Path(argv[0]).name}-{len(self.processes)}.log").open("wb")
        self.processes.append(
            subprocess.Popen(argv, cwd=self.tree, env=self.env, stdout=log, stderr=log)  # noqa: S603
        )

    def session(self) -> requests.Session:
        session = requests.Session()
        login = f"{self.url}/accounts/login/"
        page = session.get(login, timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = session.post(
            login,
            {"username": "bench", "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": login},
            timeout=30,
        )
        assert answer.status_code == 200 and "/accounts/login/" not in answer.url, answer.url
        return session

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.var, ignore_errors=True)
        if self.pg_name:
            psql(f"{self.pg_server}/postgres", f"drop database if exists {self.pg_name}")


# --- the measurements -------------------------------------------------------------------------


def timed(call: Any) -> tuple[float, Any]:
    started = time.monotonic()
    try:
        result = call()
    except requests.RequestException as exc:
        result = exc
    return time.monotonic() - started, result


def warm_up(app: App, cookies: dict[str, str]) -> None:
    """Every gunicorn worker past its first requests (imports, templates, connections)."""
    urls = [f"{app.url}/executions/?range=all", f"{app.url}/executions/{EXECUTION_ID}/"] * 20
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda url: requests.get(url, cookies=cookies, timeout=30), urls))


def payload_stall(app: App, qflow: FakeQflow) -> dict[str, Any]:
    """Ten payload views at once on a QFlow that stalls them; list and /healthz meanwhile."""
    session = app.session()
    cookies = session.cookies.get_dict()
    warm_up(app, cookies)
    qflow.stall_payloads = True
    qflow.arrived.clear()
    urls = [f"{app.url}/executions/{EXECUTION_ID}/steps/{node}/{kind}/tree"
            for node in NODES for kind in ("input", "output")]  # fmt: skip

    def view(url: str) -> tuple[float, Any]:
        return timed(lambda: requests.get(url, cookies=cookies, headers={"HX-Request": "true"},
                                          timeout=STALL_SECONDS + 30))  # fmt: skip

    def probe(url: str, **options: Any) -> list[float]:
        """PROBES requests one after another, as a user clicking or a prober polling."""
        return [timed(lambda: requests.get(url, timeout=2 * STALL_SECONDS, **options))[0]
                for _ in range(PROBES)]  # fmt: skip

    with ThreadPoolExecutor(PAYLOAD_VIEWS + 2) as pool:
        views = [pool.submit(view, url) for url in urls]
        time.sleep(0.5)  # the ten views are in (with a worker: answered and polling)
        lists = pool.submit(probe, f"{app.url}/executions/?range=all", cookies=cookies)
        probes = pool.submit(probe, f"{app.url}/healthz")
        results = [future.result() for future in views]
        lists_took, probes_took = lists.result(), probes.result()
    qflow.stall_payloads = False
    fetching = sum(
        1 for _, r in results if isinstance(r, requests.Response) and "Fetching the" in r.text
    )
    return {
        "list": lists_took,
        "healthz": probes_took,
        "payload": [t for t, _ in results],
        "payload_fetching": fetching,
    }


def token_stall(app: App, qflow: FakeQflow) -> dict[str, Any]:
    """Eight detail pages of executions not mirrored yet, the token endpoint stalled."""
    session = app.session()
    cookies = session.cookies.get_dict()
    warm_up(app, cookies)
    qflow.stall_token = True
    qflow.arrived.clear()
    ids = [f"{EXECUTION_ID[:-2]}{i:02d}" for i in range(8)]

    def page(execution_id: str) -> tuple[float, Any]:
        return timed(lambda: requests.get(f"{app.url}/executions/{execution_id}/", cookies=cookies,
                                          timeout=10 * STALL_SECONDS))  # fmt: skip

    with ThreadPoolExecutor(len(ids)) as pool:
        results = list(pool.map(page, ids))
    qflow.stall_token = False
    return {
        "pages": [t for t, _ in results],
        "token_requests": sum(1 for a in qflow.arrived if a.startswith("POST /auth/oidc")),
    }


def scenario(tree: Path, workers: int, *, celery_worker: bool, sign_in: bool, what: Any) -> dict:
    qflow = FakeQflow()
    threading.Thread(target=qflow.serve_forever, daemon=True).start()
    app = App(tree, workers, qflow.url, sign_in=sign_in)
    try:
        app.start(celery_worker=celery_worker)
        return what(app, qflow)
    finally:
        qflow.release.set()
        app.stop()
        qflow.shutdown()


def fmt(values: list[float]) -> str:
    """The worst (what the first user waiting got) and the median."""
    return f"{max(values):.2f} s (median {statistics.median(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to run")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    parser.add_argument("--label", default="")
    parser.add_argument("--no-worker-case", action="store_true")
    args = parser.parse_args()
    label = args.label or ("this checkout" if args.tree == ROOT else str(args.tree))
    cases = [("no Celery worker", False)]
    if not args.no_worker_case:
        cases.append(("a Celery worker", True))
    rows = []
    for name, celery_worker in cases:
        print(f"payload stall, {name} ...", file=sys.stderr)
        got = scenario(args.tree, args.workers, celery_worker=celery_worker, sign_in=False,
                       what=payload_stall)  # fmt: skip
        rows.append(
            f"| {label}, {args.workers} gunicorn worker(s) x 8 threads, {name} "
            f"| {fmt(got['list'])} | {fmt(got['healthz'])} | {fmt(got['payload'])} "
            f"| {got['payload_fetching']} of {PAYLOAD_VIEWS} |"
        )
        print(rows[-1], file=sys.stderr)
    print("token stall ...", file=sys.stderr)
    token = scenario(args.tree, args.workers, celery_worker=False, sign_in=True, what=token_stall)
    engine = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite"
    shared = "Redis" if os.environ.get("REDIS_URL") else "files in var/cache"
    print(f"machine: {os.cpu_count()} CPUs, {engine}, cache: {shared}")
    print()
    print("| run | list page, worst of 5 | /healthz, worst of 5 | payload view answer, worst of 10 "
          "| answered at once with progress |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    print("| run | detail page with the token endpoint stalled, worst of 8 | token requests |")
    print("|---|---:|---:|")
    print(f"| {label}, {args.workers} worker(s) | {fmt(token['pages'])} "
          f"| {token['token_requests']} |")  # fmt: skip


if __name__ == "__main__":
    main()
