"""The demo login exists only with the built-in simulator, never next to a real gateway."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db

REAL_GATEWAY = {"QFLOW_SIMULATOR": False, "QFLOW_BASE_URL": "https://gateway.qg1.apps.qualys.com"}


def run_command() -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("ensure_demo_user", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@override_settings(**REAL_GATEWAY)
def test_against_a_real_gateway_no_user_is_created_and_it_says_how_to_make_an_admin(
    settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    out, err = run_command()

    assert get_user_model().objects.count() == 0
    assert "python manage.py createsuperuser" in out
    assert "no demo login" in out
    assert "password" not in out
    assert not (tmp_path / "demo-password.txt").exists()
    assert err == ""


@override_settings(**REAL_GATEWAY)
def test_an_old_inactive_demo_user_stays_inactive_with_its_old_password(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    (tmp_path / "demo-password.txt").write_text("the-demo-password\n")
    users = get_user_model().objects
    demo = users.create_user(username="demo", password="old-password", is_active=False)
    demo.is_staff = demo.is_superuser = True
    demo.save()

    out, err = run_command()

    demo.refresh_from_db()
    assert not demo.is_active
    assert demo.check_password("old-password")
    assert not demo.check_password("the-demo-password")
    assert users.count() == 1
    assert "createsuperuser" in out
    assert err == ""  # nothing to warn about: it cannot sign in


@override_settings(**REAL_GATEWAY)
def test_an_active_demo_user_is_left_alone_with_a_warning(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    users = get_user_model().objects
    demo = users.create_user(username="demo", password="old-password")

    _, err = run_command()

    demo.refresh_from_db()
    assert demo.is_active and demo.check_password("old-password")
    assert not demo.is_staff and not demo.is_superuser
    assert "a user named 'demo' exists and can sign in" in err
    assert "untick Active" in err


@override_settings(QFLOW_SIMULATOR=True, QFLOW_BASE_URL="http://127.0.0.1:8000")
def test_with_the_simulator_the_demo_login_is_made_and_printed(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("QFLOWUI_DEMO_PASSWORD", raising=False)
    out, _ = run_command()

    password = (tmp_path / "demo-password.txt").read_text().strip()
    demo = get_user_model().objects.get(username="demo")
    assert demo.is_superuser and demo.is_staff and demo.check_password(password)
    assert f"user demo  password {password}" in out
    run_command()
    assert get_user_model().objects.count() == 1


@override_settings(
    QFLOW_SIMULATOR=False,
    QFLOWUI_DEMO=True,
    QFLOW_BASE_URL="http://simulator:8000",
    QFLOW_ALLOW_HTTP_HOSTS=["simulator"],
)
def test_the_docker_demo_with_a_simulator_service_gets_the_demo_login(settings, tmp_path):
    # compose.demo.yml: the upstream is the simulator service (QFLOWUI_DEMO, which settings
    # accept only with the public demo credentials); the migrate service prints the login.
    settings.VAR_DIR = tmp_path
    out, err = run_command()

    demo = get_user_model().objects.get(username="demo")
    password = (tmp_path / "demo-password.txt").read_text().strip()
    assert demo.check_password(password) and demo.is_active and demo.is_staff
    assert f"qflowui demo login:  user demo  password {password}" in out
    assert err == ""
