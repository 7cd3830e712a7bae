"""Memory of a web process serving views of 10 MB step payloads, 8 at once.

Standalone: `python bench/payload_memory.py [--views 8] [--no-worker] [--postgres URL]`.
Prints a markdown table.

What runs, all on loopback, in a throwaway directory (SQLite database, cache, broker; with
`--postgres`, a throwaway database on that server):
- the QFlow simulator, served by its own gunicorn (the dashboard reaches it over HTTP, as it
  would a Qualys gateway); its four big inventory outputs (3.4-11 MB) are what is viewed;
- the dashboard as `make run` serves it: gunicorn (one worker process, 8 threads, the process
  measured), pointed at the simulator (`QFLOW_BASE_URL`), signed-in analysts' sessions;
- a Celery worker (prefork, concurrency 4, as in the Procfile) that fetches payloads for the
  pages, unless `--no-worker` (then each page fetches the payload itself).

Each round starts a fresh dashboard process (and worker). Round 1 forgets every big output
(its `StepPayload` rows deleted), then fires `--views` first views of the 10 MB output
(`.../output/tree`, as htmx asks for it when the panel opens, following the progress polls
until the tree is shown) at the same moment. Round 2 does the same spread over the four big
outputs (two views each). Rounds 3 and 4 start from a stored copy (what every later analyst
gets): 8 step panels with the output inline, then 8 downloads of it.

Measured from /proc/<pid>/status: VmHWM (peak RSS, reset with clear_refs before each round)
and VmRSS once the round is over and the process has been idle 5 s ("settled": what the
process keeps); for the worker, its biggest pool process. The web process's RSS after
start-up and a warm-up (the executions mirrored) is the baseline.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import html
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
BIN = Path(PYTHON).parent
HTMX = {"HX-Request": "true"}
USER, PASSWORD = "bench", "bench-password-123"
DEMO_CLIENT = ("qflowui-demo", "qflowui-demo-secret")
THREADS = 8
WORKER_CONCURRENCY = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def reset_peak(pid: int) -> None:
    """Make VmHWM start again from the current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def first_child(pid: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children(pid)
        if found:
            return found[0]
        time.sleep(0.1)
    raise RuntimeError(f"process {pid} started no child")


def wait_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@dataclass
class Web:
    """The dashboard under measurement: gunicorn's worker process, and the Celery worker."""

    gunicorn: subprocess.Popen
    pid: int
    celery: subprocess.Popen | None

    def pool(self) -> list[int]:
        return children(self.celery.pid) if self.celery else []


class Stack:
    """The simulator and the dashboard, each in its own processes, sharing a throwaway var dir."""

    def __init__(self, var: Path, postgres: str | None, worker: bool) -> None:
        self.var = var
        self.postgres = postgres
        self.worker = worker
        self.database_url = f"sqlite:///{var / 'bench.sqlite3'}"
        if postgres:
            self.database_url = _with_db(postgres, f"qflowui_bench_memory_{os.getpid()}")
        self.sim_port = free_port()
        self.web_port = free_port()
        self.simulator: subprocess.Popen | None = None
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("QFLOW", "DJANGO"))},
            "QFLOWUI_VAR_DIR": str(var),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
            "LOG_LEVEL": "WARNING",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
        self.sim_env = {**base, "QFLOW_SIMULATOR": "true", "QFLOWUI_PORT": str(self.sim_port)}
        self.web_env = {
            **base,
            "QFLOWUI_PORT": str(self.web_port),
            "QFLOW_SIMULATOR": "false",
            "QFLOW_BASE_URL": f"http://127.0.0.1:{self.sim_port}",
            "QFLOW_CLIENT_ID": DEMO_CLIENT[0],
            "QFLOW_CLIENT_SECRET": DEMO_CLIENT[1],
        }

    def manage(self, *args: str, env: dict[str, str]) -> str:
        return subprocess.run(  # noqa: S603 - our own manage.py, fixed arguments
            [PYTHON, str(ROOT / "manage.py"), *args],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.var / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(  # noqa: S603 - programs from our venv, fixed arguments
            args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )

    def gunicorn(self, name: str, port: int, env: dict[str, str]) -> subprocess.Popen:
        args = [str(BIN / "gunicorn"), "qflowui.wsgi", "--bind", f"127.0.0.1:{port}"]
        args += ["--workers", "1", "--threads", str(THREADS), "--timeout", "120"]
        return self.spawn(name, args, env)

    def sql(self, statement: str, *, admin: bool = False) -> None:
        if not self.postgres:
            with sqlite3.connect(self.var / "bench.sqlite3", timeout=30) as db:
                db.execute(statement)
            return
        import psycopg

        url = self.postgres if admin else self.database_url
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(statement)

    def start(self) -> None:
        if self.postgres:
            self.sql(f"create database {self.database_url.rsplit('/', 1)[1]}", admin=True)
        self.manage("migrate", "--noinput", env=self.web_env)
        self.manage("collectstatic", "--noinput", "-v", "0", env=self.web_env)
        create = (
            "from django.contrib.auth import get_user_model;"
            "from django.contrib.auth.models import Group;"
            f"u = get_user_model().objects.create_user({USER!r}, password={PASSWORD!r});"
            "u.groups.add(Group.objects.get(name='Viewers'))"
        )
        self.manage("shell", "--no-imports", "-c", create, env=self.web_env)
        self.simulator = self.gunicorn("simulator", self.sim_port, self.sim_env)
        wait_up(f"http://127.0.0.1:{self.sim_port}/healthz")

    def start_web(self) -> Web:
        celery = None
        if self.worker:
            args = [str(BIN / "celery"), "-A", "qflowui", "worker", "--loglevel=WARNING"]
            args += [f"--concurrency={WORKER_CONCURRENCY}"]
            celery = self.spawn("celery", args, self.web_env)
            self.wait_worker_alive()
        master = self.gunicorn("web", self.web_port, self.web_env)
        wait_up(f"http://127.0.0.1:{self.web_port}/healthz")
        return Web(master, first_child(master.pid), celery)

    def wait_worker_alive(self, timeout: float = 60.0) -> None:
        code = "from qflowui.executions import services; print(services.workers_alive())"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.manage("shell", "--no-imports", "-c", code, env=self.web_env)
            if out.strip().endswith("True"):
                return
            time.sleep(1)
        raise RuntimeError("the Celery worker never said it was alive")

    def stop_web(self, web: Web) -> None:
        for proc in (web.gunicorn, web.celery):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
        for proc in (web.gunicorn, web.celery):
            if proc is not None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        # A stopped worker's word that it lives must not outlast it.
        self.manage("shell", "--no-imports", "-c", _FORGET_WORKER, env=self.web_env)

    def stop(self) -> None:
        if self.simulator is not None:
            self.simulator.send_signal(signal.SIGTERM)
            self.simulator.wait(timeout=30)
        if self.postgres:
            name = self.database_url.rsplit("/", 1)[1]
            self.sql(f"drop database if exists {name} with (force)", admin=True)


_FORGET_WORKER = (
    "from django.core.cache import cache; from qflowui.executions import services as s;"
    "cache.delete(s.worker_alive_key(s.default_queue())) "
    "if hasattr(s, 'worker_alive_key') else None"
)


def _with_db(url: str, name: str) -> str:
    """`url` (a PostgreSQL server URL) naming the database `name` instead."""
    head, _, _ = url.partition("?")
    return head.rsplit("/", 1)[0] + "/" + name


def big_payloads(stack: Stack) -> list[tuple[str, str, int]]:
    """(execution id, node id, bytes) of the simulator's big outputs, smallest first."""
    code = (
        "from qflowui.simulator import control;"
        "print(repr(sorted(control.dataset().big_payloads, key=lambda b: b[2])))"
    )
    out = stack.manage("shell", "--no-imports", "-c", code, env=stack.sim_env)
    return eval(out.strip().splitlines()[-1])  # noqa: S307 - our own repr of a list of tuples


def signed_in(web: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{web}/accounts/login/", timeout=10)
    token = session.cookies["csrftoken"]
    answer = session.post(
        f"{web}/accounts/login/",
        data={"username": USER, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{web}/accounts/login/"},
        timeout=10,
    )
    if "sessionid" not in session.cookies:
        raise RuntimeError(f"login failed: HTTP {answer.status_code}")
    return session


_TREE = re.compile(r'class="jt"|jt-root')
_POLL = re.compile(r'hx-get="([^"]*[?&](?:amp;)?poll=[^"]*)"')


def first_view(session: requests.Session, url: str, timeout: float = 120.0) -> str:
    """The output's first view, following the progress polls until the tree is shown.

    Returns "tree" when the tree was shown, else the HTTP status and the notice shown.
    """
    deadline = time.monotonic() + timeout
    origin = url.split("/executions/")[0]
    while True:
        response = session.get(url, headers=HTMX, timeout=timeout)
        body = response.text
        if response.status_code < 400 and _TREE.search(body):
            return "tree"
        poll = _POLL.search(body)
        if poll is None or response.status_code >= 400 or time.monotonic() > deadline:
            notice = re.search(r'class="notice"[^>]*>([^<]*)', body)
            return f"{response.status_code} {notice.group(1) if notice else ''}".strip()
        url = origin + html.unescape(poll.group(1))
        time.sleep(0.5)


def download(session: requests.Session, url: str) -> str:
    response = session.get(url, timeout=120)
    return f"{response.status_code} ({len(response.content) / 1e6:.1f} MB)"


def panel(session: requests.Session, url: str) -> str:
    """The step panel with the stored output inline, as a later analyst opens it."""
    response = session.get(url, headers=HTMX, timeout=120)
    output = response.text.partition('id="payload-output"')[2]
    return "tree" if response.status_code == 200 and _TREE.search(output) else "no tree"


def _answers(results: list[str]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result] = counts.get(result, 0) + 1
    return "; ".join(f"{n} x {'tree shown' if r == 'tree' else r}" for r, n in counts.items())


@dataclass
class Row:
    label: str
    baseline: int  # KiB
    peak: int
    settled: int
    worker_peak: int | None
    worker_settled: int | None
    wall: float
    answers: str


def measure(views: int, postgres: str | None, worker: bool) -> list[Row]:
    var = Path(tempfile.mkdtemp(prefix="qflowui-bench-memory-"))
    stack = Stack(var, postgres, worker)
    rows = []
    try:
        stack.start()
        payloads = big_payloads(stack)
        web_url = f"http://127.0.0.1:{stack.web_port}"
        sim = f"http://127.0.0.1:{stack.sim_port}"
        # The simulator makes each big output once (lru_cache): not part of what is measured.
        token = requests.post(
            f"{sim}/auth/oidc",
            headers={"clientId": DEMO_CLIENT[0], "clientSecret": DEMO_CLIENT[1]},
            timeout=30,
        ).text.strip()
        for execution_id, node_id, _ in payloads:
            requests.get(
                f"{sim}/qflowapi/v1/executions/{execution_id}/steps/{node_id}/output",
                params={"parseJson": "true"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            ).raise_for_status()
        largest = payloads[-1]
        mb = f"{largest[2] / 1e6:.1f} MB"
        spread = [payloads[i % len(payloads)] for i in range(views)]
        scenarios = [
            # (label, targets, view, what is viewed, starts from a stored copy?)
            (f"first views of one {mb} output", [largest] * views, first_view, "tree", False),
            (
                f"first views spread over the 4 big outputs ({payloads[0][2] / 1e6:.1f}-{mb})",
                spread,
                first_view,
                "tree",
                False,
            ),
            (f"panels with the stored {mb} output", [largest] * views, panel, "panel", True),
            (f"downloads of the stored {mb} output", [largest] * views, download, "json", True),
        ]
        for label, targets, view, kind, stored in scenarios:
            if stored:  # stored by one first view, in processes of their own
                web = stack.start_web()
                first_view(signed_in(web_url), _url(web_url, largest, "tree"))
                stack.stop_web(web)
            web = stack.start_web()
            sessions = [signed_in(web_url) for _ in targets]
            if not stored:
                # Warm-up: the executions mirrored (their pages, which load no payload).
                for target in payloads:
                    sessions[0].get(_url(web_url, target, "page"), timeout=60).raise_for_status()
            pids = [web.pid, *web.pool()]
            baseline = proc_status(web.pid)["VmRSS"]
            for pid in pids:
                reset_peak(pid)
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
                urls = [_url(web_url, target, kind) for target in targets]
                results = list(pool.map(view, sessions, urls))
            wall = time.perf_counter() - started
            peak = proc_status(web.pid)["VmHWM"]
            pool_peaks = [proc_status(pid)["VmHWM"] for pid in web.pool()]
            time.sleep(5)
            settled = proc_status(web.pid)["VmRSS"]
            pool_settled = [proc_status(pid)["VmRSS"] for pid in web.pool()]
            rows.append(
                Row(
                    f"{views} {label}",
                    baseline,
                    peak,
                    settled,
                    max(pool_peaks) if pool_peaks else None,
                    max(pool_settled) if pool_settled else None,
                    wall,
                    _answers(results),
                )
            )
            stack.stop_web(web)
            stack.sql("delete from mirror_steppayload")
    finally:
        stack.stop()
        shutil.rmtree(var, ignore_errors=True)
    return rows


def _url(web: str, target: tuple[str, str, int], kind: str) -> str:
    execution_id, node_id, _ = target
    base = f"{web}/executions/{execution_id}/steps/{node_id}/"
    urls = {
        "tree": f"{base}output/tree",
        "panel": base,
        "json": f"{base}output.json",
        "page": f"{web}/executions/{execution_id}/",
    }
    return urls[kind]


def describe(postgres: str | None) -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qflowui.settings")
    var = Path(tempfile.mkdtemp(prefix="qflowui-bench-machine-"))
    os.environ["QFLOWUI_VAR_DIR"] = str(var)
    os.environ["DATABASE_URL"] = postgres or f"sqlite:///{var / 'machine.sqlite3'}"
    import django

    django.setup()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import machine_description

    try:
        return machine_description()
    finally:
        shutil.rmtree(var, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="run no Celery worker: each page fetches the payload itself",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="a PostgreSQL server (postgres://user@host:port/db) where a throwaway database "
        "is created and dropped; default: SQLite in a temporary directory",
    )
    args = parser.parse_args()
    rows = measure(args.views, args.postgres, worker=not args.no_worker)
    print(f"Machine: {describe(args.postgres)}; load average {os.getloadavg()[0]:.2f}")
    print()
    print(
        "| at once | web baseline | web peak | web settled | worker peak | worker settled "
        "| wall | answers |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")

    def mb(kib: int | None) -> str:
        return "—" if kib is None else f"{kib / 1024:,.0f} MB"

    for r in rows:
        print(
            f"| {r.label} | {mb(r.baseline)} | {mb(r.peak)} | {mb(r.settled)} "
            f"| {mb(r.worker_peak)} | {mb(r.worker_settled)} | {r.wall:.1f} s | {r.answers} |"
        )


if __name__ == "__main__":
    main()
