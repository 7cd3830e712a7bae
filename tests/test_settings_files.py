"""Settings from files (the Docker secrets convention: NAME_FILE names a file holding NAME),
passwords injected into the database and Redis URLs, the plain-http opt-in for the demo's
simulator service, and QFLOWUI_DEMO. Each case loads the settings in a fresh process."""

from __future__ import annotations

from tests.test_settings import _settings_in_subprocess

# Settings in the test process's environment that would mask what a case sets.
_CLEAN = {
    "QFLOW_BASE_URL": "",
    "QFLOW_SIMULATOR": "",
    "QFLOW_CLIENT_ID": "",
    "QFLOW_CLIENT_SECRET": "",
    "QFLOW_TOKEN": "",
    "QFLOWUI_DEMO": "",
    "QFLOW_ALLOW_HTTP_HOSTS": "",
    "DJANGO_SECRET_KEY": "",
    "DATABASE_PASSWORD": "",
    "REDIS_PASSWORD": "",
}


def _settings(env: dict[str, str], expr: str):
    return _settings_in_subprocess({**_CLEAN, **env}, expr)


def test_a_setting_is_read_from_the_file_its_name_file_names(tmp_path):
    key = tmp_path / "django_secret_key"
    key.write_text("s3cret-from-a-file-0123456789-abcdefghijklmnopqrstuvwxyz\n")
    client = tmp_path / "qflow_client_secret"
    client.write_text("client-secret-from-file")  # no trailing newline: taken as is
    token = tmp_path / "metrics"
    token.write_text("metrics-token\r\n")
    done = _settings(
        {
            "DJANGO_SECRET_KEY_FILE": str(key),
            "QFLOW_BASE_URL": "https://gateway.qg1.apps.qualys.com",
            "QFLOW_CLIENT_ID": "team-client",
            "QFLOW_CLIENT_SECRET_FILE": str(client),
            "QFLOWUI_METRICS_TOKEN_FILE": str(token),
        },
        "settings.SECRET_KEY, settings.QFLOW_CLIENT_SECRET, "
        "__import__('qflowui.settings').settings.env_str('QFLOWUI_METRICS_TOKEN')",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "('s3cret-from-a-file-0123456789-abcdefghijklmnopqrstuvwxyz', "
        "'client-secret-from-file', 'metrics-token')"
    )


