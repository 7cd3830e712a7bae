"""Settings come from the environment and fail loudly on a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def _settings_in_subprocess(env: dict[str, str], expr: str) -> subprocess.CompletedProcess:
    code = f"import django; django.setup(); from django.conf import settings; print({expr})"
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "qflowui.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(os.environ.get("CI", "").lower() != "true", reason="CI runs on PostgreSQL")
@pytest.mark.django_db
def test_ci_runs_the_suite_against_postgresql():
    assert connection.vendor == "postgresql"


def test_a_malformed_boolean_setting_stops_the_app_with_a_clear_message():
    done = _settings_in_subprocess({"DJANGO_DEBUG": "maybe"}, "settings.DEBUG")
    assert done.returncode != 0
    assert "DJANGO_DEBUG='maybe' is not a boolean" in done.stderr


def test_without_an_upstream_the_app_serves_and_uses_the_simulator():
    done = _settings_in_subprocess(
        {"QFLOW_BASE_URL": "", "PORT": "8123", "QFLOW_CLIENT_ID": "", "QFLOW_TOKEN": ""},
        "settings.QFLOW_SIMULATOR, settings.QFLOW_BASE_URL, settings.QFLOW_CLIENT_ID",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(True, 'http://127.0.0.1:8123', 'qflowui-demo')"


def test_a_real_gateway_turns_the_simulator_off_by_default():
    done = _settings_in_subprocess(
        {"QFLOW_BASE_URL": "https://gateway.qg2.apps.qualys.com/", "QFLOW_SIMULATOR": ""},
        "settings.QFLOW_SIMULATOR, settings.QFLOW_BASE_URL",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(False, 'https://gateway.qg2.apps.qualys.com')"


def test_time_is_stored_in_utc():
    assert settings.USE_TZ is True
    assert settings.TIME_ZONE == "UTC"
