"""Shared test fixtures: actors, the simulator over real HTTP, real services.

With CI=true a test that needs Redis, PostgreSQL or Chromium FAILS when the service is
missing; on a developer machine it is skipped with the reason. Nothing skips silently in CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM refuses to run
# under one unless told that this is deliberate.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = os.environ.get("QFLOWUI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct-horse-battery-staple"


def require(available: bool, what: str) -> None:
    """Fail in CI, skip elsewhere, when a real service the test needs is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} is not available on this machine")


# --- actors -------------------------------------------------------------------------


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def viewer(django_user_model):
    """A member of the Viewers group: sees everything, runs nothing."""
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="vera.viewer", password=PASSWORD)
    # The data migration's group (recreated after a transactional test's flush).
    user.groups.add(Group.objects.get_or_create(name="Viewers")[0])
    return user


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(username="ada.admin", password=PASSWORD)


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


# --- the simulator over real HTTP ---------------------------------------------------


@pytest.fixture
def simulator(live_server, settings) -> Iterator[object]:
    """The app's QFlow client pointed at the built-in simulator, served by live_server."""
    from qflowui.qflow import auth as qflow_auth
    from qflowui.simulator import control

    settings.QFLOW_SIMULATOR = True
    settings.QFLOW_BASE_URL = live_server.url
    settings.QFLOW_TOKEN = ""
    settings.QFLOW_CLIENT_ID = settings.QFLOW_DEMO_CLIENT_ID
    settings.QFLOW_CLIENT_SECRET = settings.QFLOW_DEMO_CLIENT_SECRET
    settings.QFLOW_TIMEOUT_SECONDS = 5.0
    qflow_auth.clear_token_cache()
    control.reset()
    yield control
    control.reset()
    qflow_auth.clear_token_cache()


# --- real services ------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        ok = True
    except Exception:  # noqa: BLE001
        ok = False
    require(ok, f"Redis at {url}")
    return url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    require(Path(CHROMIUM).exists() or bool(shutil.which(CHROMIUM)), f"Chromium at {CHROMIUM}")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def login(live_server, password):
    """Log a user in through the real login form of the live server."""

    def _login(page, user) -> None:
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", password)
        page.click("button[type=submit]")

    return _login


def database_url_for_other_processes() -> str:
    """A DATABASE_URL that points another process (a Celery worker) at the test database."""
    from django.db import connection

    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or ""
    password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = conf.get("HOST") or "127.0.0.1"
    return f"postgres://{auth}{host}:{conf.get('PORT') or 5432}/{conf['NAME']}"


@pytest.fixture
def start_celery_worker(redis_url, tmp_path):
    """Start real Celery worker processes on Redis, each consuming a queue of the test's own.

    `start_celery_worker(env={...})` returns the process (with `.queue` and `.log_path`); the
    worker sees the test database and any extra environment given. All are stopped after
    the test.
    """
    import subprocess
    import sys
    import time
    import uuid

    queue = f"test-{uuid.uuid4().hex[:10]}"
    started: list[subprocess.Popen] = []

    def _start(env: dict[str, str] | None = None, concurrency: int = 1) -> subprocess.Popen:
        name = f"{queue}-{len(started)}"
        log_path = tmp_path / f"{name}.log"
        full_env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_RESULT_BACKEND": redis_url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "DATABASE_URL": database_url_for_other_processes(),
            "QFLOW_SYNC_ON_START": "false",
            **(env or {}),
        }
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "qflowui",
                    "worker",
                    "--pool=prefork",
                    f"--concurrency={concurrency}",
                    "--loglevel=INFO",
                    "--without-mingle",
                    "--without-gossip",
                    "-Q",
                    queue,
                    "-n",
                    f"{name}@%h",
                ],
                cwd=Path(__file__).resolve().parent.parent,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(proc)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if b"ready." in log_path.read_bytes():
                break
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited early:\n{log_path.read_text()}")
            time.sleep(0.2)
        else:
            proc.kill()
            pytest.fail(f"celery worker did not start:\n{log_path.read_text()}")
        proc.log_path = log_path  # type: ignore[attr-defined]
        proc.queue = queue  # type: ignore[attr-defined]
        return proc

    _start.queue = queue  # type: ignore[attr-defined]
    yield _start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def celery_worker_process(start_celery_worker):
    """One real Celery worker on Redis; its queue is `.queue`."""
    return start_celery_worker()


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache (the list's counts, refresh claims)."""
    from django.core.cache import cache

    cache.clear()
    yield
