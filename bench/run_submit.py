"""The run form's POST: answer time with the broker up and down, and POST -> `submitted`.

Budget (DESIGN §6): the POST answers in <= 100 ms whether the broker is up or down. Runs
against a throwaway test database (PostgreSQL with DATABASE_URL, else the SQLite test file),
Redis at REDIS_URL (default redis://127.0.0.1:6379/0), the simulator served by an in-process
live server, and one real Celery worker process for the end-to-end figure.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/qflowui .venv/bin/python bench/run_submit.py

Prints one markdown table (recorded in docs/benchmarks.md, "## Run submit").
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qflowui.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.testcases import LiveServerThread, _StaticFilesHandler  # noqa: E402
from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: E402
from machine import machine_description  # noqa: E402

from qflowui.celery import app  # noqa: E402
from qflowui.mirror.models import Workflow  # noqa: E402
from qflowui.qflow import auth as qflow_auth  # noqa: E402
from qflowui.runs.models import Run, RunState  # noqa: E402
from qflowui.simulator import control  # noqa: E402

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
DEAD_BROKER = "redis://127.0.0.1:9/0"
WARMUP = 5
SAMPLES = 60
END_TO_END = 20


def main() -> None:
    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    # A database of its own: never the one a concurrent pytest run is using.
    test = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        test["NAME"] = str(Path(tempfile.gettempdir()) / f"qflowui-bench-{os.getpid()}.sqlite3")
    else:
        test["NAME"] = f"test_qflowui_bench_{os.getpid()}"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    server = LiveServerThread("127.0.0.1", _StaticFilesHandler, connections_override={})
    try:
        with override_settings(
            STORAGES={
                **settings.STORAGES,
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            },
            DEBUG=False,
            QFLOW_SIMULATOR=True,
            QFLOW_TOKEN="",
            QFLOW_CLIENT_ID=settings.QFLOW_DEMO_CLIENT_ID,
            QFLOW_CLIENT_SECRET=settings.QFLOW_DEMO_CLIENT_SECRET,
        ):
            server.daemon = True
            server.start()
            server.is_ready.wait()
            base_url = f"http://127.0.0.1:{server.port}"
            with override_settings(QFLOW_BASE_URL=base_url):
                qflow_auth.clear_token_cache()
                control.reset()
                control.configure(run_status="success", run_min_seconds=30, run_max_seconds=60)
                results = run(base_url)
                described = machine()
    finally:
        server.terminate()
        connection.creation.destroy_test_db(old_name, verbosity=0, keepdb=False)
        teardown_test_environment()
    print(render(results, described))


def run(base_url: str) -> list[tuple[str, float, float, str]]:
    from qflowui.mirror.sync import mirror_sync

    assert mirror_sync(workflow_ids=["none"]).ok
    workflow = Workflow.objects.filter(cloud="AWS").order_by("name").first()
    user = get_user_model().objects.create_superuser(username="bench", password=None)
    client = Client()
    client.force_login(user)
    results = []
    queue = f"bench-{uuid.uuid4().hex[:8]}"

    for name, url in (
        ("broker up (Redis), nothing consuming", REDIS_URL),
        ("broker down (Redis port refused)", DEAD_BROKER),
        ("broker up (filesystem://, the embedded default)", "filesystem://"),
    ):
        with broker(url, queue):
            times = [post(client, workflow)[1] for _ in range(WARMUP + SAMPLES)][WARMUP:]
        cuts = statistics.quantiles(times, n=20, method="inclusive")
        results.append((f"POST answer, {name}", statistics.median(times), cuts[18], "ms"))
        print(
            f"{name:<50} p50 {statistics.median(times):6.1f} ms  p95 {cuts[18]:6.1f} ms",
            file=sys.stderr,
        )
    queued = Run.objects.filter(state=RunState.QUEUED)
    down = queued.filter(enqueued_at__isnull=True).count()
    print(f"runs left queued by the broker-down phase: {down} (none lost)", file=sys.stderr)
    delete_queue(queue)
    Run.objects.all().delete()

    worker_queue = f"bench-{uuid.uuid4().hex[:8]}"
    worker = start_worker(base_url, worker_queue)
    try:
        with broker(REDIS_URL, worker_queue):
            for _ in range(3):  # warm the worker: imports, token, connections
                wait_submitted(post(client, workflow)[0])
            spans = []
            for _ in range(END_TO_END):
                began = time.perf_counter()
                run_id, _ = post(client, workflow)
                wait_submitted(run_id)
                spans.append((time.perf_counter() - began) * 1000)
        cuts = statistics.quantiles(spans, n=20, method="inclusive")
        results.append(
            ("POST -> submitted, one live worker (Redis)", statistics.median(spans), cuts[18], "ms")
        )
        print(
            f"end to end p50 {statistics.median(spans):.0f} ms p95 {cuts[18]:.0f} ms",
            file=sys.stderr,
        )
    finally:
        worker.terminate()
        worker.wait(15)
        delete_queue(worker_queue)
    return results


class broker:
    """Send this process's tasks to `url` on `queue` (Celery reads the env variable first)."""

    def __init__(self, url: str, queue: str) -> None:
        self.url, self.queue = url, queue

    def __enter__(self) -> None:
        self.saved = (
            os.environ.get("CELERY_BROKER_URL"),
            app.conf.broker_url,
            app.conf.task_default_queue,
            app.conf.broker_transport_options,
        )
        os.environ["CELERY_BROKER_URL"] = self.url
        app.conf.broker_url = self.url
        app.conf.task_default_queue = self.queue
        if self.url.startswith("filesystem://"):
            app.conf.broker_transport_options = filesystem_options()
        # The broker-down phase logs one warning per POST, as it should; not here.
        logging.getLogger("qflowui.runs.services").setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        env, url, queue, options = self.saved
        if env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = env
        app.conf.broker_url = url
        app.conf.task_default_queue = queue
        app.conf.broker_transport_options = options
        logging.getLogger("qflowui.runs.services").setLevel(logging.NOTSET)


