"""`make compose-test`: the Docker demo, end to end, as a user meets it.

Builds the image, starts compose.demo.yml under a project name of its own (web, worker x2,
beat, migrate, PostgreSQL, Redis and the QFlow simulator), waits until every service is
healthy, signs in with the `demo` login printed in the migrate log, sees executions in the
list, starts a run through the run form (preview, confirm) and waits until it is submitted.
Then it removes everything it started (`down -v`), also when a step fails, after printing
the services' logs.

Not a pytest module (needs a Docker engine, takes minutes): run it with
`.venv/bin/python tests/compose/demo_stack.py` or `make compose-test`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.demo.yml"
# Stand-ins for the public base images, for machines without a registry (see that script).
# DOCKER_STANDINS names the script; else it is looked for beside the checkout and in
# /work/shared (where a CI clone elsewhere on this machine finds it).
_STANDIN_CANDIDATES = [
    Path(os.environ["DOCKER_STANDINS"]) if os.environ.get("DOCKER_STANDINS") else None,
    ROOT.parent / "shared" / "tools" / "docker-standins",
    Path("/work/shared/tools/docker-standins"),
]
STANDINS = next(
    (p for p in _STANDIN_CANDIDATES if p is not None and p.exists()), _STANDIN_CANDIDATES[1]
)
BASE_IMAGES = ("debian:bookworm-slim", "python:3.11-slim-bookworm", "postgres:16", "redis:7")
HEALTHY_SERVICES = ("web", "worker", "beat", "simulator", "postgres", "redis")


def log(message: str) -> None:
    print(f"compose-test: {message}", flush=True)


def compose_command() -> list[str]:
    """docker-compose (1.x) when installed, else the `docker compose` plugin."""
    if os.environ.get("COMPOSE"):
        return os.environ["COMPOSE"].split()
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


def run(args: list[str], *, check: bool = True, capture: bool = False, **kw) -> str:
    done = subprocess.run(  # noqa: S603 - fixed commands
        args, cwd=ROOT, check=False, text=True, capture_output=capture, **kw
    )
    if check and done.returncode != 0:
        detail = f"\n{done.stdout}{done.stderr}" if capture else ""
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}{detail}")
    return done.stdout if capture else ""


def image_exists(tag: str) -> bool:
    done = subprocess.run(  # noqa: S603
        ["docker", "image", "inspect", tag],  # noqa: S607
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def ensure_base_images() -> None:
    missing = [tag for tag in BASE_IMAGES if not image_exists(tag)]
    if not missing:
        return
    if not STANDINS.exists():
        log(f"{', '.join(missing)} not here; no stand-in script: the build pulls them")
        return
    log(f"building stand-ins for {', '.join(missing)} with {STANDINS}")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    command = [*sudo, "bash", str(STANDINS)]
    if subprocess.run(command, check=False).returncode != 0:  # noqa: S603
        log("stand-ins failed on the default network; again with --network host")
        run([*command, "--network", "host"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self, project: str, port: int, workers: int) -> None:
        self.project = project
        self.port = port
        self.workers = workers
        self.base = [*compose_command(), "-p", project, "-f", str(COMPOSE_FILE)]
        self.env = {**os.environ, "QFLOWUI_HTTP_PORT": str(port)}
        self.env.pop("QFLOWUI_DEMO_PASSWORD", None)  # the test reads the printed one

    def compose(self, *args: str, check: bool = True, capture: bool = False) -> str:
        return run([*self.base, *args], check=check, capture=capture, env=self.env)

    def containers(self) -> list[tuple[str, str]]:
        """(service, status) of every container of the project, e.g. ("web", "Up 1 minute
        (healthy)"), read from Docker's labels: the same with compose 1.x and 2.x."""
        out = run(
            [
                "docker",
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                "--format",
                '{{.Label "com.docker.compose.service"}}\t{{.Status}}',
            ],
            capture=True,
        )
        return [tuple(line.split("\t", 1)) for line in out.splitlines() if "\t" in line]

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        while True:
            containers = self.containers()
            by_service: dict[str, list[str]] = {}
            for service, status in containers:
                by_service.setdefault(service, []).append(status)
            problems = []
            for service in HEALTHY_SERVICES:
                statuses = by_service.get(service, [])
                expected = self.workers if service == "worker" else 1
                healthy = [s for s in statuses if "(healthy)" in s]
                if len(healthy) != expected:
                    problems.append(f"{service}: {statuses or 'no container'}")
            migrate = by_service.get("migrate", [])
            if not (len(migrate) == 1 and migrate[0].startswith("Exited (0)")):
                problems.append(f"migrate: {migrate or 'no container'}")
            if not problems:
                log(f"all services healthy after {time.monotonic() - started:.0f} s")
                return
            # A service that stopped (or migrate failing) will not get better: stop waiting.
            stopped = any(
                status.startswith("Exited (") and not (service == "migrate" and "(0)" in status)
                for service, status in containers
            )
            if stopped or time.monotonic() > deadline:
                raise RuntimeError("services not healthy: " + "; ".join(problems))
            time.sleep(3)

    def demo_login(self) -> tuple[str, str]:
        out = self.compose("logs", "--no-color", "migrate", capture=True)
        found = re.search(r"demo login:\s+user (\S+)\s+password (\S+)", out)
        if not found:
            raise RuntimeError("no demo login in the migrate log:\n" + out[-3000:])
        return found.group(1), found.group(2)


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if not found:
        raise RuntimeError("no CSRF token on the page")
    return found.group(1)


def check_the_app(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.port}"
    user, password = stack.demo_login()
    log(f"the migrate log prints the demo login (user {user})")
    http = requests.Session()
    # A kept-alive connection that gunicorn closes (after 2 idle seconds) just as a GET
    # reuses it: try that GET again, as a browser does.
    retry = Retry(total=3, connect=3, read=2, status=0, allowed_methods={"GET"}, backoff_factor=0.5)
    http.mount("http://", HTTPAdapter(max_retries=retry))

    page = http.get(f"{base}/accounts/login/", timeout=10)
    page.raise_for_status()
    signed_in = http.post(
        f"{base}/accounts/login/",
        data={"username": user, "password": password, "csrfmiddlewaretoken": csrf_token(page.text)},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=10,
    )
    if not signed_in.url.rstrip("/").endswith("/executions"):
        raise RuntimeError(f"sign-in did not reach the executions list: {signed_in.url}")
    log("signed in")

    # The worker syncs a few seconds after it starts; beat every 30 s.
    deadline = time.monotonic() + 90
    while True:
        listing = http.get(f"{base}/executions/", timeout=15)
        listing.raise_for_status()
        rows = re.findall(r'data-execution-id="([^"]+)"', listing.text)
        if len(rows) >= 10:
            log(f"the executions list shows {len(rows)} executions on its first page")
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the executions list shows {len(rows)} executions after 90 s")
        time.sleep(3)

    form = http.get(f"{base}/runs/new/", timeout=15)
    form.raise_for_status()
    workflows = re.findall(r'<option value="([0-9a-f-]{36})"', form.text)
    key = re.search(r'name="idempotency_key" value="([0-9a-f-]{36})"', form.text)
    if not workflows or not key:
        raise RuntimeError("the run form offers no workflow or has no idempotency key")
    data = {
        "workflow": workflows[0],
        "input": "{}",
        "idempotency_key": key.group(1),
        "csrfmiddlewaretoken": csrf_token(form.text),
        "action": "preview",
    }
    headers = {"Referer": f"{base}/runs/new/"}
    preview = http.post(f"{base}/runs/new/", data=data, headers=headers, timeout=15)
    preview.raise_for_status()
    digest = re.search(r'name="preview_digest" value="([^"]+)"', preview.text)
    if not digest:
        raise RuntimeError("the preview has no digest to confirm")
    log(f"previewed a run of workflow {workflows[0]}")
    data.update(
        action="confirm",
        preview_digest=digest.group(1),
        csrfmiddlewaretoken=csrf_token(preview.text),
    )
    confirmed = http.post(f"{base}/runs/new/", data=data, headers=headers, timeout=15)
    confirmed.raise_for_status()
    if not re.search(r"/runs/\d+/$", confirmed.url):
        raise RuntimeError(f"confirming did not lead to the run's page: {confirmed.url}")
    log(f"confirmed: {confirmed.url}")

    deadline = time.monotonic() + 90
    while True:
        state = re.search(r'data-run-state="([a-z_]+)"', http.get(confirmed.url, timeout=15).text)
        current = state.group(1) if state else "?"
        if current == "submitted":
            log("the run reached submitted")
            return
        if current in {"failed", "not_started", "needs_review"} or time.monotonic() > deadline:
            raise RuntimeError(f"the run is {current}, not submitted")
        time.sleep(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker containers (default 2)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to become healthy")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()

    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:  # noqa: S607
        log("no Docker engine answers (docker info failed)")
        return 2
    ensure_base_images()
    stack = Stack(f"qflowui-test-{uuid.uuid4().hex[:8]}", free_port(), args.workers)
    log(f"project {stack.project}, web on http://127.0.0.1:{stack.port}")
    ok = False
    try:
        started = time.monotonic()
        stack.compose("build")
        log(f"image built in {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        stack.compose("up", "-d", "--scale", f"worker={args.workers}")
        stack.wait_healthy(args.timeout)
        stack.compose("ps")
        check_the_app(stack)
        ok = True
        log(f"passed ({time.monotonic() - started:.0f} s after up)")
        return 0
    except Exception as exc:  # noqa: BLE001 - reported, with the logs, then torn down
        log(f"FAILED: {exc}")
        stack.compose("ps", check=False)
        stack.compose("logs", "--no-color", "--tail", "200", check=False)
        return 1
    finally:
        if args.keep and ok:
            log(f"left running: {' '.join(stack.base)} down -v")
        else:
            # A worker in the middle of a sync pass would be given its 200 s grace: not here.
            stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False)


if __name__ == "__main__":
    sys.exit(main())
