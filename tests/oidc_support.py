"""A real OpenID Provider for the single sign-on tests (no tests here).

`oidc_provider_process` (session) starts panva's certified `oidc-provider` (tests/oidc_provider/
provider.mjs, Node) on a free port of 127.0.0.1. Its users are read from a JSON file at every
sign-in, so a test changes someone's groups between two sign-ins with `provider.set_user()`.
`oidc` (per test) points the app's OIDC_* settings at it and resets the users.

Without node or tests/oidc_provider/node_modules (`npm ci --prefix tests/oidc_provider`) the
tests are skipped with that reason; with CI=true they fail instead.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tests.conftest import require

__all__ = ["oidc", "oidc_provider_process"]

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
CLIENT_SECRET = "qflowui-test-client-secret"
PROVIDER_NAME = "Test IdP"
USERS = {
    "alice": {
        "password": "alice-password",
        "preferred_username": "alice",
        "email": "alice@example.test",
        "name": "Alice Anders",
        "groups": ["qflow-runners"],
    },
    "bob": {
        "password": "bob-password",
        "preferred_username": "bob",
        "email": "bob@example.test",
        "name": "Bob Berg",
        "groups": ["qflow-viewers"],
    },
    "carol": {
        "password": "carol-password",
        "preferred_username": "carol",
        "email": "carol@example.test",
        "name": "Carol Cruz",
        "groups": [],
    },
}


class Provider:
    def __init__(self, issuer: str, users_file: Path, proc: subprocess.Popen) -> None:
        self.issuer = issuer
        self.users_file = users_file
        self.proc = proc
        self.users: dict[str, dict] = {}
        self.reset()

    def reset(self) -> None:
        self.users = json.loads(json.dumps(USERS))
        self._write()

    def set_user(self, login: str, **changes: object) -> None:
        self.users[login].update(changes)
        self._write()

    def _write(self) -> None:
        tmp = self.users_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.users))
        tmp.replace(self.users_file)

    def password(self, login: str) -> str:
        return self.users[login]["password"]

    def walk(self, authorize_url: str, login: str, *, session: requests.Session | None = None):
        """Go through the provider's own login and consent pages as `login`, like a browser;
        returns the URL the provider sends the browser back to (our callback)."""
        http = session or requests.Session()
        url = authorize_url
        for _ in range(20):
            if not url.startswith(self.issuer):
                return url  # back to the relying party
            response = http.get(url, allow_redirects=False, timeout=10)
            while response.is_redirect:
                url = urljoin(url, response.headers["Location"])
                if not url.startswith(self.issuer):
                    return url
                response = http.get(url, allow_redirects=False, timeout=10)
            response.raise_for_status()
            html = response.text
            action = re.search(r'<form[^>]*action="([^"]+)"', html)
            assert action, html[:2000]
            target = urljoin(url, action.group(1))
            if 'name="password"' in html:
                data = {"prompt": "login", "login": login, "password": self.password(login)}
            else:
                data = {"prompt": "consent"}
            response = http.post(target, data=data, allow_redirects=False, timeout=10)
            assert response.is_redirect, response.text[:2000]
            url = urljoin(target, response.headers["Location"])
        raise AssertionError("the provider never sent the browser back")


@pytest.fixture(scope="session")
def oidc_provider_process(live_server, tmp_path_factory):
    node = shutil.which("node")
    require(node is not None, "Node.js (node), for the test OpenID provider")
    installed = (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir()
    require(installed, "tests/oidc_provider/node_modules (npm ci --prefix tests/oidc_provider)")
    work = tmp_path_factory.mktemp("oidc-provider")
    users_file = work / "users.json"
    users_file.write_text(json.dumps(USERS))
    callbacks = [f"{base}/oidc/callback/" for base in ("http://testserver", live_server.url)]
    logouts = [f"{base}/accounts/login/" for base in ("http://testserver", live_server.url)]
    log_path = work / "provider.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(  # noqa: S603 - our own script
        [node, "provider.mjs"],
        cwd=PROVIDER_DIR,
        env={
            "PATH": "/usr/bin:/bin",
            "OIDC_TEST_USERS_FILE": str(users_file),
            "OIDC_TEST_REDIRECT_URIS": ",".join(callbacks),
            "OIDC_TEST_LOGOUT_URIS": ",".join(logouts),
            "OIDC_TEST_CLIENT_SECRET": CLIENT_SECRET,
        },
        stdout=subprocess.PIPE,
        stderr=log,
    )
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(proc.stdout.readline().decode()))
    reader.start()
    reader.join(timeout=30)
    line = ready[0].strip() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        pytest.fail(f"the test OpenID provider did not start: {line!r}\n{log_path.read_text()}")
    issuer = line.split(" ", 1)[1]
    assert urlsplit(issuer).hostname == "127.0.0.1"
    yield Provider(issuer, users_file, proc)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture
def oidc(oidc_provider_process, settings):
    """The app signs in with the test provider: client `qflowui` (client_secret_basic);
    qflow-viewers → Viewers, qflow-runners → Runners, qflow-admins → staff."""
    settings.OIDC_ISSUER = oidc_provider_process.issuer
    settings.OIDC_CLIENT_ID = "qflowui"
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_SCOPES = "openid email profile groups"
    settings.OIDC_TOKEN_AUTH_METHOD = "client_secret_basic"
    settings.OIDC_GROUPS_CLAIM = "groups"
    settings.OIDC_VIEWER_GROUPS = ["qflow-viewers"]
    settings.OIDC_RUNNER_GROUPS = ["qflow-runners"]
    settings.OIDC_ADMIN_GROUPS = ["qflow-admins"]
    settings.OIDC_PROVIDER_NAME = PROVIDER_NAME
    settings.QFLOWUI_PASSWORD_LOGIN = True
    oidc_provider_process.reset()
    yield oidc_provider_process
    oidc_provider_process.reset()
