"""20 concurrent analysts against the production setup: latency and errors per page kind.

Standalone: `python bench/load.py --postgres URL --redis URL [--users 20] [--seconds 60]
[--think S] [--workers N] [--threads N]`. Prints a markdown table.

What runs, all on loopback (a throwaway directory, a throwaway database on the PostgreSQL
server `--postgres` names; `--redis` must name a Redis database of its own: it is flushed):
- the QFlow simulator, in its own gunicorn, as the upstream;
- the dashboard as the Procfile starts it: its `web:` line (gunicorn, `WEB_CONCURRENCY`
  workers, default 2 x CPUs + 1, 8 threads; `--workers`/`--threads` override) and its
  `worker:` line (Celery), with PostgreSQL, Redis as cache and broker, `DEBUG` off;
- a mirror filled by one `qflow_sync` pass against the simulator.

Then `--users` analysts, each a thread with its own signed-in `requests.Session`, browse for
`--seconds`: each picks a page kind (list 40%, detail 30%, step 30%) and a page of that
kind at random, and asks for it `--think` seconds (on average; uniform over 0.5-1.5 times
that) after the previous answer came; `--think 0` asks at once (20 users then keep every
core busy: what is measured is throughput, with 20 requests always queued). Pages: the
executions list (the default view and a few filters), detail pages of mirrored
executions, step pages (`/executions/<id>/steps/<node>/`, the full page with both
payloads). Before the measurement every page is asked
for once (warm-up: payloads fetched and stored, caches filled), so what is measured is
analysts browsing a mirror, not first fetches from QFlow.

An error is any answer other than 200, or no answer within 30 s. Latency is the client's
wall time per request (loopback HTTP + server time), nearest-rank percentiles.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from payload_memory import (
    BIN,
    DEMO_CLIENT,
    PASSWORD,
    PYTHON,
    ROOT,
    USER,
    _with_db,
    describe,
    free_port,
    signed_in,
    wait_up,
)

KINDS = {"list": 0.4, "detail": 0.3, "step": 0.3}
LIST_FILTERS = ["", "?status=failed", "?range=24h", "?range=30d", "?status=success&range=7d"]


def procfile_line(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.partition(":")[2].strip()
    raise RuntimeError(f"no {name}: line in the Procfile")


class Stack:
    def __init__(
        self, var: Path, postgres: str, redis: str, workers: int | None, threads: int | None
    ):
        self.var = var
        self.postgres = postgres
        self.database_url = _with_db(postgres, f"qflowui_bench_load_{os.getpid()}")
        self.redis = redis
        self.sim_port, self.web_port = free_port(), free_port()
        self.procs: list[subprocess.Popen] = []
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("QFLOW", "DJANGO"))},
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "QFLOWUI_VAR_DIR": str(var),
            "DATABASE_URL": self.database_url,
            "LOG_LEVEL": "WARNING",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_DEBUG": "false",
        }
        self.sim_env = {
            **base,
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
            "QFLOW_SIMULATOR": "true",
            "QFLOWUI_PORT": str(self.sim_port),
        }
        self.web_env = {
            **base,
            "REDIS_URL": redis,
            "QFLOWUI_PORT": str(self.web_port),
            "QFLOW_SIMULATOR": "false",
            "QFLOW_BASE_URL": f"http://127.0.0.1:{self.sim_port}",
            "QFLOW_CLIENT_ID": DEMO_CLIENT[0],
            "QFLOW_CLIENT_SECRET": DEMO_CLIENT[1],
        }
        if workers is not None:
            self.web_env["WEB_CONCURRENCY"] = str(workers)
        self.web_command = procfile_line("web")
        if threads is not None:
            self.web_command = re.sub(r"--threads \d+", f"--threads {threads}", self.web_command)

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
        """A process group of its own (the Procfile's lines run through sh, as a Procfile
        runner does), so that stopping it stops its children."""
        log = open(self.var / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(  # noqa: S603 - the Procfile's own lines, our venv
            args,
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        import psycopg
        import redis as redis_lib

        redis_lib.Redis.from_url(self.redis).flushdb()
        with psycopg.connect(self.postgres, autocommit=True) as db:
            db.execute(f"create database {self.database_url.rsplit('/', 1)[1]}")
        self.manage("migrate", "--noinput", env=self.web_env)
        self.manage("collectstatic", "--noinput", "-v", "0", env=self.web_env)
        create = (
            "from django.contrib.auth import get_user_model;"
            "from django.contrib.auth.models import Group;"
            f"u = get_user_model().objects.create_user({USER!r}, password={PASSWORD!r});"
            "u.groups.add(Group.objects.get(name='Viewers'))"
        )
        self.manage("shell", "--no-imports", "-c", create, env=self.web_env)
        sim = [str(BIN / "gunicorn"), "qflowui.wsgi", "--bind", f"127.0.0.1:{self.sim_port}"]
        self.spawn("simulator", [*sim, "--workers", "2", "--threads", "8"], self.sim_env)
        wait_up(f"http://127.0.0.1:{self.sim_port}/healthz")
        print("sync:", self.manage("qflow_sync", env=self.web_env).strip().splitlines()[-1:])
        self.spawn("worker", ["/bin/sh", "-c", procfile_line("worker")], self.web_env)
        self.spawn("web", ["/bin/sh", "-c", self.web_command], self.web_env)
        wait_up(f"http://127.0.0.1:{self.web_port}/healthz")

    def stop(self) -> None:
        import psycopg

        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        name = self.database_url.rsplit("/", 1)[1]
        with psycopg.connect(self.postgres, autocommit=True) as db:
            db.execute(f"drop database if exists {name} with (force)")


def pages(stack: Stack, limit: int = 60) -> dict[str, list[str]]:
    """Paths of each kind: the list with filters, mirrored executions and their steps (as
    far as they are mirrored: ask again after the warm-up opened the details)."""
    code = (
        "from qflowui.mirror.models import Execution as E, Step as S;"
        f"ids = list(E.objects.order_by('-started_at').values_list('id', flat=True)[:{limit}]);"
        "steps = list(S.objects.filter(execution_id__in=ids).values_list('execution', 'node_id'));"
        "print(repr(([str(i) for i in ids], [(str(e), n) for e, n in steps])))"
    )
    out = stack.manage("shell", "--no-imports", "-c", code, env=stack.web_env)
    ids, steps = eval(out.strip().splitlines()[-1])  # noqa: S307 - our own repr
    return {
        "list": [f"/executions/{f}" for f in LIST_FILTERS],
        "detail": [f"/executions/{i}/" for i in ids],
        "step": [f"/executions/{e}/steps/{n}/" for e, n in steps[: 3 * limit]],
    }


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def browse(web: str, paths: dict[str, list[str]], users: int, seconds: float, think: float):
    results: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    errors: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()
    sessions = [signed_in(web) for _ in range(users)]
    start = threading.Event()
    deadline = [0.0]

    def analyst(number: int) -> None:
        rng = random.Random(number)
        session = sessions[number]
        start.wait()
        while time.monotonic() < deadline[0]:
            if think:
                time.sleep(think * rng.uniform(0.5, 1.5))
            kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
            path = rng.choice(paths[kind])
            began = time.perf_counter()
            try:
                response = session.get(web + path, timeout=30)
                ok, why = response.status_code == 200, str(response.status_code)
            except requests.RequestException as exc:
                ok, why = False, type(exc).__name__
            elapsed = time.perf_counter() - began
            with lock:
                results[kind].append((elapsed, ok))
                if not ok:
                    errors[kind].append(f"{why} {path}")

    threads = [threading.Thread(target=analyst, args=(n,)) for n in range(users)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + seconds
    start.set()
    for thread in threads:
        thread.join()
    return {"results": results, "errors": errors}


def warm(web: str, stack: Stack, paths: dict[str, list[str]]) -> None:
    """Every page once, the step pages until their payloads are stored (a worker fetches)."""
    session = signed_in(web)
    for kind in ("list", "detail"):
        for path in paths[kind]:
            session.get(web + path, timeout=120)
    paths["step"] = pages(stack)["step"]  # the details' steps are mirrored now
    for path in paths["step"]:
        session.get(web + path, timeout=120)
    deadline = time.monotonic() + 120
    for path in paths["step"]:
        while "Fetching" in session.get(web + path, timeout=120).text:
            if time.monotonic() > deadline:
                return
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, metavar="URL")
    parser.add_argument("--redis", required=True, metavar="URL", help="a Redis db of its own")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds between pages")
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY (default: the Procfile's)")
    parser.add_argument("--threads", type=int, help="gunicorn threads (default: the Procfile's)")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="qflowui-bench-load-"))
    stack = Stack(var, args.postgres, args.redis, args.workers, args.threads)
    try:
        stack.start()
        web = f"http://127.0.0.1:{stack.web_port}"
        paths = pages(stack)
        warm(web, stack, paths)
        load_before = os.getloadavg()[0]
        run = browse(web, paths, args.users, args.seconds, args.think)
        load_after = os.getloadavg()[0]
    finally:
        stack.stop()
        shutil.rmtree(var, ignore_errors=True)
    workers = args.workers or (2 * (os.cpu_count() or 1) + 1)
    print(f"Machine: {describe(args.postgres)}")
    print(
        f"web: `{stack.web_command}` (WEB_CONCURRENCY={workers}); {args.users} users, "
        f"{args.seconds:.0f} s, think time {args.think:g} s; "
        f"load average {load_before:.2f} before, {load_after:.2f} after"
    )
    print(
        f"pages: {len(paths['list'])} list views, {len(paths['detail'])} details, "
        f"{len(paths['step'])} step pages"
    )
    print()
    print("| pages | requests | per second | p50 | p95 | p99 | max | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    everything: list[tuple[float, bool]] = []
    for kind in (*KINDS, "all"):
        rows = everything if kind == "all" else run["results"][kind]
        if kind != "all":
            everything.extend(rows)
        times = [t for t, _ in rows]
        failed = sum(1 for _, ok in rows if not ok)
        cells = [statistics.median(times), *(nearest_rank(times, q) for q in (0.95, 0.99))]
        cells.append(max(times))
        shown = " | ".join(f"{t * 1000:,.0f} ms" for t in cells)
        print(f"| {kind} | {len(rows):,} | {len(rows) / args.seconds:,.1f} | {shown} | {failed} |")
    for kind, why in run["errors"].items():
        print(f"errors ({kind}): {why[:5]}")


if __name__ == "__main__":
    main()