def filesystem_options() -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="qflowui-bench-broker-"))
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(folder),
        "store_processed": False,
    }


def post(client: Client, workflow: Workflow) -> tuple[int, float]:
    data = {
        "workflow": str(workflow.id),
        "input": '{"buckets": ["bench-bucket"]}',
        "region": "eu-west-1",
        "idempotency_key": str(uuid.uuid4()),
        "action": "confirm",
    }
    began = time.perf_counter()
    response = client.post("/runs/new/", data)
    took = (time.perf_counter() - began) * 1000
    assert response.status_code == 302, response.status_code
    return int(response["Location"].rstrip("/").rsplit("/", 1)[1]), took


def wait_submitted(run_id: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = Run.objects.values_list("state", flat=True).get(pk=run_id)
        if state == RunState.SUBMITTED:
            return
        if state == RunState.FAILED:
            raise SystemExit(f"run {run_id} failed: {Run.objects.get(pk=run_id).error}")
        time.sleep(0.005)
    raise SystemExit(f"run {run_id} not submitted after {timeout:.0f} s")


def database_url() -> str:
    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    auth = conf.get("USER") or ""
    if conf.get("PASSWORD"):
        auth += f":{conf['PASSWORD']}"
    host = f"{conf.get('HOST') or '127.0.0.1'}:{conf.get('PORT') or 5432}"
    return f"postgres://{auth + '@' if auth else ''}{host}/{conf['NAME']}"


def start_worker(base_url: str, queue: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "QFLOW_BASE_URL": base_url,
        "QFLOW_SIMULATOR": "false",
        "QFLOW_TOKEN": "",
        "QFLOW_CLIENT_ID": settings.QFLOW_DEMO_CLIENT_ID,
        "QFLOW_CLIENT_SECRET": settings.QFLOW_DEMO_CLIENT_SECRET,
        "LOG_LEVEL": "WARNING",
    }
    log = tempfile.NamedTemporaryFile(prefix="qflowui-bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "celery", "-A", "qflowui", "worker", "--pool=prefork",
         "--concurrency=1", "--without-mingle", "--without-gossip", "-Q", queue,
         "-n", f"{queue}@%h", "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 40
    while b"ready." not in Path(log.name).read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start:\n{Path(log.name).read_text()}")
        time.sleep(0.1)
    return worker


def delete_queue(queue: str) -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).delete(queue)


def machine() -> str:
    return f"{machine_description()}, Redis at {REDIS_URL.split('@')[-1]}"


def render(results: list[tuple[str, float, float, str]], described: str) -> str:
    lines = [
        f"Machine: {described}. {SAMPLES} POSTs per broker case (after {WARMUP} warm-up), "
        f"{END_TO_END} runs end to end.",
        "",
        "| measurement | p50 | p95 |",
        "|---|---:|---:|",
    ]
    for name, p50, p95, unit in results:
        lines.append(f"| {name} | {p50:.1f} {unit} | {p95:.1f} {unit} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
