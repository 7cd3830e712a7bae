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
    code = f"import django; django.setup(); from django.conf import settings; print(repr(({expr})))"
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
        {
            "QFLOW_BASE_URL": "",
            "PORT": "8123",
            "QFLOWUI_PORT": "",
            "QFLOW_CLIENT_ID": "",
            "QFLOW_TOKEN": "",
        },
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


def test_a_plain_http_gateway_is_refused_at_startup():
    done = _settings_in_subprocess(
        {"QFLOW_BASE_URL": "http://gateway.qg1.apps.qualys.com"}, "settings.QFLOW_BASE_URL"
    )
    assert done.returncode != 0
    assert "must use https" in done.stderr


def test_check_deploy_is_clean_with_production_settings():
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": "p" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECURE_SSL": "true",
        "DJANGO_ALLOWED_HOSTS": "qflowui.example.com",
        "QFLOW_BASE_URL": "https://gateway.qg1.apps.qualys.com",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by conftest for Playwright only
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_production_refuses_to_start_without_a_secret_key():
    done = _settings_in_subprocess(
        {"DJANGO_SECURE_SSL": "true", "DJANGO_SECRET_KEY": ""}, "settings.SECRET_KEY"
    )
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY must be set in production" in done.stderr


def test_a_base_url_with_credentials_is_refused_without_printing_them():
    done = _settings_in_subprocess(
        {"QFLOW_BASE_URL": "https://svc:Hunter2-Gateway@gateway.qg2.apps.qualys.com"},
        "settings.QFLOW_BASE_URL",
    )
    assert done.returncode != 0
    assert "must not carry credentials" in done.stderr
    assert "gateway.qg2.apps.qualys.com" in done.stderr
    assert "Hunter2-Gateway" not in done.stderr + done.stdout


def test_a_bad_base_url_error_never_prints_its_password():
    done = _settings_in_subprocess(
        {"QFLOW_BASE_URL": "ftp://svc:Hunter2-Ftp@files.example.com/x"},
        "settings.QFLOW_BASE_URL",
    )
    assert done.returncode != 0
    assert "is not an http(s) URL" in done.stderr
    assert "Hunter2-Ftp" not in done.stderr + done.stdout