def test_every_kind_of_setting_can_come_from_a_file(tmp_path):
    (tmp_path / "debug").write_text("true\n")
    (tmp_path / "hosts").write_text("qflowui.example.com,other.example.com\n")
    (tmp_path / "limit").write_text("7\n")
    (tmp_path / "budget").write_text("2.5\n")
    done = _settings(
        {
            "DJANGO_DEBUG_FILE": str(tmp_path / "debug"),
            "DJANGO_ALLOWED_HOSTS_FILE": str(tmp_path / "hosts"),
            "QFLOWUI_LOGIN_FAILURE_LIMIT_FILE": str(tmp_path / "limit"),
            "QFLOW_PAGE_BUDGET_SECONDS_FILE": str(tmp_path / "budget"),
        },
        "settings.DEBUG, settings.ALLOWED_HOSTS, settings.QFLOWUI_LOGIN_FAILURE_LIMIT, "
        "settings.QFLOW_PAGE_BUDGET_SECONDS",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("(True, ['qflowui.example.com', 'other.example.com'], 7, 2.5)")


def test_a_blank_variable_next_to_its_file_counts_as_unset(tmp_path):
    # An env file copied from .env.example has `DJANGO_SECRET_KEY=` lines.
    (tmp_path / "key").write_text("key-from-file\n")
    done = _settings(
        {"DJANGO_SECRET_KEY": "", "DJANGO_SECRET_KEY_FILE": str(tmp_path / "key")},
        "settings.SECRET_KEY",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "'key-from-file'"


def test_an_unreadable_file_stops_the_app_naming_the_path_never_the_content(tmp_path):
    missing = tmp_path / "nowhere" / "oidc_client_secret"
    done = _settings({"OIDC_CLIENT_SECRET_FILE": str(missing)}, "settings.SECRET_KEY")
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert f"OIDC_CLIENT_SECRET_FILE='{missing}' cannot be read" in done.stderr

    unreadable = tmp_path / "binary"
    unreadable.write_bytes(b"\xff\xfe-sekrit-\xff")
    done = _settings({"QFLOW_TOKEN_FILE": str(unreadable)}, "settings.QFLOW_TOKEN")
    assert done.returncode != 0
    assert f"QFLOW_TOKEN_FILE='{unreadable}' cannot be read: not UTF-8 text" in done.stderr
    assert "sekrit" not in done.stderr


def test_a_setting_given_twice_is_refused(tmp_path):
    (tmp_path / "token").write_text("file-token\n")
    done = _settings(
        {"QFLOW_TOKEN": "env-token", "QFLOW_TOKEN_FILE": str(tmp_path / "token")},
        "settings.QFLOW_TOKEN",
    )
    assert done.returncode != 0
    assert "QFLOW_TOKEN and QFLOW_TOKEN_FILE are both set" in done.stderr
    assert "env-token" not in done.stderr and "file-token" not in done.stderr


def test_the_database_password_fills_a_url_without_one(tmp_path):
    (tmp_path / "pg").write_text("p@ss:w/rd\n")
    done = _settings(
        {
            "DATABASE_URL": "postgres://qflowui@db.internal:5432/qflowui",
            "DATABASE_PASSWORD_FILE": str(tmp_path / "pg"),
        },
        "settings.DATABASES['default']['USER'], settings.DATABASES['default']['PASSWORD'], "
        "settings.DATABASES['default']['HOST']",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('qflowui', 'p@ss:w/rd', 'db.internal')"


def test_a_password_in_the_database_url_wins(tmp_path):
    done = _settings(
        {
            "DATABASE_URL": "postgres://qflowui:in-url@db.internal:5432/qflowui",
            "DATABASE_PASSWORD": "separate",
        },
        "settings.DATABASES['default']['PASSWORD']",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "'in-url'"


def test_the_redis_password_fills_a_url_without_one(tmp_path):
    (tmp_path / "redis").write_text("r3dis/p@ss\n")
    done = _settings(
        {"REDIS_URL": "redis://redis:6379/0", "REDIS_PASSWORD_FILE": str(tmp_path / "redis")},
        "settings.REDIS_URL, settings.CELERY_BROKER_URL, settings.CACHES['default']['LOCATION']",
    )
    assert done.returncode == 0, done.stderr
    url = "redis://:r3dis%2Fp%40ss@redis:6379/0"
    assert done.stdout.strip() == repr((url, url, url))


def test_plain_http_to_a_named_host_needs_the_explicit_opt_in():
    url = "http://simulator:8000"
    refused = _settings({"QFLOW_BASE_URL": url}, "settings.QFLOW_BASE_URL")
    assert refused.returncode != 0
    assert "must use https" in refused.stderr and "QFLOW_ALLOW_HTTP_HOSTS" in refused.stderr

    allowed = _settings(
        {"QFLOW_BASE_URL": url, "QFLOW_ALLOW_HTTP_HOSTS": "Simulator, other", "QFLOW_TOKEN": "t"},
        "settings.QFLOW_BASE_URL, settings.QFLOW_ALLOW_HTTP_HOSTS, "
        "__import__('qflowui.qflow.client', fromlist=['x']).client_from_settings().base_url",
    )
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == f"('{url}', ['simulator', 'other'], '{url}')"

    # The opt-in names hosts: any other host still needs https.
    other = _settings(
        {"QFLOW_BASE_URL": "http://gateway.example.com", "QFLOW_ALLOW_HTTP_HOSTS": "simulator"},
        "settings.QFLOW_BASE_URL",
    )
    assert other.returncode != 0
    assert "must use https" in other.stderr


def test_the_demo_flag_uses_the_public_demo_pair_against_a_simulator_service():
    done = _settings(
        {
            "QFLOWUI_DEMO": "true",
            "QFLOW_BASE_URL": "http://simulator:8000",
            "QFLOW_ALLOW_HTTP_HOSTS": "simulator",
        },
        "settings.QFLOWUI_DEMO, settings.QFLOW_SIMULATOR, settings.QFLOW_CLIENT_ID, "
        "settings.QFLOW_CLIENT_SECRET",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(True, False, 'qflowui-demo', 'qflowui-demo-secret')"


def test_the_demo_flag_refuses_real_credentials():
    for extra in (
        {"QFLOW_TOKEN": "a-real-token"},
        {"QFLOW_CLIENT_ID": "team-client", "QFLOW_CLIENT_SECRET": "team-secret"},
    ):
        done = _settings(
            {
                "QFLOWUI_DEMO": "true",
                "QFLOW_BASE_URL": "https://gateway.qg1.apps.qualys.com",
                **extra,
            },
            "settings.QFLOWUI_DEMO",
        )
        assert done.returncode != 0, extra
        assert "QFLOWUI_DEMO=true is for a QFlow simulator upstream" in done.stderr
        assert "a-real-token" not in done.stderr and "team-secret" not in done.stderr


def test_the_static_root_can_live_outside_var(tmp_path):
    root = tmp_path / "staticfiles"
    done = _settings({"DJANGO_STATIC_ROOT": str(root)}, "str(settings.STATIC_ROOT)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr(str(root))
    assert root.is_dir()
